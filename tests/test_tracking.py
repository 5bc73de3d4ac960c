"""The logger hook: what a logger receives, a logger that raises, user errors before training, plugins."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re

import numpy as np
import pytest
import torch
from conftest import ROOT, make_distribution, run_cli
from PIL import Image

import qbench
from qbench import LoggerSpec, hookimpl
from qbench.comparison import runner
from qbench.comparison.tracking import open_loggers
from qbench.logger import Logger, code_buckets
from qbench.recipe.config import load_recipe
from qbench.recipe.identity import resolve
from qbench.rundir import checkpoint

STARTED: list[Recording] = []  # loggers that were started, in order


class Recording(Logger):
    """Keeps every call; ``tag`` shows that [loggers.recording] reaches the constructor."""

    def __init__(self, tag: str = ""):
        self.tag, self.calls = tag, []

    def start(self, run):
        STARTED.append(self)
        self.calls.append(("start", run))

    def log_scalars(self, step, scalars):
        self.calls.append(("scalars", step, dict(scalars)))

    def log_images(self, step, name, image):
        self.calls.append(("image", step, name, image))

    def log_histogram(self, step, name, counts):
        self.calls.append(("histogram", step, name, counts))

    def log_metrics(self, metrics):
        self.calls.append(("metrics", dict(metrics)))

    def finish(self, status, reason=""):
        self.calls.append(("finish", status, reason))

    def of(self, kind):
        return [c[1:] for c in self.calls if c[0] == kind]


class Raising(Logger):
    """A tracker that is down: every call raises."""

    def _down(self, *args):
        raise RuntimeError("tracker down\nsecond line of the message")

    start = log_scalars = log_images = log_histogram = log_metrics = finish = _down


class Plugin:
    @hookimpl
    def qbench_register_loggers(self):
        return [
            LoggerSpec(name="recording", factory=f"{__name__}:Recording"),
            LoggerSpec(name="raising", factory=f"{__name__}:Raising"),
            LoggerSpec(name="needs_pkg", factory=f"{__name__}:Recording", requires=("qbench_absent_module",),
                       install="pip install qbench-absent"),
        ]


def smoke(*overrides):
    return load_recipe("smoke", list(overrides))


def read_log(run_dir):
    with open(run_dir / "log.csv", newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """One smoke run watched by csv, a raising logger and a recording one, images every 2 steps."""
    STARTED.clear()
    regs = qbench.registries(extra_plugins={"test-loggers": Plugin()})
    recipe = smoke("train.loggers=['csv', 'raising', 'recording']", "train.image_every=2", "loggers.recording.tag='x'")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        [outcome] = runner.run_comparison(["gsq"], recipe, out_root=tmp_path_factory.mktemp("watched"),
                                          progress=False, regs=regs)
    [logger] = STARTED
    return outcome, logger, stderr.getvalue(), recipe


def test_a_logger_that_raises_is_reported_once_and_the_run_goes_on(watched):
    outcome, logger, stderr, _ = watched
    assert outcome.status == "ok" and outcome.metrics["psnr"]["status"] == "ok"
    lines = [line for line in stderr.splitlines() if "'raising'" in line]
    assert len(lines) == 1, stderr
    assert "failed in start (RuntimeError: tracker down)" in lines[0] and "off for the rest of this run" in lines[0]
    assert logger.of("finish") == [("ok", "")]  # the other loggers heard everything
    assert read_log(outcome.run_dir)  # and so did log.csv


def test_logger_receives_identity_scalars_images_histogram_metrics_and_end(watched):
    outcome, logger, _, recipe = watched
    record = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert [c[0] for c in logger.calls][0] == "start" and logger.calls[-1][0] == "finish"
    assert logger.tag == "x"

    [(run,)] = logger.of("start")
    assert (run.run_dir, run.quantizer, run.recipe, run.seed) == (outcome.run_dir, "gsq", "smoke", 0)
    assert (run.recipe_hash, run.config_hash) == (record["run"]["recipe_hash"], record["run"]["config_hash"])
    assert run.options == record["run"]["options"] and run.hyperparameters == recipe.to_dict()
    assert (run.steps, run.start_step, run.name) == (6, 0, outcome.run_dir.name)

    scalars = logger.of("scalars")
    assert [{"step": step, **values} for step, values in scalars] == read_log(outcome.run_dir)
    assert {"loss", "rec", "quant", "lr", "grad_norm", "usage", "perplexity", "steps_per_s"} <= set(scalars[0][1])

    images = logger.of("image")
    assert [(step, name) for step, name, _ in images] == [(2, "reconstructions"), (4, "reconstructions"), (6, "reconstructions")]
    last = images[-1][2]
    assert last.dtype == np.uint8 and last.ndim == 3 and last.shape[2] == 3
    assert np.array_equal(last, np.asarray(Image.open(outcome.run_dir / "recon.png").convert("RGB")))
    assert not np.array_equal(images[0][2], last)  # the model changed between step 2 and 6

    [(step, name, counts)] = logger.of("histogram")
    metrics = record["metrics"]
    images_scored = min(recipe.eval.max_images, metrics["bits"]["protocol"]["num_images"])
    assert (step, name) == (6, "codes") and len(counts) == 16
    assert counts.sum() == images_scored * metrics["bits"]["extras"]["positions_per_image"]
    assert 100.0 * (counts > 0).mean() == pytest.approx(metrics["usage"]["value"])
    p = counts[counts > 0] / counts.sum()
    assert math.exp(-(p * np.log(p)).sum()) == pytest.approx(metrics["perplexity"]["value"])

    assert logger.of("metrics") == [({n: r["value"] for n, r in metrics.items() if r["status"] == "ok"},)]
    assert logger.of("finish") == [("ok", "")]


def test_logging_leaves_the_trained_weights_alone(watched, tmp_path):
    """Images every 2 steps and four loggers, or no logger at all: the same weights (and no log.csv)."""
    outcome = watched[0]
    [plain] = runner.run_comparison(["gsq"], smoke("train.loggers=[]"), out_root=tmp_path, progress=False)
    assert plain.status == "ok" and not (plain.run_dir / "log.csv").exists()
    for key in ("model", "ema"):
        a, b = checkpoint.load(outcome.run_dir)[key], checkpoint.load(plain.run_dir)[key]
        assert all(torch.equal(a[name], b[name]) for name in a), key


def test_a_failed_run_ends_in_the_loggers_with_its_reason(tmp_path):
    from test_train import Plugin as NaNPlugin

    STARTED.clear()
    regs = qbench.registries(extra_plugins={"test-loggers": Plugin(), "nan": NaNPlugin()})
    recipe = smoke("train.loggers=['recording']")
    [failed] = runner.run_comparison(["nan_after"], recipe, out_root=tmp_path, progress=False, regs=regs)
    [logger] = STARTED
    assert failed.status == "failed"
    [(status, reason)] = logger.of("finish")
    assert status == "failed" and "non-finite loss" in reason and reason == failed.reason
    assert logger.of("metrics") == [] and [s for s, _ in logger.of("scalars")] == [2, 4]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.loggers=['csv', 'tensorbord']"], "unknown logger 'tensorbord' (did you mean 'tensorboard'?)"),
        (["train.loggers=['needs_pkg']"], "logger 'needs_pkg' needs the qbench_absent_module package: pip install qbench-absent"),
        (["train.loggers=['tensorboard']", "loggers.tensorboard.flushsecs=1"], "has no option 'flushsecs' (did you mean 'flush_secs'?)"),
        (["train.loggers=['wandb']", "loggers.wandb.mode='cloud'"], "mode must be one of offline, online, disabled"),
    ],
)
def test_logger_errors_are_config_errors_before_training(tmp_path, overrides, message):
    regs = qbench.registries(extra_plugins={"test-loggers": Plugin()})
    with pytest.raises(qbench.ConfigError, match=re.escape(message)):
        runner.run_comparison(["gsq"], smoke(*overrides), out_root=tmp_path, progress=False, regs=regs)
    assert not any(tmp_path.iterdir())


def test_only_rank_zero_builds_loggers(tmp_path):
    regs = qbench.registries(extra_plugins={"test-loggers": Plugin()})
    recipe = smoke("train.loggers=['recording']")
    run = runner._run_info(resolve(recipe, "gsq", regs), tmp_path)
    STARTED.clear()
    other_rank = open_loggers(recipe, regs, run, enabled=False)
    other_rank.log_row({"step": 2, "loss": 1.0})
    other_rank.finish("ok")
    assert STARTED == [] and other_rank.active == {}
    with open_loggers(recipe, regs, run) as main_rank:
        main_rank.log_row({"step": 2, "loss": 1.0})
    assert STARTED[0].of("scalars") == [(2, {"loss": 1.0})] and STARTED[0].of("finish") == [("ok", "")]


def test_an_exception_ends_the_loggers_run_as_failed_or_interrupted(tmp_path):
    regs = qbench.registries(extra_plugins={"test-loggers": Plugin()})
    recipe = smoke("train.loggers=['recording']")
    run = runner._run_info(resolve(recipe, "gsq", regs), tmp_path)
    STARTED.clear()
    for error in (ValueError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(error)), open_loggers(recipe, regs, run):
            raise error
    assert [logger.of("finish") for logger in STARTED] == [[("failed", "ValueError: disk full")],
                                                           [("interrupted", "KeyboardInterrupt")]]


def test_code_buckets_group_large_codebooks_and_keep_small_ones():
    edges, buckets = code_buckets(np.arange(5), max_buckets=8)
    assert edges.tolist() == [0, 1, 2, 3, 4, 5] and buckets.tolist() == [0, 1, 2, 3, 4]
    edges, buckets = code_buckets(np.ones(1000, dtype=np.int64), max_buckets=512)
    assert len(buckets) <= 512 and buckets.sum() == 1000 and edges[0] == 0 and edges[-1] == 1000
    assert all(buckets[j] == edges[j + 1] - edges[j] for j in range(len(buckets)))


def docs_example() -> str:
    """The logger plugin of the plugin author's guide (docs/plugins.md), exactly as printed there."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text.split("## 7. Loggers", 1)[1]
    return re.search(r"`qbench_jsonl\.py`:\s*```python\n(.*?)```", section, re.S).group(1)


def test_docs_example_logger_plugin_is_listed_and_logs(site, tmp_path):
    (site / "qbench_jsonl.py").write_text(docs_example())
    make_distribution(site, "qbench-jsonl", "0.1.0", {"jsonl": "qbench_jsonl"}, {})
    listed = run_cli("list", "loggers")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[3:] if line.strip()}
    assert {"csv", "tensorboard", "wandb", "mlflow", "jsonl"} <= set(rows)
    assert "jsonl 0.1.0" in rows["jsonl"] and "builtins" in rows["tensorboard"]

    [outcome] = runner.run_comparison(["gsq"], smoke("train.loggers=['csv', 'jsonl']"), out_root=tmp_path, progress=False)
    lines = (outcome.run_dir / "scalars.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == read_log(outcome.run_dir)
