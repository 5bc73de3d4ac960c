"""A study measured in steps: ``[report] joins`` makes one table, one curve per quantizer and one set of claims from several sweeps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from test_claims import write_run

from qbench.errors import ConfigError
from qbench.report.publish import write_report
from qbench.report.tables import build_report

# one quantizer at 10 bits in one sweep, at 6, 8 and 12 in the next: as the tuned studies are run
STEPS = {"ten": (10,), "rest": (6, 8, 12)}
QUANTIZERS = {"gsq": (20.0, 0.30), "vq": (20.6, 0.12)}

JOINED = """
name = "both"
[report]
metric = "psnr"
joins = ["ten", "rest"]

[[report.families]]
id = "vs-gsq"
title = "vq against gsq at each rate"
kind = "baseline"
baseline = "gsq"
each = ["rate"]
"""


@pytest.fixture
def stepped(tmp_path):
    rng = np.random.default_rng(1)
    truth = {}
    for sweep, rates in STEPS.items():
        for quantizer, (base, slope) in QUANTIZERS.items():
            for rate in rates:
                for seed in range(3):
                    truth[(quantizer, rate, seed)] = base + slope * rate + rng.normal(0, 0.1)
                    write_run(tmp_path / sweep, sweep, quantizer, seed, truth[(quantizer, rate, seed)],
                              {"rate": rate}, bits=float(rate))
    (tmp_path / "both.toml").write_text(JOINED)
    return tmp_path, truth


def test_the_joined_table_draws_each_quantizer_along_every_sweeps_rates(stepped):
    root, _ = stepped
    report = build_report([root / "ten", root / "rest"], studies=[root / "both.toml"])
    by_sweep = {t.sweep: t for t in report.tables}
    assert set(by_sweep) == {"ten", "rest", "both"}  # the sweeps keep their own tables
    joined = by_sweep["both"]
    assert len(joined.runs) == 2 * 4 * 3 and set(joined.runs["sweep"]) == {"both"}
    assert sorted(joined.frame["rate"].astype(int)) == [6, 6, 8, 8, 10, 10, 12, 12]
    assert len(report.runs) == 24 and set(report.runs["sweep"]) == {"ten", "rest"}  # summary.csv: each run once
    page = write_report(report, root / "out").read_text()
    assert "study both: ten, rest joined" in page and "sweep-both-rd-psnr.png" in page


def test_the_joining_studys_families_read_the_joined_runs(stepped):
    root, truth = stepped
    claims = {c.id: c for c in build_report([root / "ten", root / "rest"], studies=[root / "both.toml"]).claims}
    for rate in (6, 8, 10, 12):
        claim = claims[f"both/vs-gsq@rate={rate}/vq"]
        diffs = [truth[("vq", rate, s)] - truth[("gsq", rate, s)] for s in range(3)]
        assert claim.n == 3 and claim.estimate == pytest.approx(np.mean(diffs), rel=1e-12)
        assert claim.p == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue, rel=1e-10)


def test_a_missing_sweep_is_said_and_no_runs_make_no_table(stepped):
    root, _ = stepped
    report = build_report([root / "rest"], studies=[root / "both.toml"])
    joined = next(t for t in report.tables if t.sweep == "both")
    assert "no runs of sweep ten among these paths" in joined.notes
    report = build_report([root / "rest"], studies=[])
    assert {t.sweep for t in report.tables} == {"rest"}


@pytest.mark.parametrize("joins, message", [
    ('joins = ["both"]', "joins names the study's own sweep 'both'"),
    ('joins = "ten rest" \njoins2 = 1', "unknown key 'joins2'"),
    ("joins = [1]", "joins must be a list of names"),
])
def test_bad_joins_are_one_line(stepped, joins, message):
    root, _ = stepped
    (root / "both.toml").write_text(f'name = "both"\n[report]\n{joins}\n')
    with pytest.raises(ConfigError, match=message):
        build_report([root / "ten"], studies=[root / "both.toml"])


def test_a_joining_study_named_like_a_sweep_with_runs_is_refused(stepped):
    root, _ = stepped
    (root / "both.toml").write_text(JOINED.replace('name = "both"', 'name = "ten"').replace('"ten", "rest"', '"rest"'))
    with pytest.raises(ConfigError, match="give the joining study a name of its own"):
        build_report([root / "ten", root / "rest"], studies=[root / "both.toml"])
