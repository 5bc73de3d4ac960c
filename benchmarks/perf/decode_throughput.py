"""Decode throughput of the training stream: ``webdataset`` shards against ``imagefolder`` files.

Builds a folder of JPEG images (tiles of the scikit-image photos, scaled up
to an ImageNet-like size), writes it as shards with ``qbench data shards``, then times the stream that
training reads (a DataLoader set up as ``qbench/engine/data.py`` does: decode,
resize, centre crop, collate; 4 batches prefetched per worker) for both
datasets with 1, 2 and 4 loader workers.  The two datasets alternate, round after round, so that
both see the same machine load; the table gives each one's median img/s over
the rounds and their ratio.  The files sit in the page cache (a local disk),
so this measures decoding and the loader, not a shared filesystem's latency,
which is where shards help most.

    python benchmarks/perf/decode_throughput.py            # ~3 minutes on 2 cores
    python benchmarks/perf/decode_throughput.py --quick
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from PIL import Image

import qbench
from qbench_builtins.datasets import PHOTO_FILES, skimage_data_dir


def make_folder(root: Path, count: int, side: int) -> None:
    """``count`` JPEGs of about ``side`` x 1.33 ``side`` pixels, cut from the photos (quality 90)."""
    photos = []
    for name in PHOTO_FILES:
        with Image.open(skimage_data_dir() / name) as photo:
            photos.append(photo.convert("RGB"))
    folder = root / "train" / "n0"
    folder.mkdir(parents=True)
    (root / "val" / "n0").mkdir(parents=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        w, h = photo.width // 2, photo.height // 2
        left, top = (i * 37) % (photo.width - w), (i * 53) % (photo.height - h)
        tile = photo.crop((left, top, left + w, top + h)).resize((round(side * 4 / 3), side), Image.BICUBIC)
        tile.save(folder / f"img{i:05d}.jpg", quality=90)
    photos[0].save(root / "val" / "n0" / "val.jpg")


def loader(dataset, batch: int, workers: int):
    """Endless batches as training reads them (one rank)."""
    if hasattr(dataset, "stream"):  # shards: the dataset splits itself per worker
        dataset = dataset.stream(rank=0, world_size=1, batch_size=batch, start_step=0, num_workers=workers)
        options = {}
    else:
        options = {"sampler": torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=10**9)}
    return iter(torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=torch.stack,
                                            prefetch_factor=4, **options))


def rate(dataset, batch: int, workers: int, steps: int) -> float:
    batches = loader(dataset, batch, workers)
    next(batches)  # workers started, first batch decoded
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    seconds = time.perf_counter() - start
    del batches
    return steps * batch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and rounds")
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # 4 workers on fewer cores: on purpose
    count, rounds, steps, batch = (256, 2, 6, 16) if args.quick else (512, 3, 12, 16)
    regs = qbench.registries()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        make_folder(root / "folder", count, side=375)  # ImageNet's typical shorter side
        subprocess.run([sys.executable, "-m", "qbench.cli", "data", "shards", str(root / "folder"), str(root / "shards"),
                        "--size", "16"], check=True, stdout=subprocess.DEVNULL)
        sets = {
            "imagefolder": regs.datasets.create("imagefolder", split="train", image_size=args.image_size,
                                                root=str(root / "folder")),
            "webdataset": regs.datasets.create("webdataset", split="train", image_size=args.image_size,
                                               root=str(root / "shards")),
        }
        print(f"{count} JPEGs ~500x375, crop {args.image_size}, batch {batch}, {steps} batches x {rounds} rounds")
        print("| workers | imagefolder img/s | webdataset img/s | webdataset / imagefolder |")
        print("|---|---|---|---|")
        for workers in (1, 2, 4):
            seen = {name: [] for name in sets}
            for _ in range(rounds):
                for name, dataset in sets.items():
                    seen[name].append(rate(dataset, batch, workers, steps))
            folder, shards = (statistics.median(seen[n]) for n in ("imagefolder", "webdataset"))
            print(f"| {workers} | {folder:.0f} | {shards:.0f} | {shards / folder:.2f} |", flush=True)


if __name__ == "__main__":
    main()
