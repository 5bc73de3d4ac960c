"""Check qbench's GPU path on an NVIDIA machine in under 10 minutes, and print one summary table.

    pip install -e ".[test]"
    python benchmarks/gpu/check_gpu.py                # every visible GPU; torchrun is started for you
    python benchmarks/gpu/check_gpu.py --cpu-smoke    # a dry run of this script on CPU, in seconds

What it runs: the paper VAE recipe (``imagenet128-vae``: 128x128, F8 conv
backbone with adaptive GroupNorm, LPIPS-VGG loss, EMA, bf16 autocast) on a
generated ImageFolder, for a few hundred steps per quantizer, under DDP with
NCCL on all visible GPUs.  What it reports per quantizer: status, training
images per second (all GPUs), peak GPU memory (rank 0), the dtype the
quantizer's lookups ran in and whether autocast was off inside them (both
must read float32 / off), final loss and held-out PSNR.

Without the VGG16 weights in the torch cache the LPIPS loss uses the same
network with random weights (same cost; the table says so), because this is
a check of the machine and the code path, not a result.  Exit status 0 when
every run finished and every lookup stayed float32, 1 otherwise, 2 when no
GPU is visible (use ``--cpu-smoke`` there).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = "imagenet128-vae"
CPU_SMOKE_SIZES = ["data.image_size=16", "data.batch_size=2", "model.options.channels=8",
                   "model.options.num_res_blocks=1", "train.steps=2", "train.device='cpu'", "eval.max_images=4",
                   "eval.batch_size=2", "eval.grid_images=0"]


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
            image = Image.fromarray(coarse).resize((size + size // 4, size), Image.BICUBIC)
            image.save(folder / f"{i:05d}.png")
    return root


def _cuda_ready() -> bool:
    """CUDA may be touched: a GPU is there and, under torchrun, this rank has picked its own device."""
    import torch
    import torch.distributed as dist

    return torch.cuda.is_available() and ("WORLD_SIZE" not in os.environ or dist.is_initialized())


def relaunch_under_torchrun(gpus: int, argv: list[str]) -> int:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
               str(Path(__file__).resolve()), *argv]
    print(f"starting {gpus} processes: {' '.join(command)}", flush=True)
    return subprocess.call(command)


def use_random_lpips_if_weights_missing() -> str:
    """The LPIPS-VGG loss with random weights when the pretrained file is absent; returns what was used."""
    import qbench.losses as losses
    import qbench.train as train_module
    from qbench import weights

    if weights.describe("vgg16")["present"]:
        return "pretrained VGG16"
    built = {}

    def perceptual(net):  # frozen, so one network serves every run (building VGG16 takes seconds)
        if net not in built:
            built[net] = losses.PerceptualLoss(net, random_backbone=True)
        return built[net]

    losses.require_lpips_weights = lambda net: None
    train_module.PerceptualLoss = perceptual
    return "random-weight VGG16 (weights not installed)"


class Probes:
    """Per quantizer: what its lookups saw in training (dtype, autocast) and the peak GPU memory."""

    def __init__(self) -> None:
        self.lookups: dict[str, set] = {}
        self.peak: dict[str, int] = {}
        self.current = None

    def install(self) -> None:
        import torch

        import qbench.model as model_module

        build = model_module.build_tokenizer

        def build_and_watch(identity, registries=None):
            if _cuda_ready():  # a new run starts: close the previous one's memory record
                if self.current is not None:
                    self.peak[self.current] = torch.cuda.max_memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            self.current = identity.quantizer
            tokenizer = build(identity, registries=registries)
            tokenizer.quantizer.register_forward_pre_hook(self._hook(identity.quantizer))
            return tokenizer

        model_module.build_tokenizer = build_and_watch

    def _hook(self, name):
        import torch

        def record(module, inputs):
            if module.training:
                z = inputs[0]
                self.lookups.setdefault(name, set()).add((str(z.dtype).replace("torch.", ""),
                                                          torch.is_autocast_enabled(z.device.type)))

        return record

    def finish(self) -> None:
        import torch

        if _cuda_ready() and self.current is not None:
            self.peak[self.current] = torch.cuda.max_memory_allocated()


def table(rows: list[dict], header: str) -> str:
    columns = ["quantizer", "status", "GPUs", "steps", "img/s", "peak mem (GiB)", "lookup dtype",
               "autocast in lookup", "final loss", "PSNR (dB)"]
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([header, line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def environment_line(device_note: str, lpips_note: str) -> str:
    import torch
    import torch.distributed as dist

    backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else "none (one process)"
    parts = [f"torch {torch.__version__}", f"CUDA {torch.version.cuda}", device_note, f"process group: {backend}"]
    if torch.cuda.is_available():
        nccl = torch.cuda.nccl.version()
        parts.append("NCCL " + (".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)))
    return " | ".join(parts) + f"\nLPIPS loss: {lpips_note}"


def run_checks(args, work: Path) -> int:
    import torch

    from qbench import distributed, runner
    from qbench.config import load_recipe

    data = work / "data"
    overrides = [f"data.root='{data}'", f"train.steps={args.steps}", f"data.batch_size={args.batch_size}",
                 "train.checkpoint_every=0", "train.log_every=50", "data.num_workers=4",
                 "eval.metrics=['psnr','usage','perplexity','throughput']", "eval.max_images=64",
                 "eval.batch_size=32", "eval.grid_images=8"]
    if args.cpu_smoke:
        overrides += CPU_SMOKE_SIZES + ["data.num_workers=0"]
        torch.set_num_threads(1)  # toy-sized convolutions run fastest on one thread
    recipe = load_recipe(RECIPE, overrides)
    lpips_note = use_random_lpips_if_weights_missing()
    probes = Probes()
    probes.install()
    quantizers = [q.strip() for q in args.quantizers.split(",") if q.strip()]
    started = time.perf_counter()
    outcomes = runner.run_comparison(quantizers, recipe, out_root=work / "runs", progress=False)
    probes.finish()
    if not distributed.is_main_process():
        torch.distributed.destroy_process_group()
        return 0
    rows, healthy = [], True
    for outcome in outcomes:
        train = outcome.record.get("train", {})
        world = train.get("world_size", 1)
        seen = probes.lookups.get(outcome.quantizer, set())
        dtypes = ",".join(sorted({d for d, _ in seen})) or "not seen"
        autocast = ",".join(sorted({"on" if a else "off" for _, a in seen})) or "not seen"
        psnr = outcome.metrics.get("psnr", {})
        wall = train.get("wall_time_s") or 0
        rows.append({
            "quantizer": outcome.quantizer, "status": outcome.status, "GPUs": world, "steps": train.get("steps", 0),
            "img/s": f"{train.get('steps', 0) * recipe.data.batch_size * world / wall:.1f}" if wall else "-",
            "peak mem (GiB)": f"{probes.peak[outcome.quantizer] / 2**30:.2f}" if outcome.quantizer in probes.peak else "-",
            "lookup dtype": dtypes, "autocast in lookup": autocast,
            "final loss": f"{train['final_loss']:.4f}" if isinstance(train.get("final_loss"), float) else "-",
            "PSNR (dB)": f"{psnr['value']:.2f}" if psnr.get("status") == "ok" else psnr.get("status", "-"),
        })
        healthy &= outcome.status == "ok" and dtypes == "float32" and autocast == "off"
    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.cpu_smoke else "CPU (--cpu-smoke)")
    header = (f"qbench GPU check: {RECIPE}, bf16, {args.steps if not args.cpu_smoke else 2} steps per quantizer, "
              f"{time.perf_counter() - started:.0f} s\n{environment_line(device, lpips_note)}\n")
    print(table(rows, header))
    print(f"\nruns: {work / 'runs'}\nverdict: {'OK' if healthy else 'PROBLEM (see the table)'}")
    if distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    under_torchrun = "WORLD_SIZE" in os.environ
    if not args.cpu_smoke and not under_torchrun:
        import torch

        if not torch.cuda.is_available():
            print("check_gpu: no CUDA GPU is visible to torch; run with --cpu-smoke to dry-run this script on CPU",
                  file=sys.stderr)
            return 2
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="qbench-gpu-check-"))
    if not args.cpu_smoke and not under_torchrun:
        gpus = args.gpus or torch.cuda.device_count()
        generate_images(work / "data", 144, train=max(512, args.batch_size * gpus * 4), val=64)
        if gpus > 1:
            return relaunch_under_torchrun(gpus, [f"--quantizers={args.quantizers}", f"--steps={args.steps}",
                                                  f"--batch-size={args.batch_size}", f"--work={work}"])
    elif args.cpu_smoke and not under_torchrun:
        generate_images(work / "data", 20, train=8, val=4)
    return run_checks(args, work)


if __name__ == "__main__":
    sys.exit(main())
