"""Cost of a paper-scale codebook: one cpu-default training step of GSQ at
V = 2^18 against V = 1024, for G = 1, 2, 4, 8, 16 groups at D = 16.

    python benchmarks/perf/gsq_step.py [--groups 1,2,4,8,16] [--steps 6] [--threads N]

Each G builds both tokenizers from the ``cpu-default`` recipe (F4 conv
backbone, batch 32 of 32 x 32 crops: 2,048 positions per step) with
``model.latent_dim=16``, ``quantizers.gsq.groups=G`` and the codebook size,
and runs the recipe's training step (forward, MSE + quantizer loss, backward,
AdamW) on a fixed random batch.  After one warm-up step each (which also
compiles the fused lookup kernel), the two models' steps alternate, so both
see the same machine load; the ratio is of the median step times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_description  # noqa: E402


def _trainer(groups: int, size: int):
    import qbench
    from qbench.engine.model import build_tokenizer
    from qbench.engine.train import _Trainer
    from qbench.recipe.config import load_recipe
    from qbench.recipe.identity import resolve

    regs = qbench.registries()
    recipe = load_recipe("cpu-default", [
        "model.latent_dim=16", f"quantizers.gsq.groups={groups}", f"quantizers.gsq.codebook_size={size}",
    ], registries=regs)
    torch.manual_seed(0)
    trainer = _Trainer(build_tokenizer(resolve(recipe, "gsq", regs), regs), recipe, torch.device("cpu"))
    size_px = recipe.data.image_size
    batch = torch.randint(0, 256, (recipe.data.batch_size, 3, size_px, size_px), dtype=torch.uint8)
    return lambda: trainer.train_step(batch)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", default="1,2,4,8,16")
    parser.add_argument("--large", type=int, default=2**18)
    parser.add_argument("--small", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(cpu_description())
    print(f"\n| G | d | step at V = {args.small} (s) | step at V = {args.large} (s) | ratio |")
    print("|---|---|---|---|---|")
    for groups in (int(g) for g in args.groups.split(",")):
        small, large = _trainer(groups, args.small), _trainer(groups, args.large)
        small(), large()  # warm-up
        times = {"small": [], "large": []}
        for _ in range(args.steps):
            for name, step in (("small", small), ("large", large)):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
        s, l_ = statistics.median(times["small"]), statistics.median(times["large"])
        print(f"| {groups} | {16 // groups} | {s:.3f} | {l_:.3f} | {l_ / s:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
