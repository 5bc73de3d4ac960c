"""Datasets: photos, ImageFolder and CIFAR-10 in three disjoint splits (train / val / test), deterministic crops."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import qbench
from qbench_builtins import imagefolder
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


# ---- three disjoint splits ----------------------------------------------------------------------------


def test_photos_with_test_fraction_0_read_the_old_train_val_layout_bit_for_bit():
    """The old cut: train is columns [0, round(W (1 - val_fraction))), val the grid of the rest."""
    for val_fraction in (0.2, 0.15):
        train = Photos(split="train", image_size=32, val_fraction=val_fraction, test_fraction=0.0)
        val = Photos(split="val", image_size=32, val_fraction=val_fraction)
        levels, tiles = [], []
        for name in PHOTO_FILES:
            with Image.open(skimage_data_dir() / name) as im:
                image = im.convert("RGB")
            cut = round(image.width * (1 - val_fraction))
            region = image.crop((0, 0, cut, image.height))
            half = region.resize((round(region.width * 0.5), round(region.height * 0.5)), Image.BICUBIC,
                                 reducing_gap=None)
            levels += [np.asarray(region), np.asarray(half)]
            strip = np.asarray(image)[:, cut:]
            tiles += [strip[top:top + 32, left:left + 32] for top in range(0, strip.shape[0] - 31, 32)
                      for left in range(0, strip.shape[1] - 31, 32)]
        assert len(train.levels) == len(levels)
        for got, want in zip(train.levels, levels):
            assert torch.equal(got, torch.from_numpy(want.copy()).permute(2, 0, 1))
        assert len(val) == len(tiles)
        assert all(torch.equal(val[i], torch.from_numpy(t.copy()).permute(2, 0, 1)) for i, t in enumerate(tiles))
    with pytest.raises(qbench.ConfigError, match="set data.options.test_fraction"):
        Photos(split="test", image_size=32, val_fraction=0.2)


def _striped_photo(path, width=230, height=70):
    """Each column says where it is: red = x mod 256, green = x div 256 (read back exactly from crops)."""
    x = np.arange(width)
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, :, 0], array[:, :, 1] = x % 256, x // 256
    Image.fromarray(array).save(path)


def test_photos_val_and_test_crops_come_from_their_strips_and_training_from_the_rest(tmp_path):
    def columns(image: torch.Tensor) -> set[int]:
        return set((image[0].int() + 256 * image[1].int()).flatten().tolist())

    for width in (300, 200):
        _striped_photo(tmp_path / f"{width}.png", width=width)
        for val_fraction, test_fraction in ((0.15, 0.25), (0.2, 0.1), (0.1, 0.5)):
            common = dict(image_size=16, root=str(tmp_path), files=[f"{width}.png"], val_fraction=val_fraction,
                          test_fraction=test_fraction, scales=[1.0])
            train_end, val_end = round(width * (1 - val_fraction - test_fraction)), round(width * (1 - test_fraction))
            [level] = Photos(split="train", **common).levels
            assert columns(level) == set(range(train_end))  # every training pixel, before cropping
            for split, allowed in (("val", range(train_end, val_end)), ("test", range(val_end, width))):
                held = Photos(split=split, **common)
                seen = set().union(*(columns(held[i]) for i in range(len(held))))
                assert seen and seen <= set(allowed), (width, split)


def test_photos_no_held_out_pixel_reaches_any_pyramid_level(tmp_path):
    """Training is dark (0..40), val and test white: a 0.5 level made from more than the training region
    would blend white into its right edge."""
    width, height = 240, 96
    for val_fraction, test_fraction in ((0.15, 0.25), (0.2, 0.0)):
        array = np.full((height, width, 3), 255, dtype=np.uint8)
        cut = round(width * (1 - val_fraction - test_fraction))
        array[:, :cut] = (np.arange(cut) * 40 // cut)[None, :, None]
        Image.fromarray(array).save(tmp_path / "marked.png")
        train = Photos(split="train", image_size=16, root=str(tmp_path), files=["marked.png"], scales=[1.0, 0.5],
                       val_fraction=val_fraction, test_fraction=test_fraction)
        assert len(train.levels) == 2 and train.levels[1].shape[2] == round(cut * 0.5)
        assert all(int(level.max()) <= 45 for level in train.levels)
        crops = torch.stack([train[i] for i in range(500)])
        assert int(crops.max()) <= 45
        for split in ("val", "test") if test_fraction else ("val",):
            held = Photos(split=split, image_size=16, root=str(tmp_path), files=["marked.png"],
                          val_fraction=val_fraction, test_fraction=test_fraction)
            assert all(int(held[i].min()) == 255 for i in range(len(held)))


def test_the_shipped_cpu_fractions_give_221_val_and_393_test_crops_of_32x32():
    from qbench.recipe.config import load_recipe

    for name in ("cpu-default", "cpu-converged"):
        options = load_recipe(name).data.options
        assert (options["val_fraction"], options["test_fraction"]) == (0.15, 0.25)
        val = Photos(split="val", image_size=32, val_fraction=0.15, test_fraction=0.25)
        test = Photos(split="test", image_size=32, val_fraction=0.15, test_fraction=0.25)
        assert (len(val), len(test)) == (221, 393)


@pytest.mark.parametrize("val_fraction, test_fraction, message", [
    (0.2, -0.1, "test_fraction must be in"), (0.2, 0.6, "test_fraction must be in"), (0.01, 0.2, "val_fraction must be in"),
    (0.5, 0.3, "val_fraction \\+ test_fraction must be at most"), (0.2, True, "test_fraction"), (0.2, "0.1", "test_fraction"),
])
def test_photos_bad_fractions_are_one_config_error(val_fraction, test_fraction, message):
    with pytest.raises(qbench.ConfigError, match=message):
        Photos(split="train", image_size=32, val_fraction=val_fraction, test_fraction=test_fraction)


def _images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (8, 8), (len(name), 0, 0)).save(folder / name)


def _split(root, split, **options):
    return ImageFolderDataset(split=split, image_size=8, root=str(root), **options)


def test_imagefolder_flat_root_makes_three_disjoint_parts_by_path_hash(tmp_path):
    _images(tmp_path / "a", [f"{i}.png" for i in range(150)])
    _images(tmp_path, [f"{i}.png" for i in range(150)])
    parts = {s: set(_split(tmp_path, s, val_fraction=0.2, test_fraction=0.3).files) for s in ("train", "val", "test")}
    assert set().union(*parts.values()) == set(imagefolder.find_images(tmp_path))
    assert sum(map(len, parts.values())) == 300  # disjoint
    assert 30 <= len(parts["val"]) <= 90 and 60 <= len(parts["test"]) <= 120
    # without a test share: val and train exactly as before (val: hash below val_fraction), test refused
    old_val = {p for p in imagefolder.find_images(tmp_path) if imagefolder.path_share(tmp_path, p) < 0.2}
    assert set(_split(tmp_path, "val", val_fraction=0.2).files) == old_val
    assert set(_split(tmp_path, "train", val_fraction=0.2).files) == set(imagefolder.find_images(tmp_path)) - old_val
    with pytest.raises(qbench.ConfigError, match="no test split .* data.options.test_fraction"):
        _split(tmp_path, "test", val_fraction=0.2)


def test_imagefolder_with_train_only_holds_val_out_of_train_instead_of_leaking(tmp_path, capsys):
    """The leak: val used to be drawn from the whole folder, train/ included, and train kept every image."""
    _images(tmp_path / "train" / "cls", [f"{i}.png" for i in range(200)])
    train, val = _split(tmp_path, "train"), _split(tmp_path, "val")
    assert val.files and not set(train.files) & set(val.files)
    assert set(train.files) | set(val.files) == set(imagefolder.find_images(tmp_path / "train"))
    assert "val is" in val.report() and "held out by path hash" in val.report()
    assert "less the images held out" in train.report() and f"{len(train)} of 200" in train.report()
    notes = capsys.readouterr().err.strip().splitlines()
    assert len(notes) == 2 and all(line.startswith("imagefolder: ") for line in notes)


def test_imagefolder_missing_test_is_held_out_of_train_only_or_refused(tmp_path):
    _images(tmp_path / "train" / "cls", [f"{i}.png" for i in range(200)])
    _images(tmp_path / "val", [f"v{i}.png" for i in range(7)])
    with pytest.raises(qbench.ConfigError, match="no test split .* add a test/ folder, or set data.options.test_fraction"):
        _split(tmp_path, "test")
    parts = {s: set(_split(tmp_path, s, test_fraction=0.25).files) for s in ("train", "val", "test")}
    assert parts["val"] == set(imagefolder.find_images(tmp_path / "val"))  # val/ untouched
    assert parts["test"] and parts["train"] | parts["test"] == set(imagefolder.find_images(tmp_path / "train"))
    assert not parts["train"] & parts["test"] and not parts["val"] & (parts["train"] | parts["test"])
    # a test/ folder wins: train/ is then whole again
    _images(tmp_path / "test", ["t.png"])
    assert set(_split(tmp_path, "train", test_fraction=0.25).files) == set(imagefolder.find_images(tmp_path / "train"))


def test_imagefolder_imagenet_layout_reads_val_as_test_and_holds_val_out_of_train(tmp_path):
    _images(tmp_path / "train" / "cls", [f"{i}.png" for i in range(300)])
    _images(tmp_path / "val" / "cls", [f"v{i}.png" for i in range(9)])
    options = dict(test_folder="val", val_folder="", val_fraction=0.1)
    parts = {s: set(_split(tmp_path, s, **options).files) for s in ("train", "val", "test")}
    assert parts["test"] == set(imagefolder.find_images(tmp_path / "val"))
    assert parts["val"] and parts["train"] | parts["val"] == set(imagefolder.find_images(tmp_path / "train"))
    assert sum(map(len, parts.values())) == 309


@pytest.mark.parametrize("options, message", [
    ({"val_fraction": 1.5}, "val_fraction must be a number in"), ({"test_fraction": -0.1}, "test_fraction must be"),
    ({"val_fraction": 0.6, "test_fraction": 0.4}, "must stay below 1"), ({"test_folder": "train"}, "test_folder"),
    ({"val_folder": "a/b"}, "val_folder"), ({"val_folder": "x", "test_folder": "x"}, "both 'x'"),
])
def test_imagefolder_bad_split_options_are_one_config_error(tmp_path, options, message):
    _images(tmp_path / "train", ["a.png"])
    with pytest.raises(qbench.ConfigError, match=message):
        _split(tmp_path, "train", **options)


def test_an_empty_hold_out_says_which_share_to_raise(tmp_path):
    _images(tmp_path / "train", ["a.png", "b.png"])
    with pytest.raises(qbench.ConfigError, match="none fell in it; raise data.options.val_fraction"):
        _split(tmp_path, "val", val_fraction=0.01)


def test_imagefolder_split_folders_without_train_are_refused(tmp_path):
    _images(tmp_path / "val", ["a.png"])
    assert len(_split(tmp_path, "val")) == 1
    with pytest.raises(qbench.ConfigError, match="no train/"):
        _split(tmp_path, "train")


def _fake_cifar(root, per_batch=20, test=10):
    """cifar-10-batches-py as the format has it; image k's pixels all hold (k mod 251, k div 251, channel)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    def batch(first, count):
        data = np.zeros((count, 3, 32, 32), dtype=np.uint8)
        for j in range(count):
            k = first + j
            data[j, 0], data[j, 1], data[j, 2] = k % 251, k // 251, 7
        return {b"data": data.reshape(count, 3072), b"labels": [0] * count}
    for i in range(5):
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch(i * per_batch, per_batch)))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(1000, test)))


def _cifar_ids(dataset):
    return [int(dataset[i][0, 0, 0]) + 251 * int(dataset[i][1, 0, 0]) for i in range(len(dataset))]


def test_cifar10_test_is_the_test_batch_and_val_a_fixed_hold_out_of_training(tmp_path):
    _fake_cifar(tmp_path)
    make = lambda split, seed=0, **kw: qbench.registries().datasets.create(  # noqa: E731
        "cifar10", split=split, image_size=32, root=str(tmp_path), seed=seed, **kw)
    train, val, test = (make(s, val_images=30) for s in ("train", "val", "test"))
    assert _cifar_ids(test) == list(range(1000, 1010))
    assert len(val) == 30 and len(train) == 70 and sorted(_cifar_ids(train) + _cifar_ids(val)) == list(range(100))
    assert _cifar_ids(make("val", seed=7, val_images=30)) == _cifar_ids(val)  # not the run's seed
    assert _cifar_ids(val) != list(range(70, 100))  # a permutation, not the last batch
    assert val[0].shape == (3, 32, 32) and int(val[0][2].min()) == 7  # channel planes in order
    with pytest.raises(qbench.ConfigError, match="val_images"):
        make("train", val_images=0)
    with pytest.raises(qbench.ConfigError, match="leaves no training images"):
        make("train", val_images=100)
