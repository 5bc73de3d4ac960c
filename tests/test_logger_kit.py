"""``qbench.testing.check_logger``: the logger contract as a kit, on the built-ins and on broken loggers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from qbench.logger import Logger
from qbench.testing import check_logger


@pytest.mark.parametrize("name", ["csv", "tensorboard"])
def test_builtin_loggers_pass_the_kit(tmp_path, name):
    if name == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        pytest.skip("tensorboard is not installed")
    check_logger(name, tmp_path)
    assert (tmp_path / "run0").is_dir()


class _EagerFile(Logger):
    def __init__(self, path: str = "tracker.db"):
        Path(path).write_text("opened too early")


class _NoHistogram(Logger):
    def log_histogram(self, step, name, counts):
        raise TypeError("histograms are not supported")


class _NotALogger:
    def __init__(self):
        pass


@pytest.mark.parametrize("factory, message", [
    (_EagerFile, "building the logger created ['tracker.db']"),
    (_NoHistogram, "a fresh run: TypeError: histograms are not supported"),
    (_NotALogger, "must return a qbench.logger.Logger"),
])
def test_the_kit_names_the_broken_rule(tmp_path, factory, message):
    with pytest.raises(AssertionError) as caught:
        check_logger(factory, tmp_path)
    assert message in str(caught.value)
