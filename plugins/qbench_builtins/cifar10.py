"""The ``cifar10`` dataset: CIFAR-10 from its ``cifar-10-batches-py`` folder, in three disjoint splits.

- ``test``: CIFAR-10's own test set (``test_batch``, 10,000 images);
- ``val``: ``val_images`` (default 5,000) images of the training set, picked
  by a permutation with a fixed seed (``VAL_PERMUTATION_SEED``, never the
  run's seed), so every run of every recipe holds out the same images;
- ``train``: the other training images (45,000 by default).

The batches are read as the format describes them (pickled dicts whose
``data`` is an (N, 3072) uint8 array, channel planes of 32x32), so a local
copy is all it takes; torchvision downloads one only with ``download=true``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qbench import ConfigError
from qbench_builtins.images import check_common, resize_center_crop, to_tensor

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
VAL_PERMUTATION_SEED = 20_100_310  # fixed: the val hold-out does not move with a run's seed
SIDE = 32


def _read_batch(path: Path) -> np.ndarray:
    """The images of one batch file as (N, 32, 32, 3) uint8."""
    try:
        with open(path, "rb") as fh:
            entry = pickle.load(fh, encoding="bytes")
        data = np.asarray(entry[b"data"] if b"data" in entry else entry["data"], dtype=np.uint8)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ConfigError(f"cifar10: {path} is not a CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise ConfigError(f"cifar10: {path} holds data of shape {data.shape}, not (N, {3 * SIDE * SIDE})")
    return data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)


def val_indices(train_size: int, val_images: int) -> np.ndarray:
    """The training-set positions held out as val: the last ``val_images`` of a fixed-seed permutation, sorted."""
    order = np.random.default_rng(VAL_PERMUTATION_SEED).permutation(train_size)
    return np.sort(order[train_size - val_images:])


def _download(root: str) -> None:
    # deferred: torchvision only when a download is asked for
    from torchvision.datasets import CIFAR10

    try:
        CIFAR10(root=root, train=True, download=True)
    except Exception as exc:
        raise ConfigError(f"cifar10: download to {root!r} failed ({type(exc).__name__}: {exc})") from None


class CIFAR10Dataset(torch.utils.data.Dataset):
    """CIFAR-10 train / val / test (see the module docstring); items resized when ``image_size`` is not 32."""

    def __init__(self, *, split: str = "train", image_size: int = 32, root: str = "", seed: int = 0,
                 download: bool = False, val_images: int = 5000):
        check_common(split, image_size)
        if not root:
            raise ConfigError("cifar10 needs data.root (the directory holding cifar-10-batches-py)")
        if isinstance(val_images, bool) or not isinstance(val_images, int) or val_images < 1:
            raise ConfigError(f"cifar10: data.options.val_images must be a positive integer, got {val_images!r}")
        if download:
            _download(root)
        folder = Path(root).expanduser() / FOLDER
        names = (TEST_BATCH,) if split == "test" else TRAIN_BATCHES
        try:
            data = np.concatenate([_read_batch(folder / name) for name in names])
        except FileNotFoundError as exc:
            raise ConfigError(f"cifar10: no CIFAR-10 under {root!r} ({exc.filename} not found); put "
                              f"{FOLDER} there or set data.options.download=true to download it") from None
        if split != "test":
            if val_images >= len(data):
                raise ConfigError(f"cifar10: val_images {val_images} leaves no training images of {len(data)}")
            held = np.zeros(len(data), dtype=bool)
            held[val_indices(len(data), val_images)] = True
            data = data[held] if split == "val" else data[~held]
        self.data, self.image_size = np.ascontiguousarray(data), image_size

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> torch.Tensor:
        array = self.data[index]
        if self.image_size == array.shape[0]:
            return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
        return to_tensor(resize_center_crop(Image.fromarray(array), self.image_size))
