"""Atomic writes: whole files or none, with the user's normal permissions."""

from __future__ import annotations

import os
import stat

import pytest

from qbench import atomic


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, mask, expected):
    old = os.umask(mask)
    try:
        path = atomic.write_text(tmp_path / "out.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == expected


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = atomic.write_text(tmp_path / "metrics.json", "old")

    def explode(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.atomic_write(target, explode)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
