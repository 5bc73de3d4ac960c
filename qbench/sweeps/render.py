"""The sweep's plan as text: one row per point, then the totals."""

from __future__ import annotations

from qbench.sweeps.plan import Plan
from qbench.sweeps.points import _show, short_key


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _swept(plan: Plan, p) -> str:
    shown = {k: v for k, v in p.point.swept.items() if k != "rate"}
    return " ".join(f"{short_key(k)}={_show(v)}" for k, v in shown.items()) or "-"


def render_plan(plan: Plan, parallel: int, how: str) -> str:
    """The dry-run listing; ``parallel`` points at a time, ``how`` says with what (for the total)."""
    spec = plan.spec
    has_rate = any("rate" in p.point.swept for p in plan.points)
    has_swept = any(set(p.point.swept) - {"rate"} for p in plan.points)
    headings = ["#", "quantizer"] + (["rate"] if has_rate else []) + (["swept"] if has_swept else [])
    headings += ["bits/pos", "seed", "status", "estimate"]
    rows = []
    for p in plan.points:
        row = [str(p.index), p.identity.quantizer]
        if has_rate:
            row.append(_show(p.point.swept["rate"]) if "rate" in p.point.swept else "-")
        row += [_swept(plan, p)] if has_swept else []
        row += [f"{p.bits:.2f}", str(p.identity.seed), p.status,
                _minutes(p.estimate_s) if p.status not in ("done", "running") else "-"]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headings)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    recipes = sorted({p.identity.recipe.name for p in plan.points})
    out = [f"sweep {spec.name} ({spec.path}): recipe {', '.join(recipes)}, {len(plan.points)} points, "
           f"output {plan.out}"]
    if plan.ladder is not None:
        out.append(f"ladder {plan.ladder.name!r} at rates {', '.join(_show(r) for r in spec.rates or [])} bits")
    out += ["", line.format(*headings).rstrip(), line.format(*("-" * w for w in widths)).rstrip()]
    out += [line.format(*row).rstrip() for row in rows]
    counts = ", ".join(f"{n} {status}" for status, n in sorted(plan.counts.items()))
    pending = plan.pending()
    total = sum(p.estimate_s for p in pending)
    out += ["", f"{len(plan.points)} points: {counts}"]
    if pending:
        out.append(f"to run: {len(pending)} points, {_minutes(total)} of point time; "
                   f"about {_minutes(plan.estimate_s(parallel))} of wall time {how}")
        if plan.estimate_note:
            out.append(plan.estimate_note)
    else:
        out.append("nothing to run: every point is done")
    return "\n".join(out)
