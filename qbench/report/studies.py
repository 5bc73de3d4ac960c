"""What a study declares it will claim: its families of comparisons and its criteria.

The declaration is the ``[report]`` table of a sweep file (or of a study
file holding only ``name`` and ``[report]``), written before the runs are
read (docs/sweeps.md has the format, docs/statistics.md the rule):

    [report]
    metric = "psnr"

    [[report.families]]
    id = "vs-gsq-10bit"
    title = "each quantizer against GSQ at 10 bits"
    kind = "baseline"
    baseline = "gsq"
    at = { rate = 10 }

    [[report.criteria]]
    id = "rate-matters"
    title = "rate matters: the 6 -> 12 bit gain is above zero for at least six quantizers"
    rule = "at_least"
    family = "gain-6-12"
    verdict = "above"
    count = 6

A study measured in steps (tuned at 10 bits first, then at 6, 8 and 12)
is a study file of its own whose ``[report]`` says which sweeps it joins,
``joins = ["converged-10bit-retrain", "carryover-rd-retrain"]``: their runs
form one more table, so each quantizer's curve spans every rate, and its
families read their runs.

``qbench report --studies PATH`` names the files (or folders of them); without
it the report reads the sweep files its runs recorded, where they exist.
Every problem is one ``ConfigError`` line naming the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from qbench.errors import ConfigError, suggest

KINDS = ("baseline", "between", "steps", "pairs", "bd")
RULES = ("at_least", "all", "same_sign", "same_verdicts", "spearman", "kendall")
PAIRED_RULES = ("same_sign", "same_verdicts")  # rules that read a second family, versus
RANK_RULES = ("spearman", "kendall")  # rules on a between family's two sides
VERDICTS = ("above", "below", "ties")
FAMILY_KEYS = ("id", "title", "kind", "metric", "baseline", "along", "from", "to", "descending", "by", "each", "at",
               "seeds", "quantizers", "against", "posthoc", "sweeps", "note")
CRITERION_KEYS = ("id", "title", "rule", "family", "verdict", "count", "versus", "contrasts", "words", "note")
REPORT_KEYS = ("metric", "joins", "families", "criteria")
SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class Family:
    """Comparisons that share one Holm correction (kinds: docs/statistics.md)."""

    id: str
    title: str
    kind: str
    metric: str
    baseline: str = ""
    along: str = ""
    start: Any = None  # "from" in the file
    end: Any = None  # "to" in the file
    descending: bool = False
    by: tuple[str, ...] = ()
    each: tuple[str, ...] = ()
    at: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    quantizers: tuple[str, ...] | None = None
    against: float = 0.0
    posthoc: bool = False
    sweeps: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Criterion:
    """A verdict over a family's adjusted results: met or not met (or the declared pair of words)."""

    id: str
    title: str
    rule: str
    family: str
    verdict: str = "above"
    count: int = 0
    versus: str = ""
    contrasts: tuple[str, ...] = ()
    words: tuple[str, str] = ("met", "not met")
    note: str = ""


@dataclass(frozen=True)
class Study:
    name: str
    source: str
    families: tuple[Family, ...] = ()
    criteria: tuple[Criterion, ...] = ()
    joins: tuple[str, ...] = ()  # sweeps whose runs form this study's table (a study measured in steps)


def _strings(value: Any, what: str, fail: Callable) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(f"{what} must be a list of names, got {value!r}")
    return tuple(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _flat(table: Any, prefix: str = "") -> Any:
    """``{train = {steps = 2000}}`` -> ``{"train.steps": 2000}``, as sweep files read dotted keys."""
    if not isinstance(table, dict):
        return table
    flat: dict[str, Any] = {}
    for key, value in table.items():
        flat.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def _table(raw: Any, keys: tuple[str, ...], where: str, fail: Callable) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise fail(f"{where} must be a table, got {raw!r}")
    for key in raw:
        if key not in keys:
            raise fail(f"{where}: unknown key {key!r}{suggest(key, keys)}; allowed: {', '.join(keys)}")
    for key in ("id", "title"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise fail(f"{where} needs {key} = \"...\"")
    if not SLUG.match(raw["id"]):
        raise fail(f"{where}: id {raw['id']!r} must be lower-case letters, digits, '.', '_' or '-'")
    return raw


def _family(raw: Any, index: int, metric: str, fail: Callable) -> Family:
    raw = _table(raw, FAMILY_KEYS, f"[[report.families]] {index + 1}", fail)
    where = f"family {raw['id']}"
    kind = raw.get("kind")
    if kind not in KINDS:
        raise fail(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind in ("baseline", "bd") and not isinstance(raw.get("baseline"), str):
        raise fail(f"{where}: kind {kind} needs baseline = \"QUANTIZER\"")
    if kind in ("between", "steps", "pairs") and not isinstance(raw.get("along"), str):
        raise fail(f"{where}: kind {kind} needs along = \"KEY\" (the key the contrasts move along)")
    if kind == "between" and not all(_number(raw.get(k)) or (isinstance(raw.get(k), str) and raw[k])
                                     for k in ("from", "to")):
        raise fail(f"{where}: kind between needs values from = ... and to = ..., numbers or names "
                   "(the contrast is to - from)")
    at = _flat(raw.get("at", {}))
    if not isinstance(at, dict) or not all(_number(v) or isinstance(v, str) for v in at.values()):
        raise fail(f"{where}: at must be a table of keys and single values, e.g. at = {{ rate = 10 }}, got {at!r}")
    seeds = raw.get("seeds")
    if seeds is not None and not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)):
        raise fail(f"{where}: seeds must be a list of integers, got {seeds!r}")
    against = raw.get("against", 0.0)
    if not _number(against):
        raise fail(f"{where}: against must be a number (the value each estimate is tested against), got {against!r}")
    for flag in ("descending", "posthoc"):
        if not isinstance(raw.get(flag, False), bool):
            raise fail(f"{where}: {flag} must be true or false")
    return Family(
        id=raw["id"], title=raw["title"].strip(), kind=kind, metric=str(raw.get("metric", metric)),
        baseline=raw.get("baseline", ""), along=raw.get("along", ""), start=raw.get("from"), end=raw.get("to"),
        descending=raw.get("descending", False),
        by=_strings(raw.get("by", []), f"{where}: by", fail), each=_strings(raw.get("each", []), f"{where}: each", fail),
        at=dict(at), seeds=tuple(seeds) if seeds else None,
        quantizers=_strings(raw["quantizers"], f"{where}: quantizers", fail) if "quantizers" in raw else None,
        against=float(against), posthoc=raw.get("posthoc", False),
        sweeps=_strings(raw.get("sweeps", []), f"{where}: sweeps", fail), note=str(raw.get("note", "")),
    )


def _criterion(raw: Any, index: int, families: dict[str, Family], fail: Callable) -> Criterion:
    raw = _table(raw, CRITERION_KEYS, f"[[report.criteria]] {index + 1}", fail)
    where = f"criterion {raw['id']}"
    rule = raw.get("rule")
    if rule not in RULES:
        raise fail(f"{where}: rule must be one of {', '.join(RULES)}, got {rule!r}")
    for key in ("family", *(("versus",) if rule in PAIRED_RULES else ())):
        if raw.get(key) not in families:
            raise fail(f"{where}: {key} {raw.get(key)!r} is not a declared family; declared: {', '.join(families) or '(none)'}")
    verdict = raw.get("verdict", "above")
    if rule in RANK_RULES and families[raw["family"]].kind != "between":
        raise fail(f"{where}: rule {rule} ranks the two sides of a between family; {raw['family']} is "
                   f"{families[raw['family']].kind}")
    if rule not in (*PAIRED_RULES, *RANK_RULES) and verdict not in VERDICTS:
        raise fail(f"{where}: verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    count = raw.get("count", 0)
    if rule == "at_least" and not (isinstance(count, int) and count >= 1):
        raise fail(f"{where}: rule at_least needs count = N (N >= 1)")
    words = raw.get("words", ["met", "not met"])
    if not (isinstance(words, list) and len(words) == 2 and all(isinstance(w, str) and w for w in words)):
        raise fail(f"{where}: words must be two strings, e.g. [\"established\", \"not established\"]")
    return Criterion(id=raw["id"], title=raw["title"].strip(), rule=rule, family=raw["family"], verdict=verdict,
                     count=count, versus=raw.get("versus", ""),
                     contrasts=_strings(raw.get("contrasts", []), f"{where}: contrasts", fail),
                     words=(words[0], words[1]), note=str(raw.get("note", "")))


def parse_report(raw: Any, name: str, source: str, fail: Callable[[str], ConfigError]) -> Study:
    """The ``[report]`` table of study ``name``, shape-checked (``fail`` makes the error line)."""
    if not isinstance(raw, dict):
        raise fail(f"[report] must be a table, got {raw!r}")
    for key in raw:
        if key not in REPORT_KEYS:
            raise fail(f"[report]: unknown key {key!r}{suggest(key, REPORT_KEYS)}; allowed: {', '.join(REPORT_KEYS)}")
    metric = raw.get("metric", "psnr")
    joins = _strings(raw.get("joins", []), "[report]: joins", fail)
    if name in joins:
        raise fail(f"[report]: joins names the study's own sweep {name!r}; a joining study needs a name of its own")
    families: dict[str, Family] = {}
    for i, item in enumerate(raw.get("families", [])):
        family = _family(item, i, metric, fail)
        if family.id in families:
            raise fail(f"[report]: family id {family.id!r} is declared twice")
        families[family.id] = family
    criteria = [_criterion(item, i, families, fail) for i, item in enumerate(raw.get("criteria", []))]
    if len({c.id for c in criteria} | set(families)) < len(criteria) + len(families):
        raise fail("[report]: every family and criterion needs an id of its own")
    return Study(name, source, tuple(families.values()), tuple(criteria), joins)


def read_study(path: Path) -> Study | None:
    """The study a TOML file declares; None when it has no ``[report]`` table."""
    def fail(message: str) -> ConfigError:
        return ConfigError(f"study {path}: {message}")

    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise fail(f"cannot read it: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise fail(f"not valid TOML: {exc}") from None
    if "report" not in raw:
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("a [report] table needs the study's name = \"...\" beside it (the sweep name it declares for)")
    return parse_report(raw["report"], name.strip(), str(path), fail)


def find_studies(paths: Iterable[str | Path], *, explicit: bool = True) -> dict[str, Study]:
    """Study name -> its declaration, from files or folders of ``*.toml`` (not recursive).

    ``explicit``: a path that does not exist is an error (a recorded sweep
    file that is gone is skipped instead).  Two different declarations of one
    study are an error; the same one read twice is not.
    """
    studies: dict[str, Study] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            if explicit:
                raise ConfigError(f"--studies {path}: no such file or folder")
            continue
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        for file in files:
            study = read_study(file)
            if study is None:
                continue
            known = studies.get(study.name)
            if known is not None and (known.families, known.criteria, known.joins) != (study.families, study.criteria, study.joins):
                raise ConfigError(f"study {study.name} is declared in both {known.source} and {study.source}; "
                                  "keep its [report] table in one file")
            studies.setdefault(study.name, study)
    return studies
