"""Training steps per second of the CPU levers, measured side by side in one process.

Each variant is the cpu-default backbone (conv, 32x32 crops, batch 32) with
one thing changed; a step is forward + MSE backward + AdamW, on random
images (the quantizer costs little at V <= 4096 and is left out).  Variants
are timed round-robin, REPEATS rounds of STEPS steps each, and reported as
the median steps/s and as a ratio to the baseline of the same round, so a
machine that is busier in one moment slows every variant alike.

    python benchmarks/perf/levers.py [--threads 2] [--repeats 5] [--compile]

Prints the CPU model and flags first: bf16 is fast only with avx512_bf16
(or AMX); elsewhere it is emulated.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import qbench

BASE = {"latent_dim": 4, "channels": 32, "channel_mult": [1, 2, 2], "num_res_blocks": 1}
VARIANTS = {
    "baseline (cpu-default: F4, 32x32, batch 32, fp32)": {},
    "patchify stem p=2, channel_mult [1,2] (F4, same latent grid)": {"backbone": {"patch_size": 2, "channel_mult": [1, 2]}},
    "patchify stem p=2, channel_mult [1,2,2] (F8)": {"backbone": {"patch_size": 2}},
    "bf16 autocast": {"bf16": True},
    "channels_last off": {"channels_last": False},
    "batch 16": {"batch": 16},
    "batch 64": {"batch": 64},
}


def cpu_flags() -> str:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    shown = sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni"})
    return f"{model}; flags: {' '.join(shown)}"


class Variant:
    def __init__(self, name: str, spec: dict, compile_model: bool = False):
        self.name = name
        torch.manual_seed(0)
        options = {**BASE, **spec.get("backbone", {})}
        self.model = qbench.registries().backbones.create("conv", **options)
        self.batch = spec.get("batch", 32)
        self.bf16 = spec.get("bf16", False)
        memory_format = torch.channels_last if spec.get("channels_last", True) else torch.contiguous_format
        self.model = self.model.to(memory_format=memory_format)
        self.x = torch.rand(self.batch, 3, 32, 32).to(memory_format=memory_format) * 2 - 1
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.compile_seconds = 0.0
        if compile_model:
            started = time.perf_counter()
            self.model = torch.compile(self.model)
            self.step()
            self.compile_seconds = time.perf_counter() - started

    def step(self) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = torch.nn.functional.mse_loss(self.model(self.x).float(), self.x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def rate(self, steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            self.step()
        return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the baseline")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {cpu_flags()}; torch {torch.__version__}; {args.threads} threads")
    variants = [Variant(name, spec) for name, spec in VARIANTS.items()]
    if args.compile:
        variants.append(Variant("torch.compile (baseline)", {}, compile_model=True))
    for v in variants:
        v.rate(2)  # warm-up: allocator, oneDNN primitive caches
    rates: dict[str, list[float]] = {v.name: [] for v in variants}
    ratios: dict[str, list[float]] = {v.name: [] for v in variants}
    for _ in range(args.repeats):
        round_rates = {v.name: v.rate(args.steps) for v in variants}
        base = round_rates[variants[0].name]
        for name, value in round_rates.items():
            rates[name].append(value)
            ratios[name].append(value / base)
    print("| variant | steps/s (median) | images/s | vs baseline (median of per-round ratios) |")
    print("|---|---|---|---|")
    for v in variants:
        median = statistics.median(rates[v.name])
        note = f" (compile took {v.compile_seconds:.0f} s)" if v.compile_seconds else ""
        print(f"| {v.name}{note} | {median:.2f} | {median * v.batch:.0f} | {statistics.median(ratios[v.name]):.2f}x |")


if __name__ == "__main__":
    main()
