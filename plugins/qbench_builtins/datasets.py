"""Built-in datasets: offline photos, any ImageFolder root, CIFAR-10.

Every factory is ``factory(*, split, image_size, root="", seed=0, **options)``
and returns a map-style dataset whose items are uint8 tensors (3, H, W).

``photos`` is the offline default: the five colour photos that ship inside
the scikit-image wheel (astronaut, chelsea, coffee, rocket: public domain;
hubble_deep_field: NASA, public domain).  They are read from the installed
package directory with PIL; the ``skimage.data`` loaders are never called
because other images there are downloaded on first use.  Each photo is split
into a training region (left part) and a validation strip (right part) that
never overlap.  Validation is a fixed grid of non-overlapping crops; training
items are random crops (with flips and a downscaled pyramid level) drawn
deterministically from ``(seed, index)``, so a training stream is identical
across runs, resumes and ranks.

Recipes follow the GSQ paper's data handling (arXiv 2412.02632, App. B):
resize the shorter side, centre crop, for ImageNet-style roots.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qbench import ConfigError

SPLITS = ("train", "val")
PHOTO_FILES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff", ".JPEG")


def _check_common(split: str, image_size: int) -> None:
    if split not in SPLITS:
        raise ConfigError(f"dataset split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 8:
        raise ConfigError(f"data.image_size must be an integer >= 8, got {image_size!r}")


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


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


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(to_rgb8(image), dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bicubic, antialiased), then centre crop."""
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = to_rgb8(image).resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def skimage_data_dir() -> Path:
    """The installed scikit-image ``data`` directory (no import of ``skimage.data``)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the photos dataset needs scikit-image installed (pip install scikit-image)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


class Photos(torch.utils.data.Dataset):
    """Crops of the scikit-image colour photos (see the module docstring).

    Options:
      val_fraction   width fraction of each photo kept for validation (right strip)
      scales         pyramid levels used for training crops (1.0 = full resolution)
      flip           random horizontal flips for training
      epoch_size     nominal number of training items (crops are drawn per index)
      image_weights  "area" (pick photos in proportion to their crop positions) or "equal"
      files          which photos to use (names inside scikit-image's data directory)
    """

    def __init__(
        self,
        *,
        split: str = "train",
        image_size: int = 32,
        root: str = "",
        seed: int = 0,
        val_fraction: float = 0.2,
        scales: list[float] | tuple[float, ...] = (1.0, 0.5),
        flip: bool = True,
        epoch_size: int = 100_000,
        image_weights: str = "area",
        files: list[str] | tuple[str, ...] = PHOTO_FILES,
    ):
        _check_common(split, image_size)
        if not 0.05 <= float(val_fraction) <= 0.5:
            raise ConfigError(f"photos: val_fraction must be in [0.05, 0.5], got {val_fraction!r}")
        scales = [float(s) for s in scales]
        if not scales or any(not 0.0 < s <= 1.0 for s in scales):
            raise ConfigError(f"photos: scales must be a non-empty list of values in (0, 1], got {scales!r}")
        if image_weights not in ("area", "equal"):
            raise ConfigError(f"photos: image_weights must be 'area' or 'equal', got {image_weights!r}")
        if int(epoch_size) < 1:
            raise ConfigError(f"photos: epoch_size must be positive, got {epoch_size!r}")
        directory = Path(root) if root else skimage_data_dir()
        self.split, self.image_size, self.seed = split, image_size, int(seed)
        self.flip, self.epoch_size = bool(flip), int(epoch_size)
        self.sources: list[str] = []
        regions: list[Image.Image] = []
        for name in files:
            path = directory / name
            if not path.is_file():
                raise ConfigError(f"photos: {path} not found (files must name images in {directory})")
            with Image.open(path) as image:
                image = to_rgb8(image)
                cut = int(round(image.width * (1.0 - float(val_fraction))))
                box = (0, 0, cut, image.height) if split == "train" else (cut, 0, image.width, image.height)
                regions.append(image.crop(box))
            self.sources.append(name)
        if split == "val":
            self.items = [crop for region in regions for crop in self._grid(region)]
            if not self.items:
                raise ConfigError(f"photos: image_size {image_size} leaves no validation crops; use a smaller size")
            return
        # training: every (photo, scale) level that fits at least one crop
        self.levels: list[torch.Tensor] = []
        for region in regions:
            for scale in scales:
                w, h = round(region.width * scale), round(region.height * scale)
                if min(w, h) >= image_size:
                    level = region if scale == 1.0 else region.resize((w, h), Image.BICUBIC, reducing_gap=None)
                    self.levels.append(_to_tensor(level))
        if not self.levels:
            raise ConfigError(f"photos: image_size {image_size} is larger than every training region")
        positions = torch.tensor(
            [(t.shape[1] - image_size + 1) * (t.shape[2] - image_size + 1) for t in self.levels], dtype=torch.float64
        )
        weights = positions if image_weights == "area" else torch.ones_like(positions)
        self.level_cdf = torch.cumsum(weights / weights.sum(), 0)

    def _grid(self, region: Image.Image) -> list[torch.Tensor]:
        tensor, size = _to_tensor(region), self.image_size
        _, height, width = tensor.shape
        return [
            tensor[:, top : top + size, left : left + size].clone()
            for top in range(0, height - size + 1, size)
            for left in range(0, width - size + 1, size)
        ]

    def __len__(self) -> int:
        return len(self.items) if self.split == "val" else self.epoch_size

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.split == "val":
            return self.items[index]
        # one generator per (seed, index): the same index always gives the same crop
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        u = torch.rand(4, generator=gen, dtype=torch.float64)
        level = self.levels[min(int(torch.searchsorted(self.level_cdf, u[0]).item()), len(self.levels) - 1)]
        size = self.image_size
        top = int(u[1].item() * (level.shape[1] - size + 1))
        left = int(u[2].item() * (level.shape[2] - size + 1))
        crop = level[:, top : top + size, left : left + size]
        if self.flip and u[3].item() < 0.5:
            crop = crop.flip(-1)
        return crop.contiguous()


def _find_images(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in IMAGE_EXTENSIONS or p.suffix.lower() in IMAGE_EXTENSIONS)


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images under an ImageFolder-style root, resized (shorter side) and centre cropped.

    ``root/train`` and ``root/val`` are used when they exist; otherwise every
    image under ``root`` is split by a hash of its relative path
    (``val_fraction`` of them go to validation), so the split never changes
    when files are added.  Unreadable or corrupt images are skipped: the next
    readable image takes their place, and ``skipped`` records each one.
    """

    def __init__(self, *, split: str = "train", image_size: int = 256, root: str = "", seed: int = 0,
                 val_fraction: float = 0.05):
        _check_common(split, image_size)
        if not root:
            raise ConfigError("imagefolder needs data.root (a directory of images, e.g. --set data.root=/data/imagenet)")
        base = Path(root).expanduser()
        if not base.is_dir():
            raise ConfigError(f"imagefolder: data.root {str(base)!r} is not a directory")
        self.image_size, self.seed = image_size, int(seed)
        if (base / split).is_dir():
            self.files = _find_images(base / split)
        else:
            def in_val(path: Path) -> bool:
                digest = hashlib.sha1(str(path.relative_to(base)).encode()).digest()
                return int.from_bytes(digest[:4], "big") / 2**32 < val_fraction
            self.files = [p for p in _find_images(base) if in_val(p) == (split == "val")]
        if not self.files:
            raise ConfigError(f"imagefolder: no images ({', '.join(IMAGE_EXTENSIONS[:5])}, ...) for split {split!r} under {base}")
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, path: Path) -> torch.Tensor:
        with Image.open(path) as image:
            image.load()
            return _to_tensor(resize_center_crop(image, self.image_size))

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
        """One line for the run log: how many images were skipped (and the first few)."""
        if not self.skipped:
            return ""
        shown = ", ".join(os.path.basename(p) for p in list(self.skipped)[:3])
        return (f"skipped {len(self.skipped)} unreadable image(s) of {len(self.files)}, each replaced by "
                f"the next readable one: {shown}")


class CIFAR10Dataset(torch.utils.data.Dataset):
    """torchvision's CIFAR-10 from a local root; downloads only with ``download=True``."""

    def __init__(self, *, split: str = "train", image_size: int = 32, root: str = "", seed: int = 0,
                 download: bool = False):
        _check_common(split, image_size)
        if not root:
            raise ConfigError("cifar10 needs data.root (the directory holding cifar-10-batches-py)")
        from torchvision.datasets import CIFAR10

        try:
            self.base = CIFAR10(root=root, train=(split == "train"), download=bool(download))
        except RuntimeError as exc:
            raise ConfigError(
                f"cifar10: no CIFAR-10 under {root!r} ({exc}); put cifar-10-batches-py there "
                "or set data.options.download=true to download it"
            ) from None
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.base.data)

    def __getitem__(self, index: int) -> torch.Tensor:
        array = self.base.data[index]
        if self.image_size == array.shape[0]:
            return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
        return _to_tensor(resize_center_crop(Image.fromarray(array), self.image_size))
