"""Default against tuned options: the declarations retrain.toml carries, recomputed with scipy and statsmodels.

Synthetic run records of two studies (hand-set and tuned options, seeds 1-5 each) are reported with the
[report] table qbench tune writes; the tuning gain, its interval and Holm, the rank correlations and the
verdicts that flip are computed here again without the report's code.
"""

from __future__ import annotations

import csv
import textwrap

import numpy as np
import pytest
from scipy import stats
from test_claims import write_run

from qbench.errors import ConfigError
from qbench.report.publish import write_report
from qbench.report.tables import build_report
from qbench.tuning.declare import report_table
from qbench.tuning.spec import load_tune

multitest = pytest.importorskip("statsmodels.stats.multitest")

DEFAULT, TUNED = "default-10", "tiny-retrain"
SEEDS = (1, 2, 3, 4, 5)
# mean PSNR per quantizer with hand-set and with tuned options: lfq gains a lot and overtakes vq and gsq
MEANS = {"gsq": (25.0, 25.3), "vq": (25.4, 25.5), "fsq": (24.0, 24.1), "lfq": (21.4, 25.9), "ibq": (22.5, 22.52)}


@pytest.fixture
def studies(tmp_path):
    rng = np.random.default_rng(3)
    truth = {}
    for side, sweep in enumerate((DEFAULT, TUNED)):
        for quantizer, means in MEANS.items():
            for seed in SEEDS:
                psnr = means[side] + rng.normal(0, 0.25)
                truth[(sweep, quantizer, seed)] = psnr
                write_run(tmp_path / "runs" / sweep, sweep, quantizer, seed, psnr, {"rate": 10}, bits=10.0,
                          config=f"{sweep}-{quantizer}")
    (tmp_path / "default.toml").write_text(textwrap.dedent(f"""
        name = "{DEFAULT}"
        [[report.families]]
        id = "vs-gsq"
        title = "hand-set options against GSQ"
        kind = "baseline"
        baseline = "gsq"
        each = ["rate"]
    """))
    declared = report_table(TUNED, list(MEANS), "psnr", DEFAULT)
    (tmp_path / "retrain.toml").write_text(f'name = "{TUNED}"\n\n{declared}')
    report = build_report([tmp_path / "runs"], studies=[tmp_path / "default.toml", tmp_path / "retrain.toml"])
    return tmp_path, truth, report, {c.id: c for c in report.claims}


def paired(truth, quantizer, test=(TUNED,), reference=(DEFAULT,)):
    a = [truth[(test[0], test[1] if len(test) > 1 else quantizer, s)] for s in SEEDS]
    b = [truth[(reference[0], reference[1] if len(reference) > 1 else quantizer, s)] for s in SEEDS]
    return a, b


def test_the_tuning_gain_is_scipys_paired_t_with_statsmodels_holm_across_quantizers(studies):
    _, truth, _, claims = studies
    pvalues = {}
    for quantizer in MEANS:
        tuned, default = paired(truth, quantizer)
        expected = stats.ttest_rel(tuned, default)
        interval = expected.confidence_interval(0.95)
        claim = claims[f"{TUNED}/tuning-gain@rate=10/{quantizer}"]
        assert claim.n == 5 and claim.seeds == SEEDS and claim.method == "between"
        assert claim.estimate == pytest.approx(np.mean(np.subtract(tuned, default)), rel=1e-12)
        assert (claim.low, claim.high) == pytest.approx((interval.low, interval.high), rel=1e-10)
        assert claim.p == pytest.approx(expected.pvalue, rel=1e-10)
        assert claim.test_mean == pytest.approx(np.mean(tuned)) and claim.reference_mean == pytest.approx(np.mean(default))
        assert all(TUNED in r for r in claim.test_runs) and all(DEFAULT in r for r in claim.reference_runs)
        pvalues[quantizer] = expected.pvalue
    adjusted = multitest.multipletests(list(pvalues.values()), method="holm")[1]
    for quantizer, q in zip(pvalues, adjusted):
        claim = claims[f"{TUNED}/tuning-gain@rate=10/{quantizer}"]
        assert claim.p_holm == pytest.approx(q, rel=1e-12) and claim.m == len(MEANS)
        assert claim.verdict == ("ties" if q >= 0.05 else "above" if claim.estimate > 0 else "below")
    assert claims[f"{TUNED}/tuning-gain@rate=10/lfq"].verdict == "above"  # 4.5 dB over seed noise of 0.25


def test_the_default_family_in_the_tuned_study_repeats_the_default_studys_own(studies):
    _, _, _, claims = studies
    for quantizer in set(MEANS) - {"gsq"}:
        mine, theirs = claims[f"{TUNED}/default-vs-gsq@rate=10/{quantizer}"], claims[f"{DEFAULT}/vs-gsq@rate=10/{quantizer}"]
        assert (mine.estimate, mine.p_holm, mine.verdict) == (theirs.estimate, theirs.p_holm, theirs.verdict)
        assert mine.test_runs == theirs.test_runs


def test_rank_correlations_are_scipys_over_the_two_sides_means(studies):
    _, truth, _, claims = studies
    default = [np.mean(paired(truth, q)[1]) for q in MEANS]
    tuned = [np.mean(paired(truth, q)[0]) for q in MEANS]
    for rule, correlate in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        expected = correlate(default, tuned)
        claim = claims[f"{TUNED}/ranking-{rule}@rate=10"]
        assert claim.estimate == pytest.approx(expected.statistic, rel=1e-12)
        assert claim.p == pytest.approx(expected.pvalue, rel=1e-12)
        assert claim.n == len(MEANS) and claim.verdict == "ranking changes"  # lfq moves from last to first
    assert "lfq" in claim.detail.split("to: ", 1)[1].split(" > ")[0]


def test_the_flip_list_names_each_verdict_against_gsq_that_changes(studies):
    _, _, _, claims = studies
    expected = []
    for quantizer in sorted(set(MEANS) - {"gsq"}):
        before = claims[f"{TUNED}/default-vs-gsq@rate=10/{quantizer}"].verdict
        after = claims[f"{TUNED}/vs-gsq@rate=10/{quantizer}"].verdict
        if before != after:
            expected.append(f"{quantizer}@rate=10 {before} -> {after}")
    claim = claims[f"{TUNED}/verdicts-kept"]
    assert "lfq@rate=10 below -> above" in expected  # the constructed flip is there to be found
    assert claim.estimate == len(expected) and claim.verdict == "verdicts flip" and claim.n == len(MEANS) - 1
    flipped = claim.detail.split(": ", 1)[1].split("; the same", 1)[0].split("; ")
    assert sorted(flipped) == sorted(expected)


def test_one_report_publishes_it_in_claims_csv_and_on_the_page(studies):
    root, _, report, _ = studies
    write_report(report, root / "out")
    with open(root / "out" / "claims.csv") as fh:
        rows = {row["id"]: row for row in csv.DictReader(fh)}
    gain = rows[f"{TUNED}/tuning-gain@rate=10/lfq"]
    assert float(gain["test_mean"]) - float(gain["reference_mean"]) == pytest.approx(float(gain["estimate"]))
    page = (root / "out" / "README.md").read_text()
    assert "tuning gain per quantizer" in page and f"`{TUNED}/verdicts-kept`" in page


def test_the_tune_files_compare_sweep_names_the_study_and_bad_ones_are_one_line(tmp_path):
    (tmp_path / "d.toml").write_text('name = "hand-set"\nrecipe = "smoke"\n')
    base = 'name = "t"\nrecipe = "smoke"\nquantizers = ["gsq", "vq"]\nrates = [4]\ntrials = 2\n'
    (tmp_path / "t.toml").write_text(base + 'compare = "d.toml"\n')
    spec = load_tune(tmp_path / "t.toml")
    assert spec.compare_study == "hand-set" and spec.compare == str((tmp_path / "d.toml").resolve())
    for value, message in (('"nope.toml"', "cannot read"), ("3", "path of a sweep file")):
        (tmp_path / "t.toml").write_text(base + f"compare = {value}\n")
        with pytest.raises(ConfigError, match=message) as info:
            load_tune(tmp_path / "t.toml")
        assert "\n" not in str(info.value)


def test_the_shipped_tune_file_compares_with_the_shipped_default_sweep():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = load_tune(root / "benchmarks" / "tune" / "converged-10bit.toml")
    assert spec.compare_study == "default-converged-10bit"
    assert Path(spec.compare) == (root / "benchmarks" / "sweeps" / "default-converged-10bit.toml").resolve()


def test_the_written_retrain_sweep_carries_the_declarations_and_plans(tmp_path):
    from qbench.platform.plugins import registries
    from qbench.report.studies import read_study
    from qbench.sweeps import build_plan as build_sweep_plan
    from qbench.sweeps import load_sweep
    from qbench.tuning import build_plan
    from qbench.tuning.best import Best, ladder_text, retrain_text

    (tmp_path / "d.toml").write_text('name = "hand-set"\nrecipe = "smoke"\nquantizers = ["gsq", "vq"]\n')
    (tmp_path / "t.toml").write_text(textwrap.dedent("""
        name = "t"
        recipe = "smoke"
        quantizers = ["gsq", "vq"]
        rates = [4]
        trials = 2
        compare = "d.toml"
        [set]
        "eval.every" = 2
    """))
    regs = registries()
    plan = build_plan(load_tune(tmp_path / "t.toml"), tmp_path / "out", regs)
    bests = [Best(study, None, {}) for study in plan.studies]  # the values do not shape the declarations
    out = tmp_path / "out"
    out.mkdir()
    (out / "tuned-ladder.toml").write_text(ladder_text(plan, bests))
    (out / "retrain.toml").write_text(retrain_text(plan, bests))
    study = read_study(out / "retrain.toml")
    assert study.name == "t-retrain"
    families = {f.id: f for f in study.families}
    assert set(families) == {"vs-gsq", "default-vs-gsq", "tuning-gain"}
    gain = families["tuning-gain"]
    assert (gain.kind, gain.along, gain.start, gain.end, gain.sweeps) == ("between", "sweep", "hand-set", "t-retrain",
                                                                          ("hand-set",))
    assert families["default-vs-gsq"].at == {"sweep": "hand-set"}
    assert [c.rule for c in study.criteria] == ["same_verdicts", "spearman", "kendall"]
    sweep_plan = build_sweep_plan(load_sweep(out / "retrain.toml"), out / "retrain", regs)  # qbench sweep accepts it
    assert len(sweep_plan.points) == 2 * 5


def test_a_tuned_configuration_equal_to_the_hand_set_one_counts_once_and_has_no_gain_row(tmp_path):
    for sweep in (DEFAULT, TUNED):
        for quantizer in ("gsq", "vq", "fsq"):
            for seed in SEEDS:
                config = "same-fsq" if quantizer == "fsq" else f"{sweep}-{quantizer}"  # fsq's search kept its defaults
                write_run(tmp_path / "runs" / sweep, sweep, quantizer, seed, 25.0 + seed / 10, {"rate": 10}, bits=10.0,
                          config=config)
    (tmp_path / "retrain.toml").write_text(f'name = "{TUNED}"\n\n{report_table(TUNED, ["gsq", "vq", "fsq"], "psnr", DEFAULT)}')
    claims = {c.id for c in build_report([tmp_path / "runs"], studies=[tmp_path / "retrain.toml"]).claims}
    assert f"{TUNED}/tuning-gain@rate=10/vq" in claims and f"{TUNED}/tuning-gain@rate=10/fsq" not in claims
