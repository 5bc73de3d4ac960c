"""Two tuning studies of the same (quantizer, rate) cells compared at an equal trial budget.

What would searching more of the space buy?  For every (quantizer, rate)
that both storages hold, take each study's first N finished trials (complete
or pruned, in trial order; N is the smaller finished count of the two, or
``--trials``) and print the best value each found among them, selected on the
split the studies selected on, and the difference.  Run by hand, e.g. the
carry-over against the full per-rate search (docs/tuning.md):

    python benchmarks/tune/equal_budget.py results/published/tune/carryover-rd \
        results/published/tune/perrate-subset
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def cells(folder: Path) -> dict[tuple[str, float], optuna.Study]:
    """(quantizer, rate) -> the study of that cell in ``folder/study.db``."""
    storage = f"sqlite:///{folder / 'study.db'}"
    found = {}
    for summary in optuna.get_all_study_summaries(storage):
        attrs = summary.user_attrs
        found[(attrs["quantizer"], float(attrs["rate"]))] = optuna.load_study(study_name=summary.study_name,
                                                                                storage=storage)
    return found


def best_of_first(study: optuna.Study, n: int) -> tuple[float, int | None]:
    """The best complete value among the first ``n`` finished trials, and its trial number (nan, None: none complete)."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED][:n]
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    if not complete:
        return math.nan, None
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    best = pick(complete, key=lambda t: t.value)
    return float(best.value), best.number


def compare(first: Path, second: Path, trials: int | None = None) -> list[dict]:
    a, b = cells(first), cells(second)
    rows = []
    for key in sorted(set(a) & set(b)):
        counts = [len([t for t in s.get_trials(deepcopy=False) if t.state in FINISHED]) for s in (a[key], b[key])]
        n = min(counts) if trials is None else trials
        if n > min(counts):
            raise ValueError(f"--trials {n}: {key[0]} at {key[1]:g} bits has only {min(counts)} finished trials in one "
                             "study")
        (va, ta), (vb, tb) = best_of_first(a[key], n), best_of_first(b[key], n)
        rows.append({"quantizer": key[0], "rate": key[1], "trials": n, "first": va, "first_trial": ta,
                     "second": vb, "second_trial": tb, "difference": vb - va})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="a tune output folder holding study.db")
    parser.add_argument("second", type=Path, help="another one; the difference is second - first")
    parser.add_argument("--trials", type=int, default=None, help="compare the first N finished trials of each")
    args = parser.parse_args(argv)
    for folder in (args.first, args.second):
        if not (folder / "study.db").is_file():
            print(f"equal_budget: no study.db in {folder}", file=sys.stderr)
            return 2
    try:
        rows = compare(args.first, args.second, args.trials)
    except ValueError as exc:
        print(f"equal_budget: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print("equal_budget: the two storages share no (quantizer, rate) cell", file=sys.stderr)
        return 2
    print(f"| quantizer | rate | trials each | best, {args.first.name} (trial) | best, {args.second.name} (trial) "
          "| difference |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['quantizer']} | {r['rate']:g} | {r['trials']} | {r['first']:.2f} ({r['first_trial']}) "
              f"| {r['second']:.2f} ({r['second_trial']}) | {r['difference']:+.2f} |")
    return 0


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sys.exit(main())
