"""The ``photos`` dataset: crops of the colour photos that ship inside the scikit-image wheel.

astronaut, chelsea, coffee, rocket (public domain) and hubble_deep_field
(NASA, public domain) are read from the installed package directory with
PIL; the ``skimage.data`` loaders are never called because other images
there are downloaded on first use.

Each photo is cut, left to right, into three regions that never overlap:

    | train (the rest) | val (val_fraction) | test (test_fraction) |

widths as fractions of the photo's width: test is the rightmost
``test_fraction``, val the ``val_fraction`` strip just left of it.  With
``test_fraction = 0`` (the default) the cut is the one qbench has always
made (train | val, the cut at ``round(W * (1 - val_fraction))``), so older
recipes read exactly the pixels they read before; they have no test split.
``val`` and ``test`` are fixed grids of non-overlapping crops of their strip;
training items are random crops (with flips and downscaled pyramid levels
made from the training region alone) drawn deterministically from
``(seed, index)``, so a training stream is identical across runs, resumes
and ranks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from qbench import ConfigError
from qbench_builtins.images import check_common, skimage_data_dir, to_rgb8, to_tensor

PHOTO_FILES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg")
MAX_HELD_OUT = 0.75  # val + test: training keeps at least a quarter of every photo


def check_photo_fractions(val_fraction, test_fraction) -> tuple[float, float]:
    """The two strip widths as floats, or one ``ConfigError`` naming the value out of range."""
    for name, value, low in (("val_fraction", val_fraction, 0.05), ("test_fraction", test_fraction, 0.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= 0.5:
            raise ConfigError(f"photos: data.options.{name} must be in [{low:g}, 0.5], got {value!r}")
    if val_fraction + test_fraction > MAX_HELD_OUT:
        raise ConfigError(f"photos: val_fraction + test_fraction must be at most {MAX_HELD_OUT} (training keeps the "
                          f"rest of each photo), got {val_fraction:g} + {test_fraction:g}")
    return float(val_fraction), float(test_fraction)


def split_columns(width: int, val_fraction: float, test_fraction: float) -> dict[str, tuple[int, int]]:
    """``{split: (first column, end column)}`` of a photo ``width`` pixels wide: train | val | test."""
    train_end = int(round(width * (1.0 - (val_fraction + test_fraction))))
    val_end = int(round(width * (1.0 - test_fraction)))
    return {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, width)}


class Photos(torch.utils.data.Dataset):
    """Crops of the scikit-image colour photos (see the module docstring).

    Options:
      val_fraction   width fraction of each photo kept for validation (the strip left of test)
      test_fraction  width fraction kept for the test split (the rightmost strip); 0: no test split
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
        test_fraction: float = 0.0,
        scales: list[float] | tuple[float, ...] = (1.0, 0.5),
        flip: bool = True,
        epoch_size: int = 100_000,
        image_weights: str = "area",
        files: list[str] | tuple[str, ...] = PHOTO_FILES,
    ):
        check_common(split, image_size)
        val_fraction, test_fraction = check_photo_fractions(val_fraction, test_fraction)
        if split == "test" and test_fraction == 0:
            raise ConfigError("photos: no test split with data.options.test_fraction = 0; set "
                              "data.options.test_fraction (the shipped CPU recipes use 0.25) to cut a test strip")
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
                first, end = split_columns(image.width, val_fraction, test_fraction)[split]
                regions.append(image.crop((first, 0, end, image.height)))
            self.sources.append(name)
        if split != "train":
            self.items = [crop for region in regions for crop in self._grid(region)]
            if not self.items:
                raise ConfigError(f"photos: image_size {image_size} leaves no {split} crops; use a smaller size "
                                  f"or a wider {split}_fraction")
            return
        # training: every (photo, scale) level that fits at least one crop, made from the training region alone
        self.levels: list[torch.Tensor] = []
        for region in regions:
            for scale in scales:
                w, h = round(region.width * scale), round(region.height * scale)
                if min(w, h) >= image_size:
                    level = region if scale == 1.0 else region.resize((w, h), Image.BICUBIC, reducing_gap=None)
                    self.levels.append(to_tensor(level))
        if not self.levels:
            raise ConfigError(f"photos: image_size {image_size} is larger than every training region")
        positions = torch.tensor(
            [(t.shape[1] - image_size + 1) * (t.shape[2] - image_size + 1) for t in self.levels], dtype=torch.float64
        )
        weights = positions if image_weights == "area" else torch.ones_like(positions)
        self.level_cdf = torch.cumsum(weights / weights.sum(), 0)

    def _grid(self, region: Image.Image) -> list[torch.Tensor]:
        tensor, size = to_tensor(region), self.image_size
        _, height, width = tensor.shape
        return [
            tensor[:, top : top + size, left : left + size].clone()
            for top in range(0, height - size + 1, size)
            for left in range(0, width - size + 1, size)
        ]

    def __len__(self) -> int:
        return self.epoch_size if self.split == "train" else len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.split != "train":
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
