"""``qbench data shards SRC OUT --size N``: an image folder written as WebDataset tar shards.

SRC is read by the ``imagefolder`` dataset, so the shards hold exactly the
images, and the train/val split, that ``imagefolder`` would read from it
(``SRC/train`` and ``SRC/val`` when they exist, else the split by path hash
with ``val_fraction``).  Each image's file bytes go in unchanged (no
re-encoding), under its own extension, with its path relative to SRC in a
``path.txt`` field; keys are the image's position in the split, so the
``webdataset`` dataset's evaluation index reads them in ``imagefolder``'s
order.  Output: ``OUT/train/shard-000000.tar, ...`` and ``OUT/val/...``, at
most N images per shard.  Pick N so that the training shard count is a
multiple of the ``webdataset`` dataset's ``data.options.streams`` (64 by
default; docs/scale.md).
"""

from __future__ import annotations

from pathlib import Path

from qbench.errors import ConfigError
from qbench.platform.plugins import registries as build

SPLITS = ("train", "val")


def _field(path: Path) -> str:
    return path.suffix.lower().lstrip(".") or "img"


def write_shards(src: str | Path, out: str | Path, *, size: int, val_fraction: float = 0.05,
                 registries=None) -> dict[str, tuple[int, int]]:
    """Write the shards; ``{split: (images, shards)}`` for each split that has images."""
    if not isinstance(size, int) or size < 1:
        raise ConfigError(f"--size must be a positive number of images per shard, got {size!r}")
    source, target = Path(src).expanduser(), Path(out).expanduser()
    if not source.is_dir():
        raise ConfigError(f"qbench data shards: {source} is not a folder of images")
    if target.exists() and any(target.glob("*/shard-*.tar")):
        raise ConfigError(f"qbench data shards: {target} already holds shards; give an empty or new folder")
    try:
        # deferred: the optional webdataset package, only when this runs
        import webdataset
    except ImportError:
        raise ConfigError("qbench data shards needs the webdataset package: pip install 'qbench[webdataset]'") from None
    regs = registries or build()
    written = {}
    for split in SPLITS:
        try:
            files = regs.datasets.create("imagefolder", split=split, image_size=8, root=str(source),
                                         val_fraction=val_fraction).files
        except ConfigError as exc:
            if "no images" in str(exc):
                continue  # e.g. a folder with train/ only
            raise
        folder = target / split
        folder.mkdir(parents=True, exist_ok=True)
        with webdataset.ShardWriter(str(folder / "shard-%06d.tar"), maxcount=size, verbose=0) as sink:
            for index, path in enumerate(files):
                sink.write({"__key__": f"{index:08d}", _field(path): path.read_bytes(),
                            "path.txt": str(path.relative_to(source))})
        written[split] = (len(files), -(-len(files) // size))
    if not written:
        raise ConfigError(f"qbench data shards: no images under {source}")
    return written
