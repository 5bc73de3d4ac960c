"""Cost of a paper-scale codebook: one cpu-default training step of GSQ at
V = 2^18 against V = 1024, for G = 1, 2, 4, 8, 16 groups at D = 16.

    python benchmarks/perf/gsq_step.py [--groups 1,2,4,8,16] [--steps 6] [--threads N]

Each G builds both models as the ``cpu-default`` recipe does (its conv
backbone with latent_dim = 16, batch 32 of 32 x 32 crops: 2,048 positions per
step) with GSQ at G groups and the codebook size, and runs the recipe's
training step (forward, MSE + quantizer loss, backward, gradient clipping,
AdamW, channels_last, float32) on a fixed random batch.  After one warm-up step each (which also
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


def _recipe() -> dict:
    import importlib.resources

    import tomllib

    return tomllib.loads(importlib.resources.files("qbench_builtins").joinpath("recipes/cpu-default.toml").read_text())


def _trainer(groups: int, size: int):
    """The recipe's training step, built from public plugin registries: conv backbone, GSQ,
    MSE + quantizer loss, AdamW with the recipe's settings, gradient clipping, channels_last."""
    import qbench

    recipe, regs = _recipe(), qbench.registries()
    model, optim = recipe["model"], recipe["optim"]
    torch.manual_seed(0)
    backbone = regs.backbones.create(model["backbone"], latent_dim=16, **model["options"])
    quantizer = regs.quantizers.create("gsq", dim=16, groups=groups, codebook_size=size)
    modules = torch.nn.ModuleDict({"backbone": backbone, "quantizer": quantizer}).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(modules.parameters(), lr=optim["lr"], betas=tuple(optim["betas"]),
                            weight_decay=optim["weight_decay"])
    px, batch = recipe["data"]["image_size"], recipe["data"]["batch_size"]
    x = (torch.rand(batch, 3, px, px) * 2 - 1).contiguous(memory_format=torch.channels_last)

    def step():
        out = quantizer(backbone.encode(x))
        x_hat = backbone.decode(out.z_q)
        loss = torch.nn.functional.mse_loss(x_hat, x) + out.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(modules.parameters(), optim["grad_clip"])
        opt.step()

    return step


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
    print(f"kernel: -march={os.environ.get('QBENCH_KERNEL_ARCH', 'native')}")
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
