"""A tuning study's cost from its storage: hours, busy wall time (union of intervals), steps."""

from __future__ import annotations

from datetime import datetime, timedelta

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from qbench.tuning.cost import cost_lines, cost_of

T0 = datetime(2026, 1, 1, 12, 0, 0)


def add(study, state, start_min, minutes, *, value=1.0, steps=(), stale=False):
    trial = create_trial(state=state, value=value if state == TrialState.COMPLETE else None,
                         params={"lr": 0.01}, distributions={"lr": FloatDistribution(1e-3, 1e-1, log=True)},
                         intermediate_values={s: 0.5 for s in steps}, user_attrs={"stale": True} if stale else {})
    trial.datetime_start = T0 + timedelta(minutes=start_min)
    trial.datetime_complete = trial.datetime_start + timedelta(minutes=minutes)
    study.add_trial(trial)


def test_hours_busy_time_and_steps_against_a_hand_count():
    a = optuna.create_study(direction="maximize")
    b = optuna.create_study(direction="maximize")
    add(a, TrialState.COMPLETE, 0, 30, steps=(250, 500, 750))
    add(b, TrialState.COMPLETE, 10, 30, steps=(250, 500, 750))  # overlaps a's first: busy 0-40
    add(a, TrialState.PRUNED, 60, 15, steps=(250, 500))  # a gap of 20 min, then 60-75
    add(b, TrialState.FAIL, 70, 10)  # a real failure: timed, busy to 80
    add(a, TrialState.FAIL, 200, 600, stale=True)  # noticed late: counted, not timed
    cost = cost_of({"a": a, "b": b}, steps_per_trial=1000)
    assert (cost.finished, cost.complete, cost.pruned, cost.failed) == (3, 2, 1, 2)
    assert cost.trial_hours == pytest.approx((30 + 30 + 15 + 10) / 60)
    assert cost.busy_hours == pytest.approx((40 + 20) / 60)
    assert cost.steps == 2500 and cost.full_length_trials == pytest.approx(2.5)
    text = cost_lines(cost)[2]
    assert "3 finished trials (2 complete, 1 pruned) and 2 failed" in text and "1.42 trial-hours" in text


def test_an_empty_study_costs_nothing():
    cost = cost_of({"a": optuna.create_study()}, steps_per_trial=100)
    assert (cost.finished, cost.trial_hours, cost.busy_hours, cost.steps) == (0, 0.0, 0.0, 0)


def test_the_report_names_a_storage_below_the_working_folder_relatively(tmp_path, monkeypatch):
    from qbench.tuning.report import shown_storage

    monkeypatch.chdir(tmp_path)
    assert shown_storage(f"sqlite:///{tmp_path}/results/tune/x/study.db") == "sqlite:///results/tune/x/study.db"
    assert shown_storage(f"{tmp_path}/j.journal") == "j.journal"
    assert shown_storage("sqlite:////elsewhere/study.db") == "sqlite:////elsewhere/study.db"
    assert shown_storage("postgresql://host/db") == "postgresql://host/db"
