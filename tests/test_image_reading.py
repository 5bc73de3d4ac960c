"""ImageFolder data read right or refused out loud: 16-bit PNGs, unreadable validation images."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from qbench.comparison import runner
from qbench.recipe.config import load_recipe
from qbench.rundir.directory import METRICS_FILE
from qbench_builtins.datasets import ImageFolderDataset


def png_rgb16(path, pixels: np.ndarray) -> None:
    """A 48-bit RGB PNG (PIL cannot write one), from a (H, W, 3) uint16 array."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[i].astype(">u2").tobytes() for i in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def folder_of(tmp_path, writer) -> ImageFolderDataset:
    (tmp_path / "val" / "cls").mkdir(parents=True)
    writer(tmp_path / "val" / "cls")
    return ImageFolderDataset(split="val", image_size=16, root=str(tmp_path))


def test_sixteen_bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    levels = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    dataset = folder_of(tmp_path, lambda d: Image.fromarray(levels).save(d / "grey16.png"))
    image = dataset[0].numpy()
    assert dataset.skipped == {}
    expected = np.rint(levels / 257.0)
    assert np.abs(image[0].astype(float) - expected).max() <= 1  # one level of resampling noise at most
    assert image.mean() == pytest.approx(127.5, abs=1.0)  # clipping made it ~254


def test_sixteen_bit_rgb_png_keeps_its_colours(tmp_path):
    rng = np.random.default_rng(0)
    pixels = (rng.random((16, 16, 3)) * 65535).astype(np.uint16)
    dataset = folder_of(tmp_path, lambda d: png_rgb16(d / "rgb48.png", pixels))
    image = dataset[0].numpy().transpose(1, 2, 0).astype(float)
    assert np.abs(image - pixels / 257.0).max() <= 1.5


def test_images_without_a_fixed_range_are_refused_and_counted(tmp_path):
    def write(directory):
        Image.fromarray(np.full((16, 16), 70000, dtype=np.int32), mode="I").save(directory / "a.tif")
        Image.fromarray(np.full((16, 16, 3), 200, dtype=np.uint8)).save(directory / "b.png")

    dataset = folder_of(tmp_path, write)
    assert dataset[0].float().mean() == 200  # the readable image stands in
    [reason] = dataset.skipped.values()
    assert "no fixed range" in reason
    assert "skipped 1 unreadable image(s) of 2, each replaced by the next readable one: a.tif" == dataset.report()


def test_unreadable_validation_images_are_counted_in_the_run_record(tmp_path):
    rng = np.random.default_rng(1)
    for split, count in (("train", 6), ("val", 4)):
        folder = tmp_path / "data" / split / "cls"
        folder.mkdir(parents=True)
        for i in range(count):
            Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "data" / "val" / "cls" / "0.png").write_bytes(b"broken")
    recipe = load_recipe("smoke", ["data.dataset='imagefolder'", f"data.root='{tmp_path / 'data'}'",
                                   "data.options={}", "eval.split='val'",  # this folder has train/ and val/
                                   "train.steps=2", "eval.max_images=0", "eval.grid_images=0"])
    [outcome] = runner.run_comparison(["gsq"], recipe, out_root=tmp_path / "runs", progress=False)
    train = outcome.record["train"]
    assert outcome.status == "ok" and "data_note" not in train
    assert train["eval_data_note"].startswith("skipped 1 unreadable image(s) of 4")
    assert '"eval_data_note"' in (outcome.run_dir / METRICS_FILE).read_text()
