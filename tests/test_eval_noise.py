"""The report's evaluation-noise section: seed sd against the standard error over images, from the records."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from test_report import entry, write_run

from qbench.report.publish import write_report
from qbench.report.tables import build_report


def psnr_with_se(value, se):
    psnr = entry(value, unit="dB", heading="PSNR (dB)")
    psnr["extras"] = {"image_sd": se * math.sqrt(393), "standard_error": se}
    return {"psnr": psnr}


def test_seed_sd_and_eval_se_per_configuration(tmp_path):
    psnrs, ses = [24.1, 24.6, 23.8, 24.3], [0.21, 0.19, 0.22, 0.20]
    for seed, (value, se) in enumerate(zip(psnrs, ses)):
        write_run(tmp_path / "runs", "gsq", {"dim": 8}, seed, psnr_with_se(value, se))
    report = build_report([tmp_path / "runs"])
    [section] = [s for s in report.sections if s.title.startswith("evaluation noise against seed noise")]
    [row] = section.frame.to_dict("records")
    seed_sd = np.std(psnrs, ddof=1)
    eval_se = math.sqrt(np.mean(np.square(ses)))
    assert row["seeds"] == 4
    assert row["PSNR (dB): seed sd / eval se"] == f"{seed_sd:.3f} / {eval_se:.3f} ({seed_sd / eval_se:.1f}x)"
    write_report(report, tmp_path / "out")
    assert "evaluation noise against seed noise" in (tmp_path / "out" / "README.md").read_text()
    # the section's helper column stays out of summary.csv
    assert not [c for c in pd.read_csv(tmp_path / "out" / "summary.csv").columns if c.endswith("_eval_se")]


def test_no_section_for_one_seed_or_runs_without_the_extras(tmp_path):
    write_run(tmp_path / "one", "gsq", {"dim": 8}, 0, psnr_with_se(24.0, 0.2))
    for seed in range(2):  # records written before the extras existed
        write_run(tmp_path / "old", "vq", {"dim": 8}, seed, {"psnr": entry(24.0 + seed, heading="PSNR (dB)")})
    for root in ("one", "old"):
        report = build_report([tmp_path / root])
        assert not [s for s in report.sections if "noise" in s.title]


def test_a_configuration_with_some_runs_lacking_the_extras_gets_no_figure(tmp_path):
    write_run(tmp_path / "runs", "gsq", {"dim": 8}, 0, psnr_with_se(24.0, 0.2))
    write_run(tmp_path / "runs", "gsq", {"dim": 8}, 1, {"psnr": entry(24.5, heading="PSNR (dB)")})
    write_run(tmp_path / "runs", "gsq", {"dim": 8}, 2, psnr_with_se(24.2, 0.2))
    report = build_report([tmp_path / "runs"])
    assert not [s for s in report.sections if "noise" in s.title]
