"""Declared families and criteria become claims: numbers from scipy, Holm from statsmodels, words from the rule."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from scipy import stats

from qbench.errors import ConfigError
from qbench.report.publish import write_report
from qbench.report.tables import build_report

multitest = pytest.importorskip("statsmodels.stats.multitest")

QUANTIZERS = {"gsq": (20.0, 0.30), "vq": (20.6, 0.12), "fsq": (20.1, 0.28)}  # PSNR = base + slope * rate + noise
RATES = (6, 8, 10, 12)

STUDY = """
name = "rd"
[report]
metric = "psnr"

[[report.families]]
id = "vs-gsq"
title = "each quantizer against GSQ at one rate"
kind = "baseline"
baseline = "gsq"
each = ["rate"]

[[report.families]]
id = "gain"
title = "6 to 12 bits"
kind = "between"
along = "rate"
from = 6
to = 12
against = 0.5

[[report.families]]
id = "steps"
title = "each rung"
kind = "steps"
along = "rate"

[[report.families]]
id = "pairs"
title = "every pair of rungs"
kind = "pairs"
along = "rate"
quantizers = ["gsq"]
posthoc = true

[[report.families]]
id = "bd"
title = "BD-PSNR against GSQ"
kind = "bd"
baseline = "gsq"

[[report.criteria]]
id = "rate-matters"
title = "the gain beats 0.5 dB for at least two quantizers"
rule = "at_least"
family = "gain"
verdict = "above"
count = 2

[[report.criteria]]
id = "every-step"
title = "every rung of gsq is above the last"
rule = "all"
family = "steps"
verdict = "above"
contrasts = ["gsq.8-vs-6", "gsq.10-vs-8", "gsq.12-vs-10"]
words = ["established", "not established"]
"""


def entry(value):
    return {"status": "ok", "value": value, "reason": "", "protocol": {"num_images": 40, "eval_set": "x/split=test"},
            "extras": {}, "higher_is_better": True, "unit": "dB", "heading": "PSNR (dB)", "format": ""}


def printed_verdicts(page: str) -> dict[str, str]:
    """Claim id -> the verdict word a table of the page prints beside it (tables with claim and verdict columns)."""
    found, header = {}, None
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            header = None
        elif header is None:
            header = cells
        elif "claim" in header and "verdict" in header and not set(line) <= set("|-"):
            found[cells[header.index("claim")].strip("`")] = cells[header.index("verdict")]
    return found


def write_run(root, name, quantizer, seed, psnr, point, *, bits, sweep_file="study.toml", config=None):
    run_dir = root / f"{name}-{quantizer}-{config or ''}-{json.dumps(point, sort_keys=True)}-seed{seed}".replace('"', "")
    run_dir.mkdir(parents=True)
    config = config or f"{quantizer}-{json.dumps(point, sort_keys=True)}"
    run = {"quantizer": quantizer, "options": {"dim": 4}, "recipe": "r", "recipe_hash": "h", "config_hash": config,
           "seed": seed, "status": "ok", "reason": "", "sweep": {"name": name, "file": str(sweep_file), "point": point}}
    record = {"schema": 1, "run": run, "metrics": {"psnr": entry(psnr)},
              "model": {"bits_per_position": bits}, "train": {"wall_time_s": 1.0}}
    (run_dir / "metrics.json").write_text(json.dumps(record))
    return run_dir


@pytest.fixture
def rd(tmp_path):
    rng = np.random.default_rng(0)
    truth = {}
    for quantizer, (base, slope) in QUANTIZERS.items():
        for rate in RATES:
            for seed in range(5 if rate == 10 else 3):
                truth[(quantizer, rate, seed)] = base + slope * rate + rng.normal(0, 0.15)
                write_run(tmp_path / "runs", "rd", quantizer, seed, truth[(quantizer, rate, seed)], {"rate": rate},
                          bits=float(rate))
    (tmp_path / "study.toml").write_text(STUDY)
    return tmp_path, truth


def claims_of(report):
    return {c.id: c for c in report.claims}


def test_baseline_family_is_scipys_paired_test_with_statsmodels_holm(rd):
    root, truth = rd
    claims = claims_of(build_report([root / "runs"], studies=[root / "study.toml"]))
    family = ["rd/vs-gsq@rate=10/fsq", "rd/vs-gsq@rate=10/vq"]
    pvalues = []
    for claim_id, quantizer in zip(family, ("fsq", "vq")):
        test = [truth[(quantizer, 10, s)] for s in range(5)]
        base = [truth[("gsq", 10, s)] for s in range(5)]
        expected = stats.ttest_rel(test, base)
        interval = expected.confidence_interval(0.95)
        claim = claims[claim_id]
        assert claim.n == 5 and claim.seeds == (0, 1, 2, 3, 4)  # the extra seeds of the 10-bit rung count here
        assert claim.estimate == pytest.approx(np.mean(np.subtract(test, base)), rel=1e-12)
        assert (claim.low, claim.high) == pytest.approx((interval.low, interval.high), rel=1e-10)
        assert claim.p == pytest.approx(expected.pvalue, rel=1e-10)
        pvalues.append(expected.pvalue)
    adjusted = multitest.multipletests(pvalues, method="holm")[1]
    for claim_id, q in zip(family, adjusted):
        claim = claims[claim_id]
        assert claim.p_holm == pytest.approx(q, rel=1e-12) and claim.m == 2
        assert claim.verdict == ("ties" if q >= 0.05 else "above" if claim.estimate > 0 else "below")
    assert {c.family for c in claims.values()} >= {f"vs-gsq@rate={r}" for r in RATES}  # one family per rate


def test_a_margin_is_tested_instead_of_zero_and_criteria_follow_the_adjusted_words(rd):
    root, truth = rd
    claims = claims_of(build_report([root / "runs"], studies=[root / "study.toml"]))
    pvalues = {}
    for quantizer in QUANTIZERS:
        gains = [truth[(quantizer, 12, s)] - truth[(quantizer, 6, s)] for s in range(3)]
        claim = claims[f"rd/gain/{quantizer}"]
        assert claim.estimate == pytest.approx(np.mean(gains)) and claim.against == 0.5
        pvalues[quantizer] = stats.ttest_1samp(gains, 0.5).pvalue
        assert claim.p == pytest.approx(pvalues[quantizer], rel=1e-10)
    adjusted = dict(zip(pvalues, multitest.multipletests(list(pvalues.values()), method="holm")[1]))
    above = [q for q, p in adjusted.items() if p < 0.05 and claims[f"rd/gain/{q}"].estimate > 0.5]
    criterion = claims["rd/rate-matters"]
    assert criterion.kind == "criterion" and criterion.estimate == len(above)
    assert criterion.verdict == ("met" if len(above) >= 2 else "not met")
    assert f"{len(above)} of 3 above after Holm (needs 2)" in criterion.detail
    steps = [claims[f"rd/steps/gsq.{b}-vs-{a}"] for a, b in zip(RATES, RATES[1:])]
    assert claims["rd/every-step"].verdict == ("established" if all(s.verdict == "above" for s in steps)
                                              else "not established")
    assert claims["rd/steps/gsq.12-vs-10"].n == 3  # paired over the seeds both rungs have


def test_pairs_are_every_pair_and_labelled_post_hoc(rd):
    root, _ = rd
    claims = claims_of(build_report([root / "runs"], studies=[root / "study.toml"]))
    pairs = [c for c in claims.values() if c.family == "pairs"]
    assert sorted(c.key for c in pairs) == sorted(f"gsq.{b}-vs-{a}" for i, a in enumerate(RATES) for b in RATES[i + 1:])
    assert all(c.posthoc and c.m == 6 for c in pairs)


def test_bd_claims_are_the_per_seed_bd_psnr_of_the_package(rd):
    bjontegaard = pytest.importorskip("bjontegaard")
    root, truth = rd
    claims = claims_of(build_report([root / "runs"], studies=[root / "study.toml"]))
    rates = np.array(RATES, dtype=float)
    per_seed = [bjontegaard.bd_psnr(rates, [truth[("gsq", r, s)] for r in RATES],
                                    rates, [truth[("vq", r, s)] for r in RATES], method="cubic") for s in range(3)]
    expected = stats.ttest_1samp(per_seed, 0.0)
    claim = claims["rd/bd/vq"]
    assert claim.n == 3 and claim.estimate == pytest.approx(np.mean(per_seed), abs=1e-9)
    assert claim.p == pytest.approx(expected.pvalue, rel=1e-6)
    assert len(claim.test_runs) == len(claim.reference_runs) == 12  # 4 rungs x the 3 seeds every rung has


def test_claims_csv_holds_every_verdict_the_page_prints(rd):
    root, _ = rd
    report = build_report([root / "runs"], studies=[root / "study.toml"])
    write_report(report, root / "out")
    with open(root / "out" / "claims.csv") as fh:
        rows = {row["id"]: row for row in csv.DictReader(fh)}
    assert len(rows) == len(report.claims) and all(row["verdict"] for row in rows.values())
    printed = printed_verdicts((root / "out" / "README.md").read_text())
    assert printed == {claim_id: row["verdict"] for claim_id, row in rows.items()}
    runs = rows["rd/vs-gsq@rate=10/vq"]["test_runs"].split(";")
    assert len(runs) == 5 and all((root / "runs").joinpath(r).is_dir() for r in runs)  # absolute: tmp paths
    assert "scored on 40 images of the test split (every run)" in (root / "out" / "README.md").read_text()


def test_the_recorded_sweep_file_declares_the_study(rd):
    root, _ = rd
    for path in (root / "runs").rglob("metrics.json"):  # the runs name the study file they were made from
        record = json.loads(path.read_text())
        record["run"]["sweep"]["file"] = str(root / "study.toml")
        path.write_text(json.dumps(record))
    assert "rd/rate-matters" in claims_of(build_report([root / "runs"], studies=None))
    assert not build_report([root / "runs"]).claims  # no declarations asked for (qbench.load_runs): no claims


def test_same_sign_reads_both_budgets(tmp_path):
    rng = np.random.default_rng(1)
    for steps, shift in ((1000, 0.0), (2000, 0.3)):
        for quantizer, offset in (("gsq", 0.0), ("vq", -1.0), ("fsq", 0.02)):
            for seed in range(3):
                write_run(tmp_path / "runs", "dbl", quantizer, seed, 25 + shift + offset + rng.normal(0, 0.05),
                          {"train.steps": steps}, bits=10.0)
    (tmp_path / "dbl.toml").write_text("""
name = "dbl"
[[report.families]]
id = "at-2000"
title = "against GSQ at 2000"
kind = "baseline"
baseline = "gsq"
at = { train = { steps = 2000 } }
[[report.families]]
id = "at-1000"
title = "against GSQ at 1000"
kind = "baseline"
baseline = "gsq"
at = { "train.steps" = 1000 }
[[report.criteria]]
id = "sign"
title = "same sign"
rule = "same_sign"
family = "at-2000"
versus = "at-1000"
""")
    claims = claims_of(build_report([tmp_path / "runs"], studies=[tmp_path / "dbl.toml"]))
    assert claims["dbl/at-2000/vq"].verdict == claims["dbl/at-1000/vq"].verdict == "below"
    assert claims["dbl/sign"].verdict == "met" and "0 change sign" in claims["dbl/sign"].detail


@pytest.mark.parametrize("table, message", [
    ('[[report.families]]\nid = "x"\ntitle = "t"\nkind = "baseline"', "kind baseline needs baseline"),
    ('[[report.families]]\nid = "x"\ntitle = "t"\nkind = "stepz"\nalong = "rate"', "kind must be one of"),
    ('[[report.criteria]]\nid = "c"\ntitle = "t"\nrule = "all"\nfamily = "nope"', "'nope' is not a declared family"),
    ('[[report.families]]\nid = "x"\ntitle = "t"\nkind = "steps"\nalong = "rate"\nfrom_ = 6', "unknown key 'from_'"),
    ('[report]\nmetrc = "psnr"', "unknown key 'metrc' (did you mean 'metric'?)"),
])
def test_a_bad_declaration_is_one_line_naming_the_file(tmp_path, table, message):
    from conftest import run_cli

    write_run(tmp_path / "runs", "rd", "gsq", 0, 20.0, {"rate": 6}, bits=6.0)
    study = tmp_path / "bad.toml"
    study.write_text(f'name = "rd"\n{table}\n')
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_report([tmp_path / "runs"], studies=[study])
    result = run_cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--studies", str(study))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and str(study) in result.stderr


def test_a_family_that_cannot_single_out_a_configuration_says_so(tmp_path):
    for quantizer_config in ("a", "b"):  # two configurations of gsq at one rate
        write_run(tmp_path / "runs", "rd", "gsq", 0, 20.0, {"rate": 6}, bits=6.0, config=quantizer_config)
    (tmp_path / "s.toml").write_text('name = "rd"\n[[report.families]]\nid = "g"\ntitle = "t"\nkind = "steps"\n'
                                     'along = "rate"\n')
    with pytest.raises(ConfigError, match="family g: two configurations of gsq sit at quantizer=gsq, rate=6"):
        build_report([tmp_path / "runs"], studies=[tmp_path / "s.toml"])


def test_a_sweep_file_checks_its_report_table_before_anything_trains(tmp_path):
    from qbench.sweeps.spec import load_sweep

    sweep = tmp_path / "s.toml"
    sweep.write_text('name = "s"\nquantizers = ["gsq"]\n[report]\nfamilies = [{ id = "x", title = "t", kind = "bd" }]\n')
    with pytest.raises(ConfigError, match=r"sweep .*s.toml: family x: kind bd needs baseline"):
        load_sweep(sweep)
