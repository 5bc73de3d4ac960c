"""``qbench report --fit``: the scaling law fitted to each D x V grid in the runs.

A grid is one quantizer at one group count G within one table, with at
least two latent widths D (option ``dim``) and two codebook sizes V (option
``codebook_size``); every seed's run is a point (qbench.report.scaling).
Each fit comes with what it knows (qbench.report.lawcheck), written as
claims: which parameters are determined, whether the optimum is unique,
lack of fit, and the comparison with a plane in log2 V and D.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from qbench.errors import ConfigError
from qbench.report.claim import Claim
from qbench.report.columns import fmt
from qbench.report.lawcheck import BOUND, LawCheck, check_law
from qbench.report.multiplicity import ALPHA
from qbench.report.rows import counted
from qbench.report.scaling import PARAMETERS, ScalingFit, fit_scaling
from qbench.report.sections import FitSection, Table

PREFERRED = ("rfid", "lpips", "psnr")
PREFERENCE = 2.0  # an AIC or BIC difference under this prefers neither model


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def grid_points(runs: pd.DataFrame, key: str) -> pd.DataFrame:
    """quantizer, G, D, V, the metric ``y`` and run_dir of each successful run with numeric dim and codebook_size (V ≥ 2).

    Each (configuration, seed) counts once (qbench.report.rows.counted): a run
    repeated in another study is not another replicate.
    """
    ok = counted(runs)
    ok = ok[ok[f"{key}_status"] == "ok"]
    points = []
    for _, run in ok.iterrows():
        options = json.loads(run["options"])
        d, v, g = (_number(options.get(k, default)) for k, default in (("dim", None), ("codebook_size", None), ("groups", 1)))
        if d and v and g and v >= 2:
            points.append({"quantizer": run["quantizer"], "G": g, "D": d, "V": v, "y": float(run[key]),
                           "run_dir": run["run_dir"]})
    return pd.DataFrame(points, columns=["quantizer", "G", "D", "V", "y", "run_dir"])


MIN_POINTS = 5  # the law has 4 parameters: one point more leaves a residual to judge the fit by


def grids(runs: pd.DataFrame, key: str) -> list[tuple[str, pd.DataFrame]]:
    """(description, points) for each quantizer and G whose runs cross D with V, with ``MIN_POINTS`` runs or more.

    Crossed: at least two values of D each measured at two values of V or
    more.  A staircase (one V per D, as a tuned ladder picks them) confounds
    D with V and with whatever else each rung re-tuned: it is not fitted.
    """
    found = []
    for (quantizer, groups), grid in grid_points(runs, key).groupby(["quantizer", "G"]):
        crossed = (grid.groupby("D")["V"].nunique() >= 2).sum() >= 2
        if crossed and len(grid) >= MIN_POINTS:
            found.append((f"{quantizer} (groups={groups:g})", grid))
    return found


def _metrics(report: Any, requested: str) -> list[str]:
    """The metric to fit, or for "auto" the candidates in order of preference."""
    names = [c.key for c in report.metrics]
    if requested == "auto":
        return [n for n in PREFERRED if n in names]
    if requested not in names:
        raise ConfigError(f"--fit-metric: no metric {requested!r} in these runs; they hold: {', '.join(names) or '(none)'}")
    return [requested]


def fit_sections(report: Any, requested: str) -> list[FitSection]:
    for key in _metrics(report, requested):
        found = [(table, description, grid) for table in report.tables for description, grid in grids(table.runs, key)]
        if found:
            return [_section(table, description, grid, key) for table, description, grid in found]
    measured = "" if requested == "auto" else f" with {requested} measured"
    raise ConfigError(
        f"--fit needs runs of one quantizer over at least 2 latent widths D (option dim) and 2 codebook sizes V "
        f"(option codebook_size){measured}; these runs form no such grid"
    )


def _interval(low: float, high: float) -> str:
    return "—" if not (math.isfinite(low) and math.isfinite(high)) else f"[{fmt(low, '.4g')}, {fmt(high, '.4g')}]"


def _preference(delta: float) -> str:
    """An information criterion's verdict: a difference under 2 is no preference (Burnham and Anderson)."""
    return "law preferred" if delta <= -PREFERENCE else "plane preferred" if delta >= PREFERENCE else "no preference"


def _rejected(p: float) -> str:
    return "untested" if not math.isfinite(p) else "rejected" if p < ALPHA else "not rejected"


def law_claims(study: str, family: str, fit: ScalingFit, check: LawCheck, metric: str,
               runs: tuple[str, ...] = ()) -> list[Claim]:
    """What the fit determines, and what it does not: one claim per parameter and per diagnostic."""
    def claim(key: str, what: str, verdict: str, **numbers) -> Claim:
        return Claim(id=f"{study}/{family}/{key}", study=study, family=family, kind="fit", method="law",
                     contrast=what, verdict=verdict, title=f"{metric} = a / (log2 V)^b + c·D^e", metric=metric,
                     n=fit.points, test_runs=runs, **numbers)

    share = f"{check.converged} of {check.resamples} bootstrap refits converged"
    rows = [claim(p, f"parameter {p}", "determined" if check.determined[p] else "undetermined",
                  estimate=fit.estimates[p], low=check.bootstrap[p][0], high=check.bootstrap[p][1],
                  detail=f"covariance interval {_interval(*fit.intervals[p])}; {share}") for p in PARAMETERS]
    rival = check.rival
    rows.append(claim("optimum", f"the least-squares optimum, best of {len(fit.optima)} distinct local optima",
                      "not unique" if rival else "unique", estimate=fit.sse, detail=(
                          f"SSE {fit.sse:.4g}; the 95% joint confidence region holds SSE <= {check.region:.4g}"
                          + (f"; another optimum inside it: SSE {rival[1]:.4g} at "
                             + ", ".join(f"{p} = {fmt(x, '.4g')}" for p, x in zip(PARAMETERS, rival[0]))
                             if rival else ""))))
    for key, name, model in (("lack-of-fit", "the law", check.law), ("plane-lack-of-fit", "the plane", check.plane)):
        rows.append(claim(key, f"lack of fit of {name} against the cell means (F test)", _rejected(model.lack_p),
                          estimate=model.lack_f, p=model.lack_p,
                          detail=f"F({model.lack_df[0]}, {model.lack_df[1]}) = {fmt(model.lack_f, '.4g')}"))
    b0, b1, b2 = check.plane_coefficients
    plane = f"the plane {fmt(b0, '.4g')} {_term(b1)} log2 V {_term(b2)} D"
    for key, attr in (("vs-plane-aic", "aic"), ("vs-plane-bic", "bic")):
        law_ic, plane_ic = getattr(check.law, attr), getattr(check.plane, attr)
        rows.append(claim(key, f"the law (4 parameters) against {plane} (3) by {attr.upper()}",
                          _preference(law_ic - plane_ic), estimate=law_ic - plane_ic,
                          detail=f"{attr.upper()} {law_ic:.2f} (law) against {plane_ic:.2f} (plane)"))
    for key, what, (t, p) in (("j-test-law", "the law, given the plane's fitted values (J test)", check.j_law),
                              ("j-test-plane", "the plane, given the law's fitted values (J test)", check.j_plane)):
        rows.append(claim(key, what, _rejected(p), estimate=t, p=p, detail=f"t = {fmt(t, '.3g')}"))
    return rows


def _correlations(fit: ScalingFit) -> str:
    if fit.correlation is None:
        return "parameter correlations: not defined (no finite covariance)"
    pairs = [f"r({a},{b}) = {fit.correlation[i, j]:+.4f}" for i, a in enumerate(PARAMETERS)
             for j, b in enumerate(PARAMETERS) if j > i]
    return "parameter correlations (from the covariance): " + ", ".join(pairs)


def _section(table: Table, description: str, grid: pd.DataFrame, key: str) -> FitSection:
    result = fit_scaling(grid["D"], grid["V"], grid["y"])
    check = check_law(grid["D"], grid["V"], grid["y"], result)
    first = grid.iloc[0]
    family = f"law-{key}-{first['quantizer']}-g{first['G']:g}"
    claims = law_claims(table.sweep or table.key, family, result, check, key, tuple(grid["run_dir"]))
    frame = pd.DataFrame([{
        "claim": f"`{c.id}`", "what": c.contrast, "estimate": fmt(c.estimate, ".4g"),
        "95% interval": _interval(c.low, c.high), "p": f"{c.p:.2g}" if math.isfinite(c.p) else "—",
        "verdict": c.verdict, "detail": c.detail,
    } for c in claims])
    notes = [f"{result.points} runs on {result.cells} (D, V) cells; residual RMS {fmt(result.rms, '.3g')}, "
             f"R² {fmt(result.r2, '.3f')}; plane R² {fmt(1 - check.plane.sse / _total(grid['y']), '.3f')}",
             "a parameter is determined only when its bootstrap interval (seeds resampled within each cell, "
             f"{check.resamples} refits, seeded) excludes 0 and stays within a factor {BOUND:g} of the estimate "
             "(docs/statistics.md)", _correlations(result), *(f"warning: {w}" for w in result.warnings)]
    return FitSection(
        title=f"scaling fit: {key} = a / (log2 V)^b + c·D^e, {description}, {table.title}",
        key=f"{table.key}-fit-{key}", frame=frame, notes=notes, fit=result, grid=grid, metric=key, claims=claims,
    )


def _total(y: pd.Series) -> float:
    values = y.to_numpy(float)
    return float(((values - values.mean()) ** 2).sum())


def _term(value: float) -> str:
    return f"{'-' if value < 0 else '+'} {fmt(abs(value), '.4g')}"
