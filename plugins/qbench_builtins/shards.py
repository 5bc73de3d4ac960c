"""The ``webdataset`` dataset: images in tar shards (the WebDataset format), read shard by shard.

Reading ImageNet file by file is the usual bottleneck of tokenizer training
on a shared filesystem; a tar shard is read in one sequential stream.
``qbench data shards SRC OUT --size N`` writes ``OUT/train/shard-*.tar``,
``OUT/val/shard-*.tar`` and ``OUT/test/shard-*.tar`` (when SRC has a test
split) from an image folder; any WebDataset shards with an image field (jpg,
jpeg, png, webp, ...) work too.  Shards are given as ``data.root`` (a folder
holding ``train/``, ``val/`` and ``test/``) or per split as
``data.options.train_urls`` / ``val_urls`` / ``test_urls``: a folder, one
path, or a brace pattern such as ``/data/in1k/train-{000000..001023}.tar``.
Each split reads its own shards only: the splits are as disjoint as the
shards were written.

Each image is decoded to 8-bit RGB and resized and centre cropped exactly as
``imagefolder`` does (``qbench_builtins.datasets.resize_center_crop``), so
the same image gives the same tensor by either route.

**Training** streams (an ``IterableDataset``), in a layout fixed by the
options, never by the hardware: ``streams`` (default 64) streams, each
reading its share of the shards (every epoch the shard list is shuffled with a
seed drawn from (seed, epoch), and stream ``p`` takes shards ``p,
p + streams, ...``), shuffling its samples in a buffer of ``shuffle_buffer``
samples (seeded by seed, epoch and stream) and looping over epochs on its
own.  The streams form ``streams / streams_per_batch`` groups of
``streams_per_batch`` (default 8); the global batch of step ``k`` is the
next ``batch / streams_per_batch`` images of each stream of group
``k mod groups``, in stream order.  Rank ``r`` of ``R`` reads the ``r``-th
``streams_per_batch / R`` streams of a group (its slice of the global
batch), and loader worker ``w`` of ``W`` the groups of the steps it makes
(``k mod W == w``), so every stream is read by one process and the samples
of every step are the same on 1 or 8 ranks and with 0 or 8 workers
(``streams_per_batch`` must be divisible by the ranks, the number of groups
by the workers, the batch by ``streams_per_batch``; else refused before
training).  Coverage: an epoch of every stream reads every image exactly
once across all streams.  The streams' epochs are of equal length only when
the shard count is divisible by ``streams`` and the shards hold equal
counts; else this warns.  Fewer shards than streams is refused: a stream
without shards would have nothing to read.  A resumed run skips, in every
stream, the samples its batches already took (without decoding them), so it
continues the same stream; a corrupt sample inside the skipped part shifts
that stream by one sample from there on.

**Evaluation** (``val`` and ``test``) is a map-style index of the split's shards (shard, offset,
size of every image, read from the tar headers once): ranks take every
world-size-th image, as with ``imagefolder``, and the order is the shards'.

A corrupt shard (not a tar, truncated) or a sample that does not decode is
counted in ``skipped`` (once per shard or sample, however often it is read
again), warned about, and skipped; the run goes on (``report()`` puts the
count in the run record).  Counts made inside
DataLoader worker processes stay there: their warnings go to stderr.
"""

from __future__ import annotations

import copy
import io
import itertools
import os
import random
import tarfile
import warnings
from pathlib import Path

import torch
from PIL import Image

from qbench import ConfigError
from qbench_builtins.datasets import _check_common, _to_tensor, resize_center_crop

IMAGE_FIELDS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "tif", "tiff")


def _webdataset():
    try:
        # deferred: the optional webdataset package, only when shards are read
        import webdataset
    except ImportError:
        raise ConfigError("the webdataset dataset needs the webdataset package: pip install 'qbench[webdataset]'") from None
    return webdataset


def expand_shards(spec: str) -> list[str]:
    """Local shard paths from a folder (its ``*.tar``, sorted), a path, or a brace pattern."""
    path = Path(spec).expanduser()
    shards = sorted(str(p) for p in path.glob("*.tar")) if path.is_dir() else list(
        _webdataset().shardlists.expand_urls(str(path)))
    if not shards:
        raise ConfigError(f"webdataset: no shards (*.tar) in {spec!r}")
    missing = [s for s in shards if not Path(s).is_file()]
    if missing:
        raise ConfigError(f"webdataset: {len(missing)} of {len(shards)} shards not found, e.g. {missing[0]}")
    return shards


def split_key(name: str) -> tuple[str, str]:
    """WebDataset's grouping: ``dir/key.field.ext`` -> (``dir/key``, ``field.ext``)."""
    folder, _, base = name.rpartition("/")
    key, _, field = base.partition(".")
    return (f"{folder}/{key}" if folder else key), field


def decode_image(data: bytes, image_size: int) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return _to_tensor(resize_center_crop(image, image_size))


class _Skips:
    """What could not be read, by shard or sample key, with the reason (mixed into both datasets)."""

    skipped: dict[str, str]

    def _skip(self, what: str, exc: BaseException) -> None:
        self.skipped[what] = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"webdataset: skipping {what}: {self.skipped[what]}", stacklevel=3)

    def report(self) -> str:
        if not self.skipped:
            return ""
        shown = ", ".join(list(self.skipped)[:3])
        return f"skipped {len(self.skipped)} unreadable shard(s) or sample(s): {shown}"


class ShardStream(_Skips, torch.utils.data.IterableDataset):
    """Training images streamed from shards (see the module docstring); ``stream`` sets the reader layout."""

    def __init__(self, shards: list[str], image_size: int, seed: int, shuffle_buffer: int, streams: int,
                 streams_per_batch: int):
        self.shards, self.image_size, self.seed, self.shuffle_buffer = shards, image_size, seed, shuffle_buffer
        self.streams, self.per_batch = streams, streams_per_batch
        self.skipped: dict[str, str] = {}
        self.rank, self.world_size, self.batch_size, self.start_step = 0, 1, 1, 0

    def stream(self, *, rank: int, world_size: int, batch_size: int, start_step: int, num_workers: int) -> ShardStream:
        """This rank's stream of a run: ``batch_size`` per rank and step, from ``start_step`` on.

        Refuses (``ConfigError``) a layout the streams cannot serve: the sample order never depends on it.
        """
        workers, groups = max(1, num_workers), self.streams // self.per_batch
        problems = []
        if self.per_batch % world_size:
            problems.append(f"the {world_size} ranks do not divide data.options.streams_per_batch "
                            f"{self.per_batch} (each rank reads its share of every batch's streams)")
        if groups % workers:
            problems.append(f"data.num_workers {workers} does not divide the {groups} stream groups "
                            f"(data.options.streams {self.streams} / streams_per_batch {self.per_batch})")
        if (batch_size * world_size) % self.per_batch:
            problems.append(f"data.batch_size {batch_size * world_size} is not divisible by "
                            f"data.options.streams_per_batch {self.per_batch}")
        if len(self.shards) < self.streams:
            problems.append(f"{len(self.shards)} shards for data.options.streams {self.streams}; every stream "
                            "needs a shard (write smaller shards or use fewer streams)")
        if problems:
            raise ConfigError("webdataset: " + "; ".join(problems))
        if len(self.shards) % self.streams and rank == 0:
            warnings.warn(f"webdataset: {len(self.shards)} shards do not divide among {self.streams} streams: "
                          "epochs of the streams differ in length", stacklevel=2)
        view = copy.copy(self)
        view.rank, view.world_size, view.batch_size, view.start_step = rank, world_size, batch_size, start_step
        return view

    def epoch_shards(self, epoch: int, stream: int) -> list[str]:
        order = list(self.shards)
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order[stream::self.streams]

    def raw_samples(self, epoch: int, stream: int):
        """One epoch of one stream: undecoded samples (dicts of bytes), buffer-shuffled."""
        wds = _webdataset()

        def corrupt_shard(exc: BaseException) -> bool:
            said = " ".join(map(str, (exc, *exc.args)))  # webdataset puts the shard in the arguments or the text
            shard = max((s for s in self.shards if s in said), key=len, default="")
            # keyed by the shard: a shard read again (next epoch) or failing twice is counted once
            self._skip(f"shard {shard}" if shard else f"shard ? ({type(exc).__name__}: {exc})", exc)
            return True  # go on with the next shard

        stages = [wds.SimpleShardList(self.epoch_shards(epoch, stream)),
                  wds.tarfile_to_samples(handler=corrupt_shard)]
        if self.shuffle_buffer > 1:
            seed = (self.seed * 1_000_003 + epoch) * 10_007 + stream
            stages.append(wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, seed=seed))
        return wds.DataPipeline(*stages)

    def decoded(self, sample: dict) -> torch.Tensor | None:
        key = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
        try:
            data = next(sample[f] for f in IMAGE_FIELDS if f in sample)
        except StopIteration:
            self._skip(key, ValueError(f"no image field among {sorted(k for k in sample if not k.startswith('__'))}"))
            return None
        try:
            return decode_image(data, self.image_size)
        except Exception as exc:  # a corrupt image: counted and skipped, the run goes on
            self._skip(key, exc)
            return None

    def _images(self, stream: int, skip: int):
        """Stream ``stream``'s decoded images, epoch after epoch, after ``skip`` raw samples (not decoded)."""
        epoch = 0
        while True:
            usable = False  # an epoch of nothing but unreadable samples would loop for ever
            for sample in self.raw_samples(epoch, stream):
                if skip:
                    skip, usable = skip - 1, True
                    continue
                image = self.decoded(sample)
                if image is not None:
                    usable = True
                    yield image
            if not usable:
                raise ConfigError(f"webdataset: stream {stream} of {self.streams} read no image in a whole epoch")
            epoch += 1

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        groups = self.streams // self.per_batch
        take = self.batch_size * self.world_size // self.per_batch  # images of one stream in one batch
        mine = range(self.rank * self.per_batch // self.world_size, (self.rank + 1) * self.per_batch // self.world_size)
        images = {}
        # the loader asks its workers in turn from worker 0: this worker makes the batches of steps
        # start + worker, start + worker + workers, ...; step k is group k % groups's chunk k // groups
        for step in itertools.count(self.start_step + worker, workers):
            group = step % groups
            for j in mine:
                stream = group * self.per_batch + j
                if stream not in images:  # chunks taken before the start, by steps group, group + groups, ...
                    done = max(0, -(-(self.start_step - group) // groups))
                    images[stream] = self._images(stream, done * take)
                for _ in range(take):
                    yield next(images[stream])


class ShardIndex(_Skips, torch.utils.data.Dataset):
    """Evaluation images: every image member of the shards, by (shard, offset, size), in shard order."""

    def __init__(self, shards: list[str], image_size: int):
        self.image_size, self.skipped = image_size, {}
        self.items: list[tuple[str, str, int, int]] = []
        for shard in shards:
            try:
                length = os.path.getsize(shard)
                with tarfile.open(shard) as tar:
                    for member in tar:
                        key, field = split_key(member.name)
                        if member.isfile() and field.lower() in IMAGE_FIELDS and \
                                member.offset_data + member.size <= length:
                            self.items.append((shard, key, member.offset_data, member.size))
                    end = tar.offset
                # tarfile stops quietly at a truncation; a whole archive ends with two zero blocks
                if length < end + 2 * tarfile.BLOCKSIZE:
                    raise tarfile.ReadError(f"truncated at byte {length}: no end-of-archive marker")
            except (tarfile.TarError, OSError) as exc:  # the images before the damage stay usable
                self._skip(shard, exc)
        if not self.items:
            raise ConfigError(f"webdataset: no readable images in the {len(shards)} evaluation shard(s)")

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, index: int) -> torch.Tensor:
        shard, _, offset, size = self.items[index]
        with open(shard, "rb") as fh:
            fh.seek(offset)
            data = fh.read(size)
        if len(data) != size:
            raise OSError(f"truncated: {len(data)} of {size} bytes")
        return decode_image(data, self.image_size)

    def __getitem__(self, index: int) -> torch.Tensor:
        for offset in range(len(self.items)):
            i = (index + offset) % len(self.items)
            name = f"{self.items[i][0]}:{self.items[i][1]}"
            if name in self.skipped:
                continue
            try:
                return self._load(i)
            except Exception as exc:  # corrupt: counted, and the next readable image takes its place
                self._skip(name, exc)
        raise ConfigError(f"webdataset: none of the {len(self.items)} evaluation images could be read")


def webdataset_shards(*, split: str = "train", image_size: int = 256, root: str = "", seed: int = 0,
                      train_urls: str = "", val_urls: str = "", test_urls: str = "", shuffle_buffer: int = 1000,
                      streams: int = 64, streams_per_batch: int = 8):
    """The ``webdataset`` dataset factory: a ``ShardStream`` for training, a ``ShardIndex`` for evaluation."""
    _check_common(split, image_size)
    for name, value, least in (("shuffle_buffer", shuffle_buffer, 0), ("streams", streams, 1),
                               ("streams_per_batch", streams_per_batch, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"webdataset: {name} must be an integer >= {least}, got {value!r}")
    if streams % streams_per_batch:
        raise ConfigError(f"webdataset: streams ({streams}) must be a multiple of streams_per_batch "
                          f"({streams_per_batch})")
    spec = {"train": train_urls, "val": val_urls, "test": test_urls}[split]
    if not spec:
        if not root:
            raise ConfigError(f"webdataset needs data.root (a folder with train/, val/ and test/ shards) or "
                              f"data.options.{split}_urls (a folder, path or brace pattern)")
        spec = str(Path(root).expanduser() / split)
        if not Path(spec).is_dir():
            raise ConfigError(f"webdataset: no {split} shards: {spec} is not a folder (write them with qbench data "
                              f"shards, which writes test/ when the source has a test split, or set "
                              f"data.options.{split}_urls)")
    shards = expand_shards(spec)
    if split == "train":
        return ShardStream(shards, image_size, int(seed), shuffle_buffer, streams, streams_per_batch)
    return ShardIndex(shards, image_size)
