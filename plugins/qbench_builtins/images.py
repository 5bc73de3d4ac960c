"""What every built-in dataset shares: the split names, image decoding, resize and crop, fraction checks.

Every dataset factory is ``factory(*, split, image_size, root="", seed=0, **options)``
and returns a map-style dataset of uint8 tensors (3, H, W).  The three splits
are disjoint: ``train`` is trained on, ``val`` is for selection (held-out
curves, tuning, early stopping) and ``test`` for final numbers only.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qbench import ConfigError

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff", ".JPEG")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")

_said: set[str] = set()


def check_common(split: str, image_size: int) -> None:
    if split not in SPLITS:
        raise ConfigError(f"dataset split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 8:
        raise ConfigError(f"data.image_size must be an integer >= 8, got {image_size!r}")


def check_fractions(dataset: str, val_fraction, test_fraction, *, val_low: float = 0.0, most: float = 1.0) -> tuple[float, float]:
    """``(val_fraction, test_fraction)`` as floats, or one ``ConfigError`` naming what is out of range.

    Each lies in ``[low, most)`` (val from ``val_low``, test from 0) and their
    sum below ``most``: what is left is the training share, never empty.
    """
    values = []
    for name, value, low in (("val_fraction", val_fraction, val_low), ("test_fraction", test_fraction, 0.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < most:
            raise ConfigError(f"{dataset}: data.options.{name} must be a number in [{low:g}, {most:g}), got {value!r}")
        values.append(float(value))
    if values[0] + values[1] >= most:
        raise ConfigError(f"{dataset}: val_fraction + test_fraction must stay below {most:g} so that a training "
                          f"part is left, got {values[0]:g} + {values[1]:g}")
    return values[0], values[1]


def say_once(note: str) -> None:
    """``note`` on stderr, once per run: once per process (datasets are built once per split, and again
    by checks), and only on the first rank of a ``torchrun`` group."""
    if note and note not in _said and os.environ.get("RANK", "0") == "0":
        _said.add(note)
        print(note, file=sys.stderr)


def to_rgb8(image: Image.Image) -> Image.Image:
    """8-bit RGB of ``image``; 16-bit greyscale is scaled to 8 bits, other high-depth modes refused.

    PIL opens a 16-bit greyscale PNG or TIFF in mode ``I;16``, and
    ``convert("RGB")`` clips its values at 255 instead of scaling them: the
    image comes out almost white.  Here 0..65535 maps to 0..255 (x / 257,
    rounded).  16-bit RGB PNGs already open as 8-bit ``RGB`` (the high
    bytes).  32-bit integer (``I``) and float (``F``) images have no fixed
    range, so they are refused rather than guessed.
    """
    if image.mode in SIXTEEN_BIT_MODES:
        levels = np.asarray(image).astype(np.float64)
        return Image.fromarray(np.rint(levels / 257.0).astype(np.uint8), mode="L").convert("RGB")
    if image.mode in ("I", "F"):
        raise ValueError(f"{'32-bit integer' if image.mode == 'I' else 'floating-point'} images (PIL mode "
                         f"{image.mode}) have no fixed range; save them as 8- or 16-bit images")
    return image.convert("RGB")


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(to_rgb8(image), dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bicubic, antialiased), then centre crop."""
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = to_rgb8(image).resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def find_images(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in IMAGE_EXTENSIONS or p.suffix.lower() in IMAGE_EXTENSIONS)


def skimage_data_dir() -> Path:
    """The installed scikit-image ``data`` directory (no import of ``skimage.data``)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the photos dataset needs scikit-image installed (pip install scikit-image)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"
