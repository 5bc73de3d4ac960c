"""What the re-training sweep claims: the ``[report]`` table written into ``retrain.toml``.

Declared before any re-training run exists (docs/statistics.md), so that one
``qbench report`` over the tuned and the hand-set runs publishes:

- ``vs-BASELINE``: each tuned quantizer against the tuned baseline (GSQ when
  it is tuned), per rate, as the hand-set study's own ``vs-gsq``;
- with ``compare`` (the hand-set sweep file of the tune file):
  ``default-vs-BASELINE``, the same comparisons on the hand-set runs (pooled
  from that study), ``tuning-gain``, each quantizer's tuned minus hand-set
  result paired by seed with Holm across quantizers per rate, and the
  criteria ``verdicts-kept`` (which verdicts against the baseline flip),
  ``ranking-spearman`` and ``ranking-kendall`` (whether the order of the
  quantizers' means changes).
"""

from __future__ import annotations

from typing import Any

from qbench.rundir.directory import to_toml

PREFERRED_BASELINE = "gsq"


def baseline_of(quantizers: list[str]) -> str:
    return PREFERRED_BASELINE if PREFERRED_BASELINE in quantizers else quantizers[0]


def report_table(name: str, quantizers: list[str], metric: str, compare_study: str = "") -> str:
    """The ``[report]`` table of re-training sweep ``name`` ("" when nothing can be compared)."""
    if len(quantizers) < 2 and not compare_study:
        return ""
    baseline = baseline_of(quantizers)
    families: list[dict[str, Any]] = []
    criteria: list[dict[str, Any]] = []
    if len(quantizers) >= 2:
        families.append({"id": f"vs-{baseline}", "title": f"each quantizer with tuned options against {baseline} "
                         "with tuned options", "kind": "baseline", "baseline": baseline, "each": ["rate"]})
    if compare_study:
        pooled = {"sweeps": [compare_study], "each": ["rate"]}
        if len(quantizers) >= 2:
            families.append({"id": f"default-vs-{baseline}", "title": f"each quantizer with hand-set options against "
                             f"{baseline} with hand-set options ({compare_study})", "kind": "baseline",
                             "baseline": baseline, "at": {"sweep": compare_study}, **pooled})
            criteria.append({"id": "verdicts-kept", "title": f"no verdict against {baseline} changes between "
                             "hand-set and tuned options", "rule": "same_verdicts", "family": f"vs-{baseline}",
                             "versus": f"default-vs-{baseline}", "words": ["no verdict flips", "verdicts flip"]})
        families.append({"id": "tuning-gain", "title": "tuning gain per quantizer: tuned minus hand-set options",
                         "kind": "between", "along": "sweep", "from": compare_study, "to": name,
                         "quantizers": list(quantizers), **pooled})
        for rule in ("spearman", "kendall"):
            criteria.append({"id": f"ranking-{rule}", "title": f"the quantizers' order by mean {metric} is the same "
                             f"with hand-set and tuned options ({rule})", "rule": rule, "family": "tuning-gain",
                             "words": ["same ranking", "ranking changes"]})
    lines = ["[report]", f"metric = {_value(metric)}"]
    for header, items in (("[[report.families]]", families), ("[[report.criteria]]", criteria)):
        for item in items:
            lines += ["", header] + [f"{key} = {_value(value)}" for key, value in item.items()]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    """A TOML value; a table inline (``at = { sweep = "..." }``)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(to_toml({k: v}).strip() for k, v in value.items()) + " }"
    return to_toml({"v": value}).split(" = ", 1)[1].strip()
