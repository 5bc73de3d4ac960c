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


def test_the_guides_example_logger_passes_the_kit(tmp_path):
    from test_tracking import docs_example

    namespace: dict = {}
    exec(compile(docs_example(), "qbench_jsonl.py", "exec"), namespace)
    check_logger(namespace["JSONLinesLogger"], tmp_path)
    assert (tmp_path / "run0" / "scalars.jsonl").read_text().count("\n") == 4


def test_list_filter_is_a_whole_name_glob(capsys):
    from qbench import cli

    names = {}
    for pattern in ("g*", "sq", "*sq"):
        assert cli.main(["list", "quantizers", "--filter", pattern]) == 0
        out = capsys.readouterr().out
        names[pattern] = {n for n in ("bsq", "fsq", "gsq", "lfq", "vq") if f"\n{n} " in out or out.startswith(f"{n} ")}
    assert names == {"g*": {"gsq"}, "sq": set(), "*sq": {"bsq", "fsq", "gsq"}}  # as docs/plugins.md says
