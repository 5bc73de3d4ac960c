"""Evaluation noise of a paired comparison, against the noise between seeds.

A run's PSNR is a mean over the evaluation images, so it carries a standard
error (``standard_error`` in its record: about 0.19 dB for the 393 test crops
of ``cpu-converged``).  Comparisons on the published page are paired: two
configurations scored on the same crops with the same seed.  There, much of
that noise cancels (a crop hard for one is hard for the other), and what is
left is the standard error of the per-crop differences.  This script
re-scores every run below the given folders from its checkpoint (the public
``qbench.load_tokenizer``; checkpoints stay local, so the per-crop values
are written to a CSV), checks that the per-crop mean equals the recorded PSNR,
and for each pair (every quantizer against ``--baseline`` within a folder,
and every quantizer between two folders, e.g. tuned against hand-set
options) writes:

- ``eval se``: the standard error of the mean per-crop difference, root mean
  square over the seeds both ran;
- ``seed sd``: the standard deviation over those seeds of the mean difference;
- their ratio: above 1 means the seeds, not the crops, limit the comparison.

    python benchmarks/noise/paired_eval_noise.py \\
        results/published/sweeps/converged-10bit-retrain results/published/sweeps/default-converged-10bit \\
        --baseline gsq --out results/published/noise/converged-10bit
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import pandas as pd
import torch

import qbench

# the per-crop mean against the recorded PSNR: re-scoring runs the convolutions in another memory layout and
# thread count, and a latent near a decision boundary (LFQ's sign, a near-tie of two codes) can flip on a crop
TOLERANCE_DB = 0.02


def runs_below(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.rglob("metrics.json") if (p.parent / "checkpoint.pt").exists())


def per_crop_psnr(run_dir: Path, regs) -> tuple[dict, list[float]]:
    """The run's record and the PSNR of each crop of its evaluation split, as its metric computes it."""
    record = json.loads((run_dir / "metrics.json").read_text())
    tokenizer = qbench.load_tokenizer(run_dir)
    recipe = tokenizer.identity.recipe
    data = recipe.data
    dataset = regs.datasets.create(data.dataset, split=recipe.eval.split, image_size=data.image_size,
                                   root=data.root, seed=recipe.seed, **data.options)
    psnr = regs.metrics.create("psnr")
    values: list[float] = []
    with torch.no_grad():
        for start in range(0, len(dataset), 64):
            items = [dataset[i] for i in range(start, min(start + 64, len(dataset)))]
            originals = torch.stack([item[0] if isinstance(item, (tuple, list)) else item for item in items])
            x = originals.to(torch.float32) / 127.5 - 1.0
            x_hat = tokenizer.decode(tokenizer.encode(x))
            reconstructions = ((x_hat.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            batch = qbench.EvalBatch(originals, reconstructions, torch.zeros(len(originals), 1, 1, 1, dtype=torch.long))
            values += psnr.per_image(batch).tolist()
    recorded = record["metrics"]["psnr"]["value"]
    if not math.isclose(statistics.fmean(values), recorded, abs_tol=TOLERANCE_DB):
        sys.exit(f"{run_dir}: per-crop mean {statistics.fmean(values)!r} is not the recorded PSNR {recorded!r}")
    return record, values


def paired(a: dict[int, list[float]], b: dict[int, list[float]]) -> dict | None:
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    means, ses = [], []
    for seed in seeds:
        diff = [x - y for x, y in zip(a[seed], b[seed], strict=True)]
        means.append(statistics.fmean(diff))
        ses.append(statistics.stdev(diff) / math.sqrt(len(diff)))
    eval_se = math.sqrt(statistics.fmean(s * s for s in ses))
    seed_sd = statistics.stdev(means)
    return {"seeds": len(seeds), "mean difference": statistics.fmean(means), "eval se": eval_se,
            "seed sd": seed_sd, "ratio": seed_sd / eval_se}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="sweep output folders (runs with checkpoints)")
    parser.add_argument("--baseline", default="gsq", help="the quantizer each is compared with inside a folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for per_crop.csv.gz and pairs.csv")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: as the runs were scored at --jobs 2 on 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    regs = qbench.registries()
    rows, scores = [], {}  # scores[(folder, quantizer)][seed] = per-crop values
    for folder in args.folders:
        found = runs_below(folder)
        if not found:
            sys.exit(f"{folder}: no finished run with a checkpoint below it")
        for run_dir in found:
            record, values = per_crop_psnr(run_dir, regs)
            quantizer, seed = record["run"]["quantizer"], int(record["run"]["seed"])
            scores.setdefault((folder.name, quantizer), {})[seed] = values
            rows += [{"study": folder.name, "quantizer": quantizer, "seed": seed, "crop": i, "psnr": v}
                     for i, v in enumerate(values)]
            shift = statistics.fmean(values) - record["metrics"]["psnr"]["value"]
            print(f"{folder.name} {quantizer} seed {seed}: {len(values)} crops, mean - recorded {shift:+.1e} dB",
                  file=sys.stderr)
    pairs = []
    for (study, quantizer), values in sorted(scores.items()):
        base = scores.get((study, args.baseline))
        if quantizer != args.baseline and base:
            result = paired(values, base)
            if result:
                pairs.append({"comparison": f"{study}: {quantizer} - {args.baseline}", **result})
    names = [f.name for f in args.folders]
    for other in names[1:]:
        for (study, quantizer), values in sorted(scores.items()):
            if study == names[0] and (other, quantizer) in scores:
                result = paired(values, scores[(other, quantizer)])
                if result:
                    pairs.append({"comparison": f"{quantizer}: {names[0]} - {other}", **result})
    args.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out / "per_crop.csv.gz", index=False, float_format="%.6f")
    table = pd.DataFrame(pairs)
    table.to_csv(args.out / "pairs.csv", index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
