"""The ``webdataset`` dataset and ``qbench data shards``, on shards made from tiles of the shipped photos."""

from __future__ import annotations

import hashlib
import shutil
import tarfile

import pytest
import torch
from conftest import run_cli
from PIL import Image

import qbench
from qbench.comparison import runner
from qbench.engine.data import train_batches
from qbench.recipe.config import load_recipe
from qbench_builtins.datasets import PHOTO_FILES, ImageFolderDataset, skimage_data_dir
from qbench_builtins.shards import ShardIndex, expand_shards, webdataset_shards

pytest.importorskip("webdataset")

SIZE = 16  # crop size
TRAIN, VAL, PER_SHARD = 24, 6, 3  # 8 train shards


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """An image folder of photo tiles (PNG and JPEG, one greyscale), and its shards from the CLI."""
    root = tmp_path_factory.mktemp("shards")
    src = root / "src"
    tiles = []
    for name in PHOTO_FILES:
        with Image.open(skimage_data_dir() / name) as photo:
            photo = photo.convert("RGB")
            for k in range(6):
                left = (k * 53) % max(1, photo.width - 40)
                tiles.append(photo.crop((left, 20 * k, left + 40 + k, 20 * k + 30)))  # not square: crops matter
    for i, tile in enumerate(tiles[:TRAIN + VAL]):
        split, number = ("train", i) if i < TRAIN else ("val", i - TRAIN)
        folder = src / split / f"class{number % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        if i == 5:
            tile = tile.convert("L")  # decoded to RGB like any other
        tile.save(folder / f"tile{number:02d}.{'jpg' if i % 4 == 0 else 'png'}")
    out = root / "shards"
    result = run_cli("data", "shards", str(src), str(out), "--size", str(PER_SHARD))
    assert result.returncode == 0, result.stderr
    assert f"train: {TRAIN} images in {TRAIN // PER_SHARD} shard(s)" in result.stdout
    return src, out


def digest(image: torch.Tensor) -> str:
    return hashlib.sha1(image.contiguous().numpy().tobytes()).hexdigest()


def test_shards_hold_the_images_imagefolder_reads(folders):
    src, out = folders
    val = webdataset_shards(split="val", image_size=SIZE, root=str(out))
    reference = ImageFolderDataset(split="val", image_size=SIZE, root=str(src))
    assert isinstance(val, ShardIndex) and len(val) == len(reference) == VAL
    for i in range(VAL):  # same order, same pixels
        assert torch.equal(val[i], reference[i]), i
    assert len(expand_shards(str(out / "val" / "shard-{000000..000001}.tar"))) == 2  # brace patterns
    with tarfile.open(out / "train" / "shard-000000.tar") as tar:
        names = tar.getnames()
    assert names[:2] == ["00000000.jpg", "00000000.path.txt"]  # the file's own bytes, under its own extension


LAYOUT = {"streams": 4, "streams_per_batch": 2}  # 8 shards: 2 per stream; 2 groups of 2 streams


def global_batches(stream, batch: int, ranks: int, workers: int, steps: int, start: int = 0) -> list[torch.Tensor]:
    """The global batches of ``steps`` steps, put together from every rank's slice."""
    per_rank = [train_batches(stream, batch, seed=3, start_step=start, rank=r, world_size=ranks,
                              num_workers=workers) for r in range(ranks)]
    return [torch.cat([next(b) for b in per_rank]) for _ in range(steps)]


def test_the_samples_of_every_step_do_not_depend_on_ranks_or_workers_and_an_epoch_covers_each_image_once(folders):
    src, out = folders
    reference = ImageFolderDataset(split="train", image_size=SIZE, root=str(src))
    expected = sorted(digest(reference[i]) for i in range(len(reference)))
    stream = webdataset_shards(split="train", image_size=SIZE, root=str(out), seed=3, shuffle_buffer=4, **LAYOUT)
    batch = 6  # 3 images of each of a group's 2 streams
    steps = TRAIN // batch  # one epoch of every stream
    one = global_batches(stream, batch, ranks=1, workers=0, steps=steps + 2)
    assert all(b.shape == (batch, 3, SIZE, SIZE) and b.dtype == torch.uint8 for b in one)
    assert sorted(digest(image) for b in one[:steps] for image in b) == expected  # every image exactly once
    for ranks, workers in ((1, 2), (2, 0), (2, 2)):
        other = global_batches(stream, batch, ranks=ranks, workers=workers, steps=steps + 2)
        for k, (a, b) in enumerate(zip(one, other)):
            assert torch.equal(a, b), (ranks, workers, k)
    # the next epoch reshuffles: same images, another order
    seen = [digest(image) for b in one[:steps] for image in b]
    assert [digest(image) for b in one[steps:] for image in b] != seen[:2 * batch]
    # a resumed run continues the stream where it stopped (skipping without decoding), in any layout
    resumed = global_batches(stream, batch, ranks=2, workers=2, steps=steps - 1, start=3)
    for k, b in enumerate(resumed, start=3):
        assert torch.equal(b, one[k]), k


def test_a_layout_the_streams_cannot_serve_is_refused(folders):
    _, out = folders
    stream = webdataset_shards(split="train", image_size=SIZE, root=str(out))  # 64 streams by default
    with pytest.raises(qbench.ConfigError, match="8 shards for data.options.streams 64"):
        train_batches(stream, 8, seed=0, rank=0, world_size=1)
    stream = webdataset_shards(split="train", image_size=SIZE, root=str(out), **LAYOUT)
    with pytest.raises(qbench.ConfigError, match="the 4 ranks do not divide data.options.streams_per_batch 2"):
        train_batches(stream, 8, seed=0, rank=0, world_size=4)
    with pytest.raises(qbench.ConfigError, match="data.num_workers 4 does not divide the 2 stream groups"):
        train_batches(stream, 8, seed=0, rank=0, world_size=1, num_workers=4)
    with pytest.raises(qbench.ConfigError, match="data.batch_size 5 is not divisible by"):
        train_batches(stream, 5, seed=0, rank=0, world_size=1)
    with pytest.warns(UserWarning, match="8 shards do not divide among 3 streams"):
        webdataset_shards(split="train", image_size=SIZE, root=str(out), streams=3, streams_per_batch=1).stream(
            rank=0, world_size=1, batch_size=1, start_step=0, num_workers=1)
    with pytest.raises(qbench.ConfigError, match="must be a multiple of streams_per_batch"):
        webdataset_shards(split="train", image_size=SIZE, root=str(out), streams=6, streams_per_batch=4)
    with pytest.raises(qbench.ConfigError, match="needs data.root"):
        webdataset_shards(split="train", image_size=SIZE)


def test_corrupt_shards_and_samples_are_counted_and_skipped(folders, tmp_path):
    import webdataset

    _, out = folders
    for split in ("train", "val"):
        shutil.copytree(out / split, tmp_path / split)
    with webdataset.TarWriter(str(tmp_path / "train" / "shard-bad-sample.tar")) as sink:
        sink.write({"__key__": "broken", "png": b"not an image"})
        sink.write({"__key__": "fine", "png": _png_bytes()})
    (tmp_path / "train" / "shard-not-a-tar.tar").write_bytes(b"\x00garbage" * 100)
    whole = (tmp_path / "train" / "shard-000007.tar").read_bytes()
    (tmp_path / "train" / "shard-000007.tar").write_bytes(whole[: len(whole) // 2])  # truncated mid-image
    whole = (tmp_path / "val" / "shard-000001.tar").read_bytes()
    (tmp_path / "val" / "shard-000001.tar").write_bytes(whole[: len(whole) // 2])  # truncated mid-image

    stream = webdataset_shards(split="train", image_size=SIZE, root=str(tmp_path), shuffle_buffer=0, streams=1,
                               streams_per_batch=1)
    with pytest.warns(UserWarning, match="skipping"):
        epochs = [[stream.decoded(s) for s in stream.raw_samples(epoch, 0)] for epoch in (0, 1, 2)]
    for images in epochs:
        good = [i for i in images if i is not None]
        assert TRAIN - PER_SHARD + 1 <= len(good) < TRAIN + 1 and len(images) == len(good) + 1  # broken sample dropped
    # each bad shard and the bad sample once, however often they were read: 3 epochs, 3 skipped
    assert sorted(stream.skipped) == sorted([f"shard {tmp_path / 'train' / 'shard-not-a-tar.tar'}",
                                             f"shard {tmp_path / 'train' / 'shard-000007.tar'}",
                                             f"{tmp_path / 'train' / 'shard-bad-sample.tar'}:broken"]), stream.skipped
    assert "skipped 3" in stream.report()

    with pytest.warns(UserWarning, match="skipping"):
        val = webdataset_shards(split="val", image_size=SIZE, root=str(tmp_path))
        items = [val[i] for i in range(len(val))]
    assert VAL - PER_SHARD <= len(val) < VAL and all(i.shape == (3, SIZE, SIZE) for i in items)
    assert val.report()


def _png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (20, 24), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_run_trains_and_evaluates_from_shards_and_its_loader_workers_change_nothing(folders, tmp_path):
    _, out = folders
    outcomes = []
    for workers in (0, 2):  # data.num_workers is outside the config hash: it must not change the result
        recipe = load_recipe("smoke", ["data.dataset='webdataset'", f"data.root='{out}'", "data.batch_size=4",
                                       f"data.num_workers={workers}", "train.steps=3", "eval.max_images=6",
                                       "eval.grid_images=2", "data.options.shuffle_buffer=8",
                                       "data.options.streams=4", "data.options.streams_per_batch=2",
                                       "eval.split='val'"])  # these shards have no test split
        [outcome] = runner.run_comparison(["gsq"], recipe, out_root=tmp_path / str(workers), progress=False)
        assert outcome.status == "ok", outcome.reason
        assert outcome.record["train"]["steps"] == 3 and outcome.metrics["psnr"]["status"] == "ok"
        outcomes.append(outcome)
    assert outcomes[0].record["run"]["config_hash"] == outcomes[1].record["run"]["config_hash"]
    assert outcomes[0].metrics["psnr"]["value"] == outcomes[1].metrics["psnr"]["value"]
    weights = [torch.load(o.run_dir / "checkpoint.pt", weights_only=True)["model"] for o in outcomes]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_the_shard_command_refuses_bad_input_in_one_line(folders, tmp_path):
    src, out = folders
    for args, message in ((["--size", "0"], "--size must be a positive"),
                          (["--size", "2"], "already holds shards")):
        result = run_cli("data", "shards", str(src), str(out), *args)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    result = run_cli("data", "shards", str(tmp_path / "nowhere"), str(tmp_path / "o"), "--size", "2")
    assert result.returncode == 2 and "is not a folder of images" in result.stderr


# ---- the test split, and the shard command's checks ---------------------------------------------------


@pytest.fixture(scope="module")
def three_splits(tmp_path_factory):
    """A flat folder of 60 small images written as train / val / test shards by path hash."""
    root = tmp_path_factory.mktemp("three")
    src = root / "src"
    src.mkdir()
    for i in range(60):
        Image.new("RGB", (12, 10), (i * 4, 255 - i * 4, 7)).save(src / f"im{i:02d}.png")
    out = root / "shards"
    result = run_cli("data", "shards", str(src), str(out), "--size", "4", "--val-fraction", "0.2",
                     "--test-fraction", "0.25")
    assert result.returncode == 0, result.stderr
    return src, out, result.stdout


def _member_paths(folder) -> list[str]:
    names = []
    for shard in sorted(folder.glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            names += [tar.extractfile(m).read().decode() for m in tar if m.name.endswith(".path.txt")]
    return names


def test_the_shard_command_writes_three_disjoint_splits_as_imagefolder_reads_them(three_splits):
    src, out, stdout = three_splits
    written = {split: _member_paths(out / split) for split in ("train", "val", "test")}
    options = dict(image_size=SIZE, root=str(src), val_fraction=0.2, test_fraction=0.25)
    for split, paths in written.items():
        assert paths and f"{split}: {len(paths)} images" in stdout
        reference = ImageFolderDataset(split=split, **options)
        assert paths == [str(p.relative_to(src)) for p in reference.files]  # same images, same order
    every = [p for paths in written.values() for p in paths]
    assert len(every) == len(set(every)) == 60  # each image in exactly one split
    test = webdataset_shards(split="test", image_size=SIZE, root=str(out))
    assert isinstance(test, ShardIndex) and len(test) == len(written["test"])
    assert torch.equal(test[0], ImageFolderDataset(split="test", **options)[0])
    by_urls = webdataset_shards(split="test", image_size=SIZE, test_urls=str(out / "test"))
    assert len(by_urls) == len(test)


def test_shards_without_a_test_split_say_so_and_the_dataset_refuses_test(folders):
    _, out = folders
    assert not (out / "test").exists()
    with pytest.raises(qbench.ConfigError, match="no test shards: .* data.options.test_urls"):
        webdataset_shards(split="test", image_size=SIZE, root=str(out))


@pytest.mark.parametrize("flags, message", [
    (["--val-fraction", "1.5"], "--val-fraction must be a number in [0, 1), got 1.5"),
    (["--test-fraction", "-0.1"], "--test-fraction must be a number in [0, 1), got -0.1"),
    (["--val-fraction", "0.5", "--test-fraction", "0.5"], "must stay below 1 so that a training split is left"),
    (["--test-folder", "train"], "test_folder must name a folder"),
])
def test_the_shard_command_refuses_bad_fractions_in_one_line(three_splits, tmp_path, flags, message):
    src, _, _ = three_splits
    result = run_cli("data", "shards", str(src), str(tmp_path / "o"), "--size", "4", *flags)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "o").exists()


def test_the_shard_command_refuses_an_output_it_cannot_write_in_one_line(three_splits, tmp_path, capsys,
                                                                         monkeypatch):
    import os
    import stat
    import tempfile

    from qbench import cli

    src, _, _ = three_splits
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = run_cli("data", "shards", str(src), str(afile), "--size", "4")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"{afile} is a file, not a folder" in result.stderr and afile.read_text() == "x"
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: make the write itself fail, as a read-only mount does
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        status = cli.main(["data", "shards", str(src), str(locked), "--size", "4"])
    finally:
        locked.chmod(stat.S_IRWXU)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(errors) == 1, errors
    assert f"cannot write in {locked} (Permission denied)" in errors[0]
    assert list(locked.iterdir()) == []
