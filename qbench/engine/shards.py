"""``qbench data shards SRC OUT --size N``: an image folder written as WebDataset tar shards.

SRC is read by the ``imagefolder`` dataset, so the shards hold exactly the
images, and the train / val / test split, that ``imagefolder`` would read
from it with the same options (split folders, or the split by path hash
with ``val_fraction`` and ``test_fraction``; a split missing from split
folders held out of ``train/``).  A split SRC does not have (no test folder
and ``test_fraction`` 0) is not written.  Each image's file bytes go in
unchanged (no re-encoding), under its own extension, with its path relative
to SRC in a ``path.txt`` field; keys are the image's position in the split,
so the ``webdataset`` dataset's evaluation index reads them in
``imagefolder``'s order.  Output: ``OUT/train/shard-000000.tar, ...``,
``OUT/val/...`` and ``OUT/test/...``, at most N images per shard.  Pick N
so that the training shard count is a multiple of the ``webdataset``
dataset's ``data.options.streams`` (64 by default; docs/scale.md).

Bad input (fractions out of range, an OUT that is a file, already holds
shards or cannot be written) is a ``ConfigError`` before any shard exists.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from qbench.errors import ConfigError
from qbench.platform.plugins import registries as build

SPLITS = ("train", "val", "test")


def _field(path: Path) -> str:
    return path.suffix.lower().lstrip(".") or "img"


def fraction_problem(val_fraction, test_fraction) -> str:
    """Why the two shares cannot split a folder ("" when they can): each in [0, 1), a training share left."""
    for flag, value in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            return f"{flag} must be a number in [0, 1), got {value!r}"
    if val_fraction + test_fraction >= 1.0:
        return (f"--val-fraction + --test-fraction must stay below 1 so that a training split is left, "
                f"got {val_fraction:g} + {test_fraction:g}")
    return ""


def _writable_output(target: Path) -> None:
    """``ConfigError`` unless ``target`` is, or can become, an empty-of-shards folder this process can write in."""
    if target.exists() and not target.is_dir():
        raise ConfigError(f"qbench data shards: {target} is a file, not a folder; give an empty or new folder")
    if target.exists() and any(target.glob("*/shard-*.tar")):
        raise ConfigError(f"qbench data shards: {target} already holds shards; give an empty or new folder")
    for split in SPLITS:
        if (target / split).exists() and not (target / split).is_dir():
            raise ConfigError(f"qbench data shards: {target / split} is a file, not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".qbench-write-check-", dir=target)  # a real write: root, mounts, ACLs
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"qbench data shards: cannot write in {target} ({exc.strerror or exc})") from None


def write_shards(src: str | Path, out: str | Path, *, size: int, val_fraction: float = 0.05,
                 test_fraction: float = 0.0, val_folder: str = "val", test_folder: str = "test",
                 registries=None) -> dict[str, tuple[int, int]]:
    """Write the shards; ``{split: (images, shards)}`` for each split that has images."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"--size must be a positive number of images per shard, got {size!r}")
    problem = fraction_problem(val_fraction, test_fraction)
    if problem:
        raise ConfigError(problem)
    source, target = Path(src).expanduser(), Path(out).expanduser()
    if not source.is_dir():
        raise ConfigError(f"qbench data shards: {source} is not a folder of images")
    try:
        # deferred: the optional webdataset package, only when this runs
        import webdataset
    except ImportError:
        raise ConfigError("qbench data shards needs the webdataset package: pip install 'qbench[webdataset]'") from None
    regs = registries or build()
    options = {"val_fraction": val_fraction, "test_fraction": test_fraction, "val_folder": val_folder,
               "test_folder": test_folder}
    files = {}
    for split in SPLITS:  # every split listed before anything is written
        try:
            files[split] = regs.datasets.create("imagefolder", split=split, image_size=8, root=str(source),
                                                **options).files
        except ConfigError:
            if split == "train":
                raise  # bad options, or no images at all
            # a split SRC does not have (no folder, no share, or a share too small for any image)
    _writable_output(target)
    written = {}
    for split, paths in files.items():
        folder = target / split
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with webdataset.ShardWriter(str(folder / "shard-%06d.tar"), maxcount=size, verbose=0) as sink:
                for index, path in enumerate(paths):
                    sink.write({"__key__": f"{index:08d}", _field(path): path.read_bytes(),
                                "path.txt": str(path.relative_to(source))})
        except OSError as exc:
            raise ConfigError(f"qbench data shards: cannot write {folder}: {exc.strerror or exc}") from None
        written[split] = (len(paths), -(-len(paths) // size))
    return written
