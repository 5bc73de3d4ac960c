"""results/claims.csv recomputed from the committed runs (scipy, statsmodels, bjontegaard), and the page held to it.

Nothing here calls the report code: every row is recomputed from the
``metrics.json`` files it names and from the ``[report]`` tables of the sweep
files, with the formulas of docs/statistics.md written out again.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from functools import cache

import numpy as np
import pytest
import tomllib
from conftest import ROOT
from scipy import optimize, stats

RESULTS = ROOT / "results"
CLAIMS = RESULTS / "claims.csv"
SWEEPS = ROOT / "benchmarks" / "sweeps"
ALPHA = 0.05

multitest = pytest.importorskip("statsmodels.stats.multitest")
sm = pytest.importorskip("statsmodels.api")


@pytest.fixture(scope="module")
def claims() -> list[dict]:
    if not CLAIMS.exists():
        pytest.skip("no published claims.csv")
    with open(CLAIMS) as fh:
        return list(csv.DictReader(fh))


@cache
def record(run_dir: str) -> dict:
    return json.loads((ROOT / run_dir / "metrics.json").read_text())


def value(run_dir: str, metric: str) -> float:
    entry = record(run_dir)["metrics"][metric]
    assert entry["status"] == "ok", (run_dir, metric)
    return float(entry["value"])


def number(text: str) -> float:
    return float(text) if text else math.nan


def runs_of(row: dict, column: str) -> list[str]:
    return [r for r in row[column].split(";") if r]


def t_summary(values: list[float], against: float) -> tuple[float, float, float, float]:
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    low, high = stats.t.interval(0.95, len(data) - 1, loc=mean, scale=stats.sem(data))
    return mean, low, high, float(stats.ttest_1samp(data, against).pvalue)


def paired(row: dict) -> list[float]:
    test = {record(r)["run"]["seed"]: value(r, row["metric"]) for r in runs_of(row, "test_runs")}
    reference = {record(r)["run"]["seed"]: value(r, row["metric"]) for r in runs_of(row, "reference_runs")}
    seeds = sorted(set(test) & set(reference))
    assert seeds == [int(s) for s in row["seeds"].split(";")], row["id"]
    return [test[s] - reference[s] for s in seeds]


def bd_per_seed(row: dict) -> list[float]:
    bjontegaard = pytest.importorskip("bjontegaard")
    values = []
    for seed in (int(s) for s in row["seeds"].split(";")):
        curves = []
        for column in ("reference_runs", "test_runs"):
            points = sorted((record(r)["model"]["bits_per_position"], value(r, row["metric"]))
                            for r in runs_of(row, column) if record(r)["run"]["seed"] == seed)
            curves.append(np.array(points).T)
        (rate_a, psnr_a), (rate_t, psnr_t) = curves
        values.append(bjontegaard.bd_psnr(rate_a, psnr_a, rate_t, psnr_t, method="cubic"))
    return values


def test_every_comparison_recomputes_from_its_runs(claims):
    rows = [r for r in claims if r["kind"] == "comparison"]
    assert len(rows) > 50
    for row in rows:
        values = bd_per_seed(row) if row["method"] == "bd" else paired(row)
        assert int(row["n"]) == len(values), row["id"]
        if len(values) < 2:  # one pair: an estimate, no test (docs/statistics.md)
            assert number(row["estimate"]) == pytest.approx(np.mean(values), rel=1e-9, abs=1e-9), row["id"]
            assert row["verdict"] == "untested" and not (row["ci_low"] or row["ci_high"] or row["p"]), row["id"]
            continue
        mean, low, high, p = t_summary(values, number(row["against"]))
        assert number(row["estimate"]) == pytest.approx(mean, rel=1e-9, abs=1e-9), row["id"]
        assert (number(row["ci_low"]), number(row["ci_high"])) == pytest.approx((low, high), rel=1e-6), row["id"]
        assert number(row["p"]) == pytest.approx(p, rel=1e-6), row["id"]


def test_holm_and_the_verdict_words_recompute_within_each_family(claims):
    families: dict[tuple[str, str], list[dict]] = {}
    for row in (r for r in claims if r["kind"] == "comparison" and int(r["n"]) >= 2):  # untested: not in m
        families.setdefault((row["study"], row["family"]), []).append(row)
    for rows in families.values():
        adjusted = multitest.multipletests([number(r["p"]) for r in rows], method="holm")[1]
        for row, q in zip(rows, adjusted):
            assert number(row["p_holm"]) == pytest.approx(q, rel=1e-9), row["id"]
            assert int(row["m"]) == len(rows)
            side = "above" if number(row["estimate"]) > number(row["against"]) else "below"
            assert row["verdict"] == (side if q < ALPHA else "ties"), row["id"]


def declarations() -> dict[str, dict]:
    studies = {}
    joining = sorted((ROOT / "benchmarks" / "studies").glob("*.toml"))  # studies that join sweeps
    for path in [*sorted(SWEEPS.glob("*.toml")), *joining, *sorted(RESULTS.glob("published/tune/*/retrain.toml"))]:
        raw = tomllib.loads(path.read_text())
        if "report" in raw:
            studies[raw["name"]] = raw["report"]
    return studies


def test_criteria_recompute_from_the_declarations(claims):
    rows = {r["id"]: r for r in claims}
    criteria = [r for r in claims if r["kind"] == "criterion"]
    assert criteria
    for row in criteria:
        criterion_id, _, place = row["id"].partition("@")  # a rank criterion: one row per expanded family
        declared = next(c for c in declarations()[row["study"]].get("criteria", [])
                        if f"{row['study']}/{c['id']}" == criterion_id)
        words = declared.get("words", ["met", "not met"])

        def members(family: str, study: str = row["study"]) -> list[dict]:
            return [r for r in claims if r["kind"] == "comparison" and r["study"] == study
                    and (r["family"] == family or r["family"].startswith(f"{family}@"))]

        found = members(declared["family"])
        if declared.get("contrasts"):
            found = [r for r in found if r["id"].rsplit("/", 1)[1] in declared["contrasts"]]
        if not found or any(r["verdict"] == "untested" for r in found):
            assert row["verdict"] == "untested", row["id"]
            continue
        if declared["rule"] == "at_least":
            holds = sum(r["verdict"] == declared["verdict"] for r in found) >= declared["count"]
        elif declared["rule"] == "all":
            holds = all(r["verdict"] == declared["verdict"] for r in found)
        elif declared["rule"] == "same_verdicts":
            def paired_key(r: dict) -> tuple[str, str]:
                return r["family"].partition("@")[2], r["id"].rsplit("/", 1)[1]

            other = {paired_key(r): r for r in members(declared["versus"])}
            flips = [r for r in found if paired_key(r) in other and other[paired_key(r)]["verdict"] != r["verdict"]]
            assert number(row["estimate"]) == len(flips), row["id"]
            holds = not flips
        elif declared["rule"] in ("spearman", "kendall"):
            found = [r for r in found if r["family"].partition("@")[2] == place]
            sides = [[np.mean([value(d, r["metric"]) for d in runs_of(r, column)]) for r in found]
                     for column in ("reference_runs", "test_runs")]
            correlate = stats.spearmanr if declared["rule"] == "spearman" else stats.kendalltau
            assert number(row["estimate"]) == pytest.approx(correlate(*sides).statistic, rel=1e-9), row["id"]
            holds = list(np.argsort(sides[0])) == list(np.argsort(sides[1]))
        else:
            other = {r["id"].rsplit("/", 1)[1]: r for r in members(declared["versus"])}
            settled = [(r, other[r["id"].rsplit("/", 1)[1]]) for r in found
                       if {r["verdict"], other[r["id"].rsplit("/", 1)[1]]["verdict"]} & {"above", "below"}]
            holds = bool(settled) and all(number(a["estimate"]) * number(b["estimate"]) > 0 for a, b in settled)
        assert row["verdict"] == (words[0] if holds else words[1]), row["id"]
        assert all(r["id"] in rows for r in found)


def law_data(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    runs = runs_of(rows[0], "test_runs")
    options = [record(r)["run"]["options"] for r in runs]
    d = np.array([o["dim"] for o in options], dtype=float)
    v = np.array([o["codebook_size"] for o in options], dtype=float)
    return d, v, np.array([value(r, rows[0]["metric"]) for r in runs])


def law(x, a, b, c, e):
    return a / np.log2(x[1]) ** b + c * x[0] ** e


def test_the_law_rows_recompute(claims):
    fits: dict[str, list[dict]] = {}
    for row in (r for r in claims if r["kind"] == "fit"):
        fits.setdefault(row["family"], []).append(row)
    assert fits
    for rows in fits.values():
        by = {r["id"].rsplit("/", 1)[1]: r for r in rows}
        d, v, y = law_data(rows)
        n, x = len(y), np.vstack([d, v])
        estimate = [number(by[p]["estimate"]) for p in "abce"]
        sse = float(np.sum((y - law(x, *estimate)) ** 2))
        # no start of an independent search does better than the claimed optimum
        for b0 in np.linspace(-1.5, 5.5, 8):
            for e0 in np.linspace(-2.5, 2.5, 6):
                design = np.column_stack([np.log2(v) ** -b0, d**e0])
                (a0, c0), *_ = np.linalg.lstsq(design, y, rcond=None)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optimize.OptimizeWarning)  # some starts are degenerate
                        found, _ = optimize.curve_fit(law, x, y, p0=(a0, b0, c0, e0), maxfev=4000)
                except RuntimeError:
                    continue
                assert np.sum((y - law(x, *found)) ** 2) >= sse * (1 - 1e-7)
        assert number(by["optimum"]["estimate"]) == pytest.approx(sse, rel=1e-9)
        region = sse * (1 + 4 / (n - 4) * stats.f.ppf(0.95, 4, n - 4))
        rival = [float(t) for t in re.findall(r"SSE (\d[\d.]*) at", by["optimum"]["detail"])]
        assert by["optimum"]["verdict"] == ("not unique" if rival and rival[0] <= region else "unique")
        for p in "abce":  # the rule of "determined" on the published bootstrap interval
            low, high, est = number(by[p]["ci_low"]), number(by[p]["ci_high"]), number(by[p]["estimate"])
            bounded = max(abs(low), abs(high)) <= 10 * abs(est) and min(abs(low), abs(high)) >= abs(est) / 10
            assert by[p]["verdict"] == ("determined" if not low <= 0 <= high and bounded else "undetermined")
        # lack of fit against the cell means, for the law and for the plane
        cells = sorted(set(zip(d, v)))
        means = {c: y[[(a, b) == c for a, b in zip(d, v)]].mean() for c in cells}
        pure = float(sum((yi - means[(a, b)]) ** 2 for a, b, yi in zip(d, v, y)))
        design = np.column_stack([np.ones(n), np.log2(v), d])
        plane = sm.OLS(y, design).fit()
        for key, model_sse, k in (("lack-of-fit", sse, 4), ("plane-lack-of-fit", plane.ssr, 3)):
            f = ((model_sse - pure) / (len(cells) - k)) / (pure / (n - len(cells)))
            assert number(by[key]["estimate"]) == pytest.approx(f, rel=1e-6)
            p = stats.f.sf(f, len(cells) - k, n - len(cells))
            assert number(by[key]["p"]) == pytest.approx(p, rel=1e-5)
            assert by[key]["verdict"] == ("rejected" if p < ALPHA else "not rejected")
        # AIC and BIC as statsmodels counts them, against the plane
        llf = -n / 2 * (np.log(2 * np.pi) + np.log(sse / n) + 1)
        for key, law_ic, plane_ic in (("vs-plane-aic", -2 * llf + 8, plane.aic), ("vs-plane-bic", -2 * llf + 4 * np.log(n),
                                                                                plane.bic)):
            delta = law_ic - plane_ic
            assert number(by[key]["estimate"]) == pytest.approx(delta, rel=1e-6)
            assert by[key]["verdict"] == ("law preferred" if delta <= -2 else "plane preferred" if delta >= 2
                                          else "no preference")
        # J test of the plane: the law's fitted values as one more regressor
        j = sm.OLS(y, np.column_stack([design, law(x, *estimate)])).fit()
        assert (number(by["j-test-plane"]["estimate"]), number(by["j-test-plane"]["p"])) == pytest.approx(
            (j.tvalues[-1], j.pvalues[-1]), rel=1e-5)
        # and of the law: the plane's fitted values added to it, by nonlinear least squares
        found, cov = optimize.curve_fit(lambda z, a, b, c, e, k: law(z[:2], a, b, c, e) + k * z[2],
                                        np.vstack([d, v, plane.fittedvalues]), y, p0=[*estimate, 0.0], maxfev=20000)
        t = found[-1] / np.sqrt(cov[-1, -1])
        assert number(by["j-test-law"]["estimate"]) == pytest.approx(t, rel=1e-4)
        assert number(by["j-test-law"]["p"]) == pytest.approx(2 * stats.t.sf(abs(t), n - 5), rel=1e-4)


@pytest.mark.slow  # 1000 refits of the law: about a minute on 2 cores
def test_the_law_bootstrap_recomputes(claims):
    """Seeds resampled within cells from default_rng(0), each resample refitted by an independent search."""
    rows = [r for r in claims if r["kind"] == "fit"]
    by = {r["id"].rsplit("/", 1)[1]: r for r in rows}
    d, v, y = law_data(rows)
    rival = [float(t) for t in re.findall(r"[abce] = (-?\d[\d.e+-]*)", by["optimum"]["detail"])]
    known = [(number(by["b"]["estimate"]), number(by["e"]["estimate"])), (rival[1], rival[3])]
    grid_b, grid_e = np.arange(-2.0, 6.01, 0.1), np.arange(-3.0, 3.01, 0.1)

    def profile(params, d, v, y):
        design = np.column_stack([np.log2(v) ** -params[0], d ** params[1]])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        return design @ coef - y, coef

    def refit(d, v, y):
        u = np.log2(v)[None, :] ** -grid_b[:, None]
        w = d[None, :] ** grid_e[:, None]
        gram = np.stack([np.broadcast_to((u * u).sum(1)[:, None], (len(grid_b), len(grid_e))), u @ w.T,
                         np.broadcast_to((w * w).sum(1)[None, :], (len(grid_b), len(grid_e)))])
        rhs = np.stack([np.broadcast_to((u @ y)[:, None], gram[0].shape), np.broadcast_to((w @ y)[None, :], gram[0].shape)])
        det = gram[0] * gram[2] - gram[1] ** 2
        with np.errstate(all="ignore"):
            a = (gram[2] * rhs[0] - gram[1] * rhs[1]) / det
            c = (gram[0] * rhs[1] - gram[1] * rhs[0]) / det
            sse = np.where(np.abs(det) > 1e-9 * gram[0] * gram[2], y @ y - a * rhs[0] - c * rhs[1], np.inf)
        i, j = np.unravel_index(np.argmin(sse), sse.shape)
        best = (np.inf, None)
        for start in [*known, (grid_b[i], grid_e[j])]:
            with np.errstate(all="ignore"):
                found = optimize.least_squares(lambda p: profile(p, d, v, y)[0], start, method="trf", xtol=1e-12,
                                               ftol=1e-12, gtol=1e-12)
            residual, (a_, c_) = profile(found.x, d, v, y)
            if residual @ residual < best[0]:
                best = (residual @ residual, (a_, found.x[0], c_, found.x[1]))
        return best[1]

    rng = np.random.default_rng(0)
    cells = sorted(set(zip(d.tolist(), v.tolist())))
    members = [np.flatnonzero((d == a) & (v == b)) for a, b in cells]
    draws = []
    for _ in range(1000):
        index = np.concatenate([rng.choice(m, size=len(m), replace=True) for m in members])
        draws.append(refit(d[index], v[index], y[index]))
    low, high = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    for k, p in enumerate("abce"):
        width = high[k] - low[k]
        assert number(by[p]["ci_low"]) == pytest.approx(low[k], abs=0.02 * width), p
        assert number(by[p]["ci_high"]) == pytest.approx(high[k], abs=0.02 * width), p


# ---- the page: every verdict word is a row of claims.csv ----

VOCABULARY = ("not established", "not met", "not unique", "not rejected", "law preferred", "plane preferred",
              "no preference", "established", "undetermined", "determined", "unique", "rejected", "untested",
              "above", "below", "ties", "tied", "tie", "met", "significant", "significantly", "refuted", "confirmed")
INFLECTED = {"tie": "ties", "tied": "ties"}
CODE = re.compile(r"`[^`]*`")


def printed_verdicts(page: str) -> dict[str, str]:
    """Claim id -> the verdict a table of the generated page prints beside it."""
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


def test_every_verdict_the_generated_page_prints_is_a_claims_row(claims):
    page = (RESULTS / "README.md").read_text()
    intro = (RESULTS / "INTRO.md").read_text()
    printed = printed_verdicts(page[len(intro.strip()):])
    assert printed == {r["id"]: r["verdict"] for r in claims}


def units(text: str) -> list[str]:
    """Sentences, table rows and headings of Markdown prose (fenced code left out)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    found = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*] |\d+\. |\||#))", text):
        block = " ".join(block.split())
        if block.startswith("|"):
            found.append(block)
        else:
            found += re.split(r"(?<=[.!?])\s+(?=[A-Z*(`\[])", block)
    return [u for u in found if u]


def test_intro_states_only_verdicts_the_claims_file_holds(claims):
    """The convention: a verdict word appears only in a sentence that cites a claim with that verdict.

    A citation is a code span holding a claim id (`study/family/contrast`).
    Words of the vocabulary used in any other sense must be avoided in
    results/INTRO.md (write "under", "over", "in the next section").
    """
    verdicts = {r["id"]: r["verdict"] for r in claims}
    studies = {r["study"] for r in claims}
    vocabulary = sorted(set(VOCABULARY) | set(verdicts.values()), key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in vocabulary) + r")\b", re.I)
    problems, cited_any = [], 0
    for unit in units((RESULTS / "INTRO.md").read_text()):
        spans = [s.strip("`") for s in CODE.findall(unit)]
        cited = [s for s in spans if s.split("/", 1)[0] in studies and "/" in s]
        problems += [f"cites an unknown claim: {c}" for c in cited if c not in verdicts]
        cited_any += len(cited)
        words = {INFLECTED.get(w.lower(), w.lower()) for w in pattern.findall(CODE.sub(" ", unit))}
        held = {verdicts[c] for c in cited if c in verdicts}
        for word in sorted(words - held):
            problems.append(f"{word!r} without a cited claim that holds it: {unit[:160]}")
    assert cited_any > 30
    assert not problems, "\n".join(problems)
