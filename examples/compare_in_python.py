"""Compare quantizers from Python and plot from the DataFrame: a notebook, written as a script.

    python examples/compare_in_python.py --out results/notebook

Each cell below is what one would type in a notebook.  It runs the ``smoke``
recipe (seconds on a CPU, tiny model, a few steps): it shows the API, not a
result.  For a comparison worth reading, use ``recipe="cpu-default"`` and
several seeds, or a sweep (``qbench.sweep``).  The API is described in
docs/python-api.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import qbench  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/notebook", help="folder for the runs and the figure")
    parser.add_argument("--quantizers", default="gsq,vq,fsq", help="comma-separated names")
    args = parser.parse_args(argv)
    out = Path(args.out)

    # %% train and score each quantizer under one recipe: a list of RunOutcome, one per quantizer
    outcomes = qbench.run(args.quantizers.split(","), recipe="smoke", out=out / "runs", progress=False)
    for outcome in outcomes:
        print(f"{outcome.quantizer}: {outcome.status} in {outcome.run_dir}")

    # %% one row per run: the columns of summary.csv, plus config_hash and rate
    runs = qbench.load_runs([o.run_dir for o in outcomes if o.run_dir is not None])
    ok = runs[(runs["status"] == "ok") & (runs["psnr_status"] == "ok")]
    print(ok[["quantizer", "seed", "rate", "psnr", "usage"]].to_string(index=False))

    # %% PSNR against rate, one point per run
    fig, ax = plt.subplots(figsize=(4.5, 3.2), layout="constrained")
    for quantizer, group in ok.groupby("quantizer"):
        ax.scatter(group["rate"], group["psnr"], label=quantizer)
    ax.set_xlabel("bits per position")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("smoke recipe (not a result)")
    ax.legend()
    figure = out / "psnr-vs-rate.png"
    fig.savefig(figure, dpi=100)
    plt.close(fig)
    print(f"written: {figure}")

    # %% encode one's own images with a trained tokenizer: images (B, 3, H, W) in [-1, 1]
    tokenizer = qbench.load_tokenizer(outcomes[0].run_dir)
    size = tokenizer.identity.recipe.data.image_size
    ramp = torch.linspace(-1, 1, size)
    image = torch.stack([ramp.expand(size, size), ramp.expand(size, size).T, -ramp.expand(size, size)])[None]
    codes = tokenizer.encode(image)
    print(f"{tokenizer.identity.quantizer} codes of one {size}x{size} image: shape {tuple(codes.shape)}; "
          f"decoded back to {tuple(tokenizer.decode(codes).shape)}")
    return figure


if __name__ == "__main__":
    main()
