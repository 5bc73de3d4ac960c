"""Datasets: offline photos (split never overlaps, deterministic crops), ImageFolder, CIFAR-10 errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import qbench
from qbench_builtins.datasets import PHOTO_FILES, ImageFolderDataset, Photos, skimage_data_dir


def test_photo_files_ship_with_scikit_image():
    for name in PHOTO_FILES:
        assert (skimage_data_dir() / name).is_file(), name


def test_photos_validation_is_the_grid_of_the_right_strip():
    val = Photos(split="val", image_size=32, val_fraction=0.2)
    expected = 0
    for name in PHOTO_FILES:
        with Image.open(skimage_data_dir() / name) as im:
            width, height = im.size
        cut = round(width * 0.8)
        expected += ((width - cut) // 32) * (height // 32)
    assert len(val) == expected
    # first crop is the top-left tile of astronaut's validation strip, pixel for pixel
    with Image.open(skimage_data_dir() / "astronaut.png") as im:
        array = np.asarray(im.convert("RGB"))
    cut = round(512 * 0.8)
    assert torch.equal(val[0], torch.from_numpy(array[:32, cut : cut + 32].copy()).permute(2, 0, 1))
    assert val[0].dtype == torch.uint8 and val[0].shape == (3, 32, 32)


def test_photos_training_never_sees_validation_pixels():
    train = Photos(split="train", image_size=32, val_fraction=0.2, scales=[1.0])
    for level, name in zip(train.levels, PHOTO_FILES):
        with Image.open(skimage_data_dir() / name) as im:
            assert level.shape[2] == round(im.size[0] * 0.8)  # only columns left of the cut
    items = torch.stack([train[i] for i in range(64)])
    assert items.dtype == torch.uint8 and items.shape == (64, 3, 32, 32)


def test_photos_training_crops_are_a_function_of_seed_and_index():
    a, b = Photos(split="train", image_size=16, seed=1), Photos(split="train", image_size=16, seed=1)
    c = Photos(split="train", image_size=16, seed=2)
    assert torch.equal(a[5], b[5])
    assert not torch.equal(a[5], a[6])
    assert not all(torch.equal(a[i], c[i]) for i in range(4))


@pytest.mark.parametrize(
    "kwargs",
    [{"split": "test"}, {"image_size": 4}, {"val_fraction": 0.9}, {"scales": [2.0]}, {"image_weights": "x"}, {"files": ["brain.tif"]}],
)
def test_photos_bad_options_are_config_errors(kwargs):
    with pytest.raises(qbench.ConfigError):
        Photos(**{"split": "train", "image_size": 32, **kwargs})


def test_photos_through_the_registry():
    ds = qbench.registries().datasets.create("photos", split="val", image_size=32, root="", seed=0)
    assert len(ds) > 200


def _write_folder(root, count=3, size=(40, 30)):
    rng = np.random.default_rng(0)
    (root / "train" / "cls").mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / "train" / "cls" / f"im{i}.png")
    (root / "train" / "cls" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")


def test_imagefolder_skips_and_counts_corrupt_images(tmp_path):
    _write_folder(tmp_path)
    ds = ImageFolderDataset(split="train", image_size=16, root=str(tmp_path))
    assert len(ds) == 4
    with pytest.warns(UserWarning, match="broken.png"):
        items = [ds[i] for i in range(len(ds))]
    assert all(item.shape == (3, 16, 16) and item.dtype == torch.uint8 for item in items)
    assert list(ds.skipped) == [str(tmp_path / "train" / "cls" / "broken.png")]
    assert "skipped 1" in ds.report()


def test_imagefolder_resize_and_centre_crop(tmp_path):
    (tmp_path / "val").mkdir()
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, 10:30] = 255  # the centre square is white, the sides black
    Image.fromarray(array).save(tmp_path / "val" / "a.png")
    item = ImageFolderDataset(split="val", image_size=20, root=str(tmp_path))[0]
    assert item.float().mean() > 250


def test_imagefolder_without_split_dirs_splits_by_hash(tmp_path):
    for i in range(40):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i}.png")
    train = ImageFolderDataset(split="train", image_size=8, root=str(tmp_path), val_fraction=0.25)
    val = ImageFolderDataset(split="val", image_size=8, root=str(tmp_path), val_fraction=0.25)
    assert len(train) + len(val) == 40 and not set(train.files) & set(val.files)


def test_imagefolder_missing_root_is_a_config_error(tmp_path):
    with pytest.raises(qbench.ConfigError, match="not a directory"):
        ImageFolderDataset(split="train", image_size=16, root=str(tmp_path / "nope"))
    with pytest.raises(qbench.ConfigError, match="data.root"):
        ImageFolderDataset(split="train", image_size=16, root="")


def test_cifar10_missing_is_a_config_error(tmp_path):
    with pytest.raises(qbench.ConfigError, match="download"):
        qbench.registries().datasets.create("cifar10", split="train", image_size=32, root=str(tmp_path))
