"""The ``imagefolder`` dataset: images under a root, resized (shorter side) and centre cropped.

Which images make each split, never one image in two splits:

- **Split folders** (``root/train``, and ``root/val`` / ``root/test``, or the
  folders ``val_folder`` / ``test_folder`` name): each split reads its own
  folder.  A split whose folder is missing is *held out from* ``train/``: the
  images of ``train/`` whose path hash falls in its share (``val_fraction``,
  ``test_fraction``), and ``train`` shrinks by them, so a held-out image is
  never trained on.  A one-line note on stderr and in the run record says so.
  A missing test folder with ``test_fraction = 0`` (the default) is refused:
  there is no test split to read.  Nothing is ever drawn from ``val/`` or
  ``test/`` for another split.
- **A flat root** (none of those folders): every image under it is split by
  the hash of its path relative to the root into three disjoint parts:
  ``val_fraction`` for val, ``test_fraction`` for test, the rest for train.

A path hash never changes when files are added, so the splits stay put as a
folder grows.  ImageNet keeps its labelled validation images in ``val/``;
the field's numbers are measured on them, so the ImageNet recipes read them
as ``test`` (``test_folder = "val"``) and hold ``val`` out of ``train/``
(``val_folder = ""``: no folder).

Unreadable or corrupt images are skipped: the next readable image takes
their place, and ``skipped`` records each one.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from PIL import Image

from qbench import ConfigError
from qbench_builtins.images import (
    IMAGE_EXTENSIONS,
    check_common,
    check_fractions,
    find_images,
    resize_center_crop,
    say_once,
    to_tensor,
)


def path_share(base: Path, path: Path) -> float:
    """Where ``path`` falls in [0, 1): a hash of its path relative to ``base``."""
    digest = hashlib.sha1(str(path.relative_to(base)).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def _check_folder(name: str, value) -> str:
    if not isinstance(value, str) or value in (".", "..", "train") or "/" in value or os.sep in value:
        raise ConfigError(f"imagefolder: data.options.{name} must name a folder directly under data.root "
                          f"(not train), or be \"\" for none, got {value!r}")
    return value


def split_files(base: Path, split: str, *, val_fraction: float, test_fraction: float, val_folder: str = "val",
                test_folder: str = "test") -> tuple[list[Path], str]:
    """The images of ``split`` under ``base`` and a note ("" when none) saying what was held out of train/."""
    folders = {"train": "train", "val": val_folder, "test": test_folder}
    present = {s: bool(f) and (base / f).is_dir() for s, f in folders.items()}
    shares = {"val": val_fraction, "test": test_fraction}
    if present[split] and split != "train":
        return find_images(base / folders[split]), ""
    if not any(present.values()):  # a flat root: three disjoint parts by path hash
        if split == "test" and test_fraction == 0:
            raise ConfigError(f"imagefolder: no test split under {base}: add a test/ folder, or set "
                              "data.options.test_fraction to hold out that share of the images by path hash")
        held, source, note = shares, base, ""
    else:
        if not present["train"]:
            found = ", ".join(f"{f}/" for s, f in folders.items() if present[s])
            raise ConfigError(f"imagefolder: {base} has split folders ({found}) but no train/, so the {split} "
                              f"split has no images to read or hold out")
        held = {s: (0.0 if present[s] else shares[s]) for s in shares}
        if split != "train" and held[split] == 0:
            wanted = folders[split] or split
            raise ConfigError(f"imagefolder: no {split} split under {base}: add a {wanted}/ folder, or set "
                              f"data.options.{split}_fraction to hold out that share of train/ by path hash")
        source, note = base / "train", ""
    bounds = {"val": (0.0, held["val"]), "test": (held["val"], held["val"] + held["test"])}
    shares_of = {p: path_share(base, p) for p in find_images(source)}
    if split == "train":
        files = [p for p, u in shares_of.items() if not any(lo <= u < hi for lo, hi in bounds.values())]
        kept_out = " and ".join(f"{s} ({s}_fraction {held[s]:g})" for s in held if held[s])
        if source != base and kept_out:
            note = (f"imagefolder: train is train/ under {base} less the images held out by path hash as "
                    f"{kept_out}: {len(files)} of {len(shares_of)} images")
        return files, note
    lo, hi = bounds[split]
    files = [p for p, u in shares_of.items() if lo <= u < hi]
    if shares_of and not files:
        where = "train/" if source != base else "the folder"
        raise ConfigError(f"imagefolder: {split} holds out {split}_fraction {held[split]:g} of the {len(shares_of)} "
                          f"images of {where} under {base} by path hash, and none fell in it; raise "
                          f"data.options.{split}_fraction or add a {folders[split] or split}/ folder")
    if source != base:
        note = (f"imagefolder: {split} is {len(files)} images of train/ under {base}, held out by path hash "
                f"(no {folders[split] or split} folder; {split}_fraction {held[split]:g}), never trained on")
    return files, note


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images under an ImageFolder-style root (see the module docstring for the splits).

    Options:
      val_fraction   share held out for val: of a flat root, or of train/ when there is no val folder
      test_fraction  the same for test; 0 (default): a root without a test folder has no test split
      val_folder     the folder under root read as val ("val"; "": none, val is held out of train/)
      test_folder    the folder under root read as test ("test"; ImageNet recipes: "val")
    """

    def __init__(self, *, split: str = "train", image_size: int = 256, root: str = "", seed: int = 0,
                 val_fraction: float = 0.05, test_fraction: float = 0.0, val_folder: str = "val",
                 test_folder: str = "test"):
        check_common(split, image_size)
        val_fraction, test_fraction = check_fractions("imagefolder", val_fraction, test_fraction)
        val_folder, test_folder = _check_folder("val_folder", val_folder), _check_folder("test_folder", test_folder)
        if val_folder and val_folder == test_folder:
            raise ConfigError(f"imagefolder: val_folder and test_folder are both {val_folder!r}; a folder "
                              "belongs to one split")
        if not root:
            raise ConfigError("imagefolder needs data.root (a directory of images, e.g. --set data.root=/data/imagenet)")
        base = Path(root).expanduser()
        if not base.is_dir():
            raise ConfigError(f"imagefolder: data.root {str(base)!r} is not a directory")
        self.image_size, self.seed = image_size, int(seed)
        self.files, self.note = split_files(base, split, val_fraction=val_fraction, test_fraction=test_fraction,
                                            val_folder=val_folder, test_folder=test_folder)
        if not self.files:
            raise ConfigError(f"imagefolder: no images ({', '.join(IMAGE_EXTENSIONS[:5])}, ...) for split {split!r} under {base}")
        say_once(self.note)
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, path: Path) -> torch.Tensor:
        with Image.open(path) as image:
            image.load()
            return to_tensor(resize_center_crop(image, self.image_size))

    def __getitem__(self, index: int) -> torch.Tensor:
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            if str(path) in self.skipped:
                continue
            try:
                return self._load(path)
            except Exception as exc:  # corrupt or unreadable: count it and use the next one
                self.skipped[str(path)] = f"{type(exc).__name__}: {exc}"
                # also said on stderr: loader worker processes keep their own counts
                warnings.warn(f"imagefolder: skipping unreadable image {path}: {self.skipped[str(path)]}", stacklevel=2)
        raise ConfigError(f"imagefolder: none of the {len(self.files)} images could be read")

    def report(self) -> str:
        """One line for the run record: how the split was made (when held out) and what was skipped."""
        lines = [self.note] if self.note else []
        if self.skipped:
            shown = ", ".join(os.path.basename(p) for p in list(self.skipped)[:3])
            lines.append(f"skipped {len(self.skipped)} unreadable image(s) of {len(self.files)}, each replaced by "
                         f"the next readable one: {shown}")
        return "; ".join(lines)
