"""Reading a W&B offline run file (``run-ID.wandb``) back, for tests.

The file is a LevelDB-style log (W&B's own format: a 7-byte ``:W&B`` header,
then 32 KiB blocks of records, each with a 7-byte header: checksum, length,
type; a record that does not fit a block is split in FIRST/MIDDLE/LAST
pieces) of ``wandb_internal_pb2.Record`` protobufs.  wandb ships no reader
for it, so the tests carry this one.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = struct.Struct("<IHB")  # checksum, length, type
FILE_HEADER = struct.Struct("<4sHB")  # ":W&B", magic, version
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def raw_records(path: str | Path) -> list[bytes]:
    data = Path(path).read_bytes()
    ident, _, _ = FILE_HEADER.unpack_from(data, 0)
    assert ident == b":W&B", f"{path} is not a W&B run file"
    records, pending, pos = [], b"", FILE_HEADER.size
    while pos + HEADER.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER.size:  # the rest of a block too short for a header is padding
            pos += left
            continue
        _, length, kind = HEADER.unpack_from(data, pos)
        pos += HEADER.size
        piece, pos = data[pos : pos + length], pos + length
        if kind == FULL:
            records.append(piece)
        elif kind == FIRST:
            pending = piece
        elif kind == MIDDLE:
            pending += piece
        elif kind == LAST:
            records.append(pending + piece)
        else:  # zero padding at the end of the last block
            break
    return records


def records(path: str | Path):
    from wandb.proto import wandb_internal_pb2

    for raw in raw_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        yield record


def history(path: str | Path) -> list[dict]:
    """Every ``run.log`` row, as {key: value} with ``_step``."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows


def run_record(path: str | Path):
    """The run's identity (group, display name, config) as W&B recorded it."""
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            return record.run
    raise AssertionError(f"{path}: no run record")


def summary(path: str | Path) -> dict:
    """The run summary after every update, as {key: value}."""
    values = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values
