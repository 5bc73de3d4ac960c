"""Forward+backward throughput and extra peak memory of qbench's quantizers,
side by side with vector-quantize-pytorch's nearest equivalents.

    python benchmarks/perf/quantizers.py [--quick] [--threads N] [--only LABEL]

vector-quantize-pytorch is a benchmark-only extra (``pip install -e .[bench]``).

Method.  Every case runs in its own subprocess, so one case's allocations never
count against another's.  The case builds the quantizer and a random latent,
runs one warm-up forward+backward (which also compiles the fused CPU lookup
kernel), then records the resident set size, resets the kernel's peak-RSS
counter (``/proc/self/clear_refs``) and times ``repeats`` forward+backward
passes.  "extra peak" is the peak RSS during the timed passes minus the RSS
before them: every byte a pass allocates, whichever allocator made it.
Throughput is positions (latent vectors) per second, mean over the timed
passes.  A reference configuration whose dense distance matrix could not fit
in this machine's memory is not run: it is reported as skipped, with the
memory it would need (its peak scales as about 4.5 x rows x V x 4 bytes,
measured: 9.4 GB at 4096 positions, 16 heads, V = 8192).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

# (label, qbench name, qbench options, reference builder name, reference options, positions)
CASES = [
    ("GSQ D=64 G=16 V=8192", "gsq", dict(dim=64, groups=16, codebook_size=8192), "vq_cosine_heads",
     dict(dim=64, codebook_size=8192, heads=16), [1024, 4096, 16384]),
    ("GSQ D=16 G=8 V=262144", "gsq", dict(dim=16, groups=8, codebook_size=262144), "vq_cosine_heads",
     dict(dim=16, codebook_size=262144, heads=8), [16384]),
    ("VQ D=8 V=1024", "vq", dict(dim=8, codebook_size=1024), "vq",
     dict(dim=8, codebook_size=1024), [4096]),
    ("RVQ D=8 S=4 V=256", "rvq", dict(dim=8, stages=4, codebook_size=256), "rvq",
     dict(dim=8, codebook_size=256, num_quantizers=4), [4096]),
    ("FSQ D=4 L=8,5,5,5", "fsq", dict(dim=4, levels=[8, 5, 5, 5]), "fsq",
     dict(levels=[8, 5, 5, 5]), [4096]),
    ("LFQ D=4 L=10", "lfq", dict(dim=4, bits=10), "lfq",
     dict(dim=4, codebook_size=1024, commitment_loss_weight=0.25), [4096]),
    ("BSQ D=4 L=10", "bsq", dict(dim=4, bits=10), "lfq_spherical",
     dict(dim=4, codebook_size=1024), [4096]),
    ("SimVQ D=8 V=1024", "simvq", dict(dim=8, codebook_size=1024), "simvq",
     dict(dim=8, codebook_size=1024), [4096]),
    ("IBQ D=8 V=1024", "ibq", dict(dim=8, codebook_size=1024), None, {}, [4096]),
]
QUICK_POSITIONS = {"GSQ D=64 G=16 V=8192": [1024, 4096]}
QUICK_SKIP = {"GSQ D=16 G=8 V=262144"}

DENSE_BYTES_PER_SCORE = 4.5 * 4  # measured for VectorQuantize, see docstring


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _build(kind: str, name: str, options: dict):
    if kind == "qbench":
        import qbench

        return qbench.registries().quantizers.create(name, **options)
    import vector_quantize_pytorch as vqp

    options = dict(options)
    if name == "vq_cosine_heads":  # G heads sharing one cosine-similarity codebook, like GSQ
        heads = options.pop("heads")
        return vqp.VectorQuantize(
            **options, heads=heads, codebook_dim=options["dim"] // heads,
            separate_codebook_per_head=False, use_cosine_sim=True,
        )
    if name == "vq":
        return vqp.VectorQuantize(**options)
    if name == "rvq":
        return vqp.ResidualVQ(**options)
    if name == "fsq":
        return vqp.FSQ(**options)
    if name == "lfq":
        return vqp.LFQ(**options)
    if name == "lfq_spherical":  # BSQ
        return vqp.LFQ(**options, spherical=True)
    if name == "simvq":  # the paper's straight-through, as qbench's simvq
        return vqp.SimVQ(**options, rotation_trick=False)
    raise ValueError(name)


def run_case(spec: dict) -> dict:
    import torch

    torch.manual_seed(0)
    module = _build(spec["kind"], spec["name"], spec["options"]).train()
    dim, n = spec["dim"], spec["positions"]
    if spec["kind"] == "qbench":
        z = torch.randn(1, dim, n // 64, 64, requires_grad=True)
    else:
        z = torch.randn(1, n, dim, requires_grad=True)

    def step():
        out = module(z)
        zq = out[0]
        loss = (zq * zq.detach()).sum()
        if spec["kind"] == "qbench":
            loss = loss + out.loss
        elif len(out) > 2:
            loss = loss + out[2].sum()
        loss.backward()
        z.grad = None
        module.zero_grad(set_to_none=True)

    step()  # warm-up: allocator, compiled kernels
    base = _rss_kib("VmRSS")
    exact = _reset_peak()
    times = []
    while len(times) < spec["repeats"]:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = _rss_kib("VmHWM")
    seconds = sum(times) / len(times)
    return {
        "positions_per_s": n / seconds,
        "extra_peak_mib": max(0, peak - base) / 1024,
        "peak_exact": exact,
    }


def _available_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _subprocess(spec: dict, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [sys.executable, __file__, "--case", json.dumps(spec)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": f"exit {proc.returncode}: {tail[0][:80]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(result: dict) -> tuple[str, str]:
    if "error" in result:
        return result["error"], ""
    if "skipped" in result:
        return result["skipped"], ""
    return f"{result['positions_per_s']:,.0f}", f"{result['extra_peak_mib']:,.0f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller cases")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="run only the cases whose label contains this text")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0

    header = "| case | positions | qbench pos/s | qbench extra peak MiB | vqp pos/s | vqp extra peak MiB | speed ratio |"
    print(header)
    print("|" + "---|" * 7)
    for label, name, options, ref_name, ref_options, positions in CASES:
        if (args.quick and label in QUICK_SKIP) or (args.only and args.only not in label):
            continue
        for n in QUICK_POSITIONS.get(label, positions) if args.quick else positions:
            ours = _subprocess(
                dict(kind="qbench", name=name, options=options, dim=options["dim"], positions=n,
                     repeats=args.repeats), args.threads)
            rows = n * ref_options.get("heads", 1)
            need = rows * ref_options["codebook_size"] * DENSE_BYTES_PER_SCORE if "codebook_size" in ref_options else 0
            if ref_name is None:
                ref = {"skipped": "no equivalent"}
            elif need > 0.7 * _available_bytes():
                ref = {"skipped": f"skipped (would need > {need / 2**30:.0f} GB)"}
            else:
                ref_dim = ref_options.get("dim", len(ref_options.get("levels", [])))
                ref = _subprocess(
                    dict(kind="vqp", name=ref_name, options=ref_options, dim=ref_dim, positions=n,
                         repeats=max(1, args.repeats - 1)), args.threads)
            ratio = ""
            if "positions_per_s" in ours and "positions_per_s" in ref:
                ratio = f"{ours['positions_per_s'] / ref['positions_per_s']:.1f}x"
            print(f"| {label} | {n} | {' | '.join(_fmt(ours))} | {' | '.join(_fmt(ref))} | {ratio} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
