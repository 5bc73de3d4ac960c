"""Check qbench's GPU path on an NVIDIA machine in under 10 minutes, and print one summary table.

    pip install -e ".[test]"
    python benchmarks/gpu/check_gpu.py                # every visible GPU; torchrun is started for you
    python benchmarks/gpu/check_gpu.py --cpu-smoke    # a dry run of this script on CPU, in seconds

What it runs, as a user would: ``qbench run`` (under ``torchrun`` when more
than one GPU is visible, so DDP over NCCL) with the paper VAE recipe
``imagenet128-vae`` (128x128, F8 conv backbone with adaptive GroupNorm,
LPIPS-VGG loss, EMA, bf16 autocast) on a generated ImageFolder, for a few
hundred steps per quantizer.  Then, on the GPU, every quantizer's lookups
under bf16 autocast are compared with float32 lookups of the same latents.
The table shows, per quantizer: status, training images per second (all
GPUs), peak GPU memory (rank 0), whether the bf16-autocast codes equal the
float32 ones (they must), final loss and held-out PSNR.

Without the VGG16 weights in the torch cache, the LPIPS loss gets a
random-weight VGG16 of the same architecture and cost in a temporary
TORCH_HOME (the table says so): this checks the machine and the code path,
not a result.  Exit status 0 when every run finished and every lookup
stayed float32, 1 otherwise, 2 when no GPU is visible (use --cpu-smoke).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = "imagenet128-vae"
CHECK_SETTINGS = ["train.checkpoint_every=0", "train.log_every=50", "eval.max_images=64", "eval.batch_size=32",
                  "eval.grid_images=8", "eval.metrics=['psnr','usage','perplexity','throughput']"]
CPU_SMOKE_SETTINGS = ["data.image_size=16", "data.batch_size=2", "data.num_workers=0", "model.options.channels=8",
                      "model.options.num_res_blocks=1", "train.steps=2", "train.device='cpu'", "train.threads=1",
                      "eval.max_images=4", "eval.batch_size=2", "eval.grid_images=0", "loss.lpips_weight=0"]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quantizers", default="gsq,vq", help="comma-separated (default: gsq,vq)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per quantizer (default: 300)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per GPU per step (default: 32, the recipe's)")
    parser.add_argument("--gpus", type=int, default=0, help="how many GPUs (default: all visible)")
    parser.add_argument("--work", default=None, help="folder for the generated data and runs (default: a temp folder)")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU: checks this script, not a GPU")
    return parser.parse_args(argv)


def generate_images(root: Path, size: int, train: int, val: int) -> Path:
    """Smooth random colour fields (learnable, unlike white noise) as an ImageFolder: root/{train,val}/c0/."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        folder = root / split / "c0"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            coarse = (rng.random((6, 6, 3)) * 255).astype(np.uint8)
            Image.fromarray(coarse).resize((size + size // 4, size), Image.BICUBIC).save(folder / f"{i:05d}.png")
    return root


def lpips_weights(work: Path, cpu_smoke: bool) -> tuple[dict[str, str], str]:
    """Environment for the training process, and what the LPIPS loss runs on."""
    from qbench import weights

    if cpu_smoke:
        return {}, "off in --cpu-smoke (tests/test_shipped_recipes.py runs it on CPU)"
    if weights.describe("vgg16")["present"]:
        return {}, "pretrained VGG16"
    import torch
    import torchvision

    home = work / "torch-home"
    target = home / "hub" / "checkpoints" / weights.get("vgg16").filename
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), target)  # same network, random weights
    return {"TORCH_HOME": str(home)}, "random-weight VGG16 stand-in (weights not installed: qbench weights fetch vgg16)"


def train(args, gpus: int, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    # data.batch_size is the global batch: per-GPU batch x GPUs
    settings = [f"data.root='{work / 'data'}'", f"train.steps={args.steps}", f"data.batch_size={args.batch_size * gpus}",
                "data.num_workers=4", *CHECK_SETTINGS]
    if args.cpu_smoke:
        settings += CPU_SMOKE_SETTINGS
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"] \
        if gpus > 1 else [sys.executable]
    command = [*launcher, "-m", "qbench.cli", "run", "--recipe", RECIPE, "--quantizers", args.quantizers,
               "--out", str(work / "runs"), "--no-progress"]
    for item in settings:
        command += ["--set", item]
    print("running: " + " ".join(command), flush=True)
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})


def latest_records(runs: Path) -> dict[str, dict]:
    """The newest metrics.json of each quantizer under ``runs``."""
    records = {}
    for path in sorted(runs.rglob("metrics.json"), key=lambda p: p.stat().st_mtime):
        record = json.loads(path.read_text())
        records[record["run"]["quantizer"]] = record
    return records


def lookups_stay_float32(name: str, options: dict, device: str) -> str:
    """Whether the quantizer's codes under bf16 autocast equal its float32 codes of the same latents."""
    import torch

    import qbench

    quantizer = qbench.registries().quantizers.create(name, **options).to(device).eval()
    latents = torch.randn(8, options["dim"], 16, 16, device=device, generator=torch.Generator(device).manual_seed(0))
    latents = latents.to(torch.bfloat16)  # what an encoder under bf16 autocast hands over
    with torch.no_grad():
        reference = quantizer.encode(latents.float())
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
            codes = quantizer(latents).codes
    differ = int((codes != reference).sum())
    return "yes" if differ == 0 else f"NO ({differ} of {codes.numel()} codes differ)"


def table(rows: list[dict]) -> str:
    columns = ["quantizer", "status", "GPUs", "steps", "img/s", "peak GPU mem (GiB)", "bf16 lookups = fp32",
               "final loss", "PSNR (dB)"]
    cells = [[str(row.get(c, "-")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]

    def line(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def summary_rows(records: dict[str, dict], quantizers: list[str], device: str, batch: int) -> list[dict]:
    rows = []
    for name in quantizers:
        record = records.get(name)
        if record is None:
            rows.append({"quantizer": name, "status": "no run"})
            continue
        run, train_info, psnr = record["run"], record.get("train", {}), record["metrics"].get("psnr", {})
        world, wall, steps = train_info.get("world_size", 1), train_info.get("wall_time_s") or 0, train_info.get("steps", 0)
        rows.append({
            "quantizer": name, "status": run["status"], "GPUs": world, "steps": steps,
            "img/s": f"{steps * batch * world / wall:.1f}" if wall else "-",  # batch: per GPU
            "peak GPU mem (GiB)": train_info.get("peak_gpu_memory_gib", "-"),
            "bf16 lookups = fp32": lookups_stay_float32(name, run["options"], device),
            "final loss": f"{train_info['final_loss']:.4f}" if isinstance(train_info.get("final_loss"), float) else "-",
            "PSNR (dB)": f"{psnr['value']:.2f}" if psnr.get("status") == "ok" else psnr.get("status", "-"),
        })
    return rows


def environment(device: str, gpus: int, lpips_note: str) -> str:
    import torch

    parts = [f"torch {torch.__version__}", f"CUDA {torch.version.cuda}"]
    if device == "cuda":
        nccl = torch.cuda.nccl.version()
        parts += [torch.cuda.get_device_name(0), "NCCL " + (".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)),
                  f"DDP over NCCL, {gpus} processes" if gpus > 1 else "one process"]
    else:
        parts.append("CPU (--cpu-smoke), one process")
    return " | ".join(parts) + f"\nLPIPS loss: {lpips_note}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("check_gpu: no CUDA GPU is visible to torch; run with --cpu-smoke to dry-run this script on CPU",
              file=sys.stderr)
        return 2
    device = "cpu" if args.cpu_smoke else "cuda"
    gpus = 1 if args.cpu_smoke else (args.gpus or torch.cuda.device_count())
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="qbench-gpu-check-"))
    started = time.perf_counter()
    if args.cpu_smoke:
        generate_images(work / "data", 20, train=8, val=4)
    else:
        generate_images(work / "data", 144, train=max(512, args.batch_size * gpus * 4), val=64)
    env, lpips_note = lpips_weights(work, args.cpu_smoke)
    result = train(args, gpus, work, env)
    if result.returncode not in (0, 1):  # 1: a run failed, shown in the table
        print(result.stdout[-3000:] + result.stderr[-5000:], file=sys.stderr)
        print(f"check_gpu: qbench run exited with status {result.returncode}", file=sys.stderr)
        return 1
    quantizers = [q.strip() for q in args.quantizers.split(",") if q.strip()]
    batch = 2 if args.cpu_smoke else args.batch_size
    rows = summary_rows(latest_records(work / "runs"), quantizers, device, batch)
    steps = 2 if args.cpu_smoke else args.steps
    print(f"\nqbench GPU check: {RECIPE}, bf16, {steps} steps per quantizer, {time.perf_counter() - started:.0f} s")
    print(environment(device, gpus, lpips_note) + "\n")
    print(table(rows))
    healthy = all(r.get("status") == "ok" and r.get("bf16 lookups = fp32") == "yes" for r in rows)
    print(f"\nruns: {work / 'runs'}\nverdict: {'OK' if healthy else 'PROBLEM (see the table)'}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
