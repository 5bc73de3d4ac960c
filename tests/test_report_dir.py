"""The report folder: a report appears whole or not at all, stale files go, bad --out is one line."""

from __future__ import annotations

import os

import pytest
from conftest import run_cli

import qbench
from qbench.report import output as report_dir
from qbench.report.output import MANIFEST, ReportDirectory


def test_files_move_in_together_and_stale_ones_are_removed(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.md").write_text("the user's own file")
    with ReportDirectory(out) as stage:
        (stage / "README.md").write_text("one")
        (stage / "old-plot.png").write_bytes(b"png")
    assert (out / "old-plot.png").exists() and (out / MANIFEST).exists()
    with ReportDirectory(out) as stage:
        (stage / "README.md").write_text("two")
    assert (out / "README.md").read_text() == "two"
    assert not (out / "old-plot.png").exists()  # listed by the previous report, not written by this one
    assert (out / "notes.md").read_text() == "the user's own file"
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "README.md", "notes.md"]


def test_a_report_killed_midway_leaves_the_previous_one_intact(tmp_path):
    out = tmp_path / "report"
    with ReportDirectory(out) as stage:
        (stage / "README.md").write_text("complete")
        (stage / "summary.csv").write_text("a,b\n")
    with pytest.raises(KeyboardInterrupt):
        with ReportDirectory(out) as stage:
            (stage / "summary.csv").write_text("new,half\n")
            raise KeyboardInterrupt  # killed while rendering plots
    assert (out / "README.md").read_text() == "complete" and (out / "summary.csv").read_text() == "a,b\n"
    assert not [p for p in out.iterdir() if p.name.startswith(report_dir.STAGING_PREFIX)]


def test_out_that_is_a_file_is_one_line(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    result = run_cli("report", str(tmp_path), "--out", str(target))
    assert result.returncode == 2 and result.stderr.strip() == f"qbench: error: --out {target} is a file, not a folder"
    nested = run_cli("report", str(tmp_path), "--out", str(target / "sub"))
    assert nested.returncode == 2 and "is a file, not a folder" in nested.stderr and len(nested.stderr.splitlines()) == 1


def test_unwritable_out_is_a_config_error(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(report_dir.tempfile, "mkdtemp", refuse)
    with pytest.raises(qbench.ConfigError, match="Permission denied"):
        with ReportDirectory(tmp_path / "report"):
            pass
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        with pytest.raises(qbench.ConfigError, match="no permission"):
            report_dir.check_writable(locked / "report")


@pytest.mark.parametrize("record,problem", [
    ({"run": [], "metrics": {}}, "'run' must be an object"),
    ({"run": {"quantizer": "gsq"}, "metrics": {"psnr": 3}}, "metric 'psnr' must be an object"),
    ({"run": {"quantizer": "gsq", "seed": "x", "status": "ok"}, "metrics": {}}, "run.seed must be an integer"),
    ({"run": {"quantizer": "gsq", "status": "ok"}, "metrics": {}, "model": 5}, "'model' must be an object"),
])
def test_wrongly_shaped_metrics_json_is_listed_as_broken(tmp_path, record, problem):
    import json

    run = tmp_path / "runs" / "odd"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(record))
    result = run_cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"broken run: {run}" in result.stdout and problem in result.stdout
    assert problem in (tmp_path / "report" / "README.md").read_text()


def copy_run(source, target, **metric_values):
    """A committed run's metrics.json under ``target``, with some metric values replaced (raw JSON values)."""
    import json

    record = json.loads((source / "metrics.json").read_text())
    for name, value in metric_values.items():
        record["metrics"][name]["value"] = value
    target.mkdir(parents=True)
    (target / "metrics.json").write_text(json.dumps(record))
    return target


@pytest.fixture
def folder_with_bad_values(tmp_path):
    """One good run and three whose psnr says ok without a finite number: n/a, a numeric string, null (NaN)."""
    from conftest import ROOT

    sources = sorted((ROOT / "results" / "published" / "sweeps" / "rd-cpu" / "cpu-default").glob("gsq-seed*"))
    runs = tmp_path / "runs"
    good = copy_run(sources[0], runs / "good")
    bad = {value: copy_run(sources[i + 1], runs / f"bad{i}", psnr=value) for i, value in enumerate(("n/a", "12.9", None))}
    return runs, good, bad


def test_a_metric_value_that_is_not_a_number_makes_its_run_broken_and_the_rest_are_reported(folder_with_bad_values,
                                                                                          tmp_path):
    runs, good, bad = folder_with_bad_values
    result = run_cli("report", str(runs), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    readme = (tmp_path / "report" / "README.md").read_text()
    for value, run in bad.items():
        line = next(line for line in result.stdout.splitlines() if line.startswith(f"broken run: {run}"))
        assert f"metric 'psnr' says ok but its value {value!r} is not a finite number" in line
        assert str(run) in readme
    import csv

    with open(tmp_path / "report" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["run_dir"] for row in rows] == [str(good)]  # the good run is still reported, with its number
    assert float(rows[0]["psnr"]) > 10


def test_load_runs_keeps_the_good_runs_and_warns_naming_each_broken_one(folder_with_bad_values):
    runs, good, bad = folder_with_bad_values
    with pytest.warns(UserWarning, match="left out 3 broken run directories") as caught:
        frame = qbench.load_runs(runs)
    assert list(frame["run_dir"]) == [str(good)]
    message = str(caught[0].message)
    assert all(str(run) in message for run in bad.values())
