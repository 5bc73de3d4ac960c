"""A fused nearest-code kernel for CPU (see qbench.lookup.nearest_code).

A matmul + argmax writes and re-reads the (rows x V) score matrix, and at the
small d of lookup-based quantizers (1-16) that traffic, not the arithmetic, is
what it spends its time on: an inner dimension of 16 leaves even BLAS
memory-bound.  The kernel in ``_nearest_kernel.cpp`` never stores a score: it
keeps a running best (score, index) per row in vector registers, reuses every
loaded code vector for 4 rows, and walks the codebook in slices that stay in
the L2 cache.  It is compiled once per machine with the system's C++ compiler
(``torch.utils.cpp_extension``, ``-O3 -march=native``; about a minute, cached
on disk under a name that carries the CPU's vector flags) and takes the first
index of each row's maximum, as the eager search does.  Its scores are
bias + x.c summed with fused multiply-adds, so on an exact tie of the real
numbers it agrees with the eager search, and on near-ties (scores within one
float32 rounding) it may pick another of the tied codes than BLAS would.

If compiling fails (no C++ compiler, an unsupported platform) the caller falls
back to the eager search after one warning.  The environment variable
``QBENCH_KERNEL_ARCH`` replaces ``-march=native``, e.g. ``x86-64-v3`` (AVX2 and
FMA) builds and times the 8-wide path on an AVX-512 machine.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("_nearest_kernel.cpp")
MAX_CODES = 2**24  # indices travel as float32 inside the kernel
PAD = 16  # the widest vector the kernel uses (AVX-512: 16 floats)
ROW_CHUNK = 512
CODE_CHUNK_BYTES = 2**19  # a slice of the codebook (d x codes x 4 bytes) that stays in L2


def code_chunk(d: int) -> int:
    """Codes per cache slice (512 KiB of codes, at most 2^14), a multiple of PAD: 8192 at d = 16, 16384 at d <= 8."""
    return max(PAD, min(2**14, CODE_CHUNK_BYTES // (4 * max(d, 8))) // PAD * PAD)


_module = None
_failed = False


ARCH_ENV = "QBENCH_KERNEL_ARCH"  # e.g. x86-64-v3 (AVX2 + FMA): time the 8-wide path on an AVX-512 CPU


def _arch() -> str:
    return os.environ.get(ARCH_ENV, "native")


def _cpu_tag(build: str) -> str:
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "")
    except OSError:
        flags = ""
    digest = hashlib.sha1((flags + build + SOURCE.read_text() + torch.__version__).encode()).hexdigest()
    return digest[:10]


def _build(openmp: bool):
    # deferred: loads torch's C++ extension builder only when this runs
    from torch.utils.cpp_extension import load_inline

    # -march=native: the machine's widest vectors and its fused multiply-add, whose
    # rounding the structured search reproduces with std::fma.  -fopenmp: at::parallel_for
    # runs its chunks on torch's threads only when the extension itself is built with
    # OpenMP; without it every search runs on one core
    flags = ["-O3", "-ffp-contract=fast", f"-march={_arch()}"] + (["-fopenmp"] if openmp else [])
    return load_inline(
        f"qbench_nearest_{_cpu_tag(_arch() + (' openmp' if openmp else ''))}",
        cpp_sources=SOURCE.read_text(),
        functions=["nearest", "lanes", "circle", "grid", "ring"],
        extra_cflags=flags,
        extra_ldflags=["-fopenmp"] if openmp else [],
        verbose=False,
    )


def _load():
    global _module
    if _module is None:
        try:
            _module = _build(openmp=True)
        except Exception:  # a compiler without OpenMP (e.g. Apple clang): the same kernel on one core
            _module = _build(openmp=False)
    return _module


def compiled():
    """The compiled module (compiling it on first use), or None after one warning if that fails."""
    global _failed
    if _failed:
        return None
    try:
        return _load()
    except Exception as exc:  # compiler missing or broken: the eager paths still work
        _failed = True
        warnings.warn(f"compiled nearest-code kernel unavailable ({type(exc).__name__}: {exc}); "
                      "using matmul + argmax", stacklevel=3)
        return None


def fused_nearest(x: torch.Tensor, codes: torch.Tensor, bias: torch.Tensor, *, fallback) -> torch.Tensor | None:
    """Nearest codes of float32 ``x`` (N, d) among ``codes`` (V, d) with per-code
    ``bias`` (score = x.c + bias), or None when the kernel is unavailable.

    ``fallback(rows, codes, bias, max_chunk_bytes)`` is the eager search, used
    for any row whose scores are all NaN (the kernel never picks a NaN)."""
    module = compiled() if codes.shape[0] < MAX_CODES else None
    if module is None:
        return None
    v, d = codes.shape
    vpad = -(-v // PAD) * PAD
    codes_t = codes.new_zeros(d, vpad)
    codes_t[:, :v] = codes.t()
    padded_bias = bias.new_full((vpad,), float("-inf"))
    padded_bias[:v] = bias
    found = module.nearest(x.contiguous(), codes_t, padded_bias, code_chunk(d), ROW_CHUNK)
    missed = found < 0
    if missed.any():
        found[missed] = fallback(x[missed], codes, bias, 2**24).float()
    return found.long()
