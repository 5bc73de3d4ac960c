"""What the lookup benchmarks print about the machine: CPU model, vector flags,
torch and threads, and the square float32 matmul rate they are compared with."""

from __future__ import annotations

import platform
import time

import torch

FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "asimd", "sve")


def cpu_description() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = " ".join(f for f in FLAGS if f in flags) or "unknown"
    return f"CPU: {model}; flags: {shown}; torch {torch.__version__}, {torch.get_num_threads()} threads"


def matmul_gflops(n: int = 2048, seconds: float = 2.0) -> float:
    """Square float32 matmul rate (2 n^3 FLOPs per product), best of the timed products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9
