"""Nearest-code lookup throughput against the same machine's square matmul rate.

    python benchmarks/perf/lookup.py [--rows N] [--dims 1,2,4,8,16] [--sizes 10,14,18] [--threads N]

For each group width d and codebook size V, ``qbench.lookup.nearest_code``
with the l2-normalised lookup (GSQ's, arXiv 2412.02632 Eq. 5) runs on N random
rows, forward only ("fwd": the search) and as a quantizer training step
("fwd+bwd": GSQ with one group of width d, loss and backward).  Throughput is
code pairs per second (N x V / time) and the brute-force equivalent rate,
2 d FLOPs per pair; "% of matmul" divides it by a square float32 matmul's
GFLOP/s measured in the same run, before and after the table (the machine may
be shared: compare within a run).  At d <= 2 the lookup is the exact
structured search; the "brute" rows force the brute-force path for comparison,
and the "euclidean" rows time the Euclidean lookup (GSQ's at d <= 2, where its
l2 lookup is off) on the exact grid search and on the brute force.
The first search compiles the fused CPU kernel once per machine (about a
minute, cached on disk); it is done before any timing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_description, matmul_gflops  # noqa: E402


def _seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _search(x, book, structured, normalize=True):
    from qbench.lookup import nearest_code

    return lambda: nearest_code(x, book, normalize=normalize, structured=structured)


def _train_step(x, d, v):
    import qbench

    q = qbench.registries().quantizers.create("gsq", dim=d, groups=1, codebook_size=v, l2_lookup=True).train()
    z = x.t().reshape(1, d, -1, 64).clone().requires_grad_(True)

    def step():
        out = q(z)
        (out.z_q.square().mean() + out.loss).backward()
        z.grad = None
        q.zero_grad(set_to_none=True)

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=16384, help="query rows per search (a multiple of 64)")
    parser.add_argument("--dims", default="1,2,4,8,16")
    parser.add_argument("--sizes", default="10,14,18", help="log2 of the codebook sizes")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dims = [int(d) for d in args.dims.split(",")]
    sizes = [2 ** int(s) for s in args.sizes.split(",")]

    print(cpu_description())
    print(f"kernel: -march={os.environ.get('QBENCH_KERNEL_ARCH', 'native')}")
    # compile the fused kernel before any timing (cached on disk afterwards)
    _search(torch.randn(64, 4), torch.randn(2**21, 4), False)()
    before = matmul_gflops()
    print(f"square float32 matmul (2048^3): {before:.1f} GFLOP/s\n")
    print("| d | V | path | pass | code pairs/s | GFLOP/s (2d per pair) | % of matmul |")
    print("|---|---|---|---|---|---|---|")
    n = args.rows
    for d in dims:
        for v in sizes:
            x, book = torch.randn(n, d), torch.randn(v, d)
            paths = [("structured", True), ("brute", False)] if d <= 2 else [("brute", True)]
            if d <= 2:
                paths += [("euclidean grid", "grid"), ("euclidean brute", "euclidean brute")]
            for path, structured in paths:
                if isinstance(structured, str):  # the Euclidean rows: search only
                    cases = [("fwd", _search(x, book, structured == "grid", normalize=False))]
                else:
                    cases = [("fwd", _search(x, book, structured))]
                if structured is True or d > 2:
                    cases.append(("fwd+bwd", _train_step(x, d, v)))
                for label, fn in cases:
                    seconds = _seconds(fn, args.repeats)
                    pairs = n * v / seconds
                    gflops = 2 * d * pairs / 1e9
                    print(f"| {d} | 2^{v.bit_length() - 1} | {path} | {label} | {pairs:.3g} | {gflops:.1f} | "
                          f"{100 * gflops / before:.0f}% |", flush=True)
    after = matmul_gflops()
    print(f"\nsquare float32 matmul after the table: {after:.1f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
