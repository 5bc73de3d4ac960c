"""benchmarks/tune/equal_budget.py: two studies of one cell compared on their first N finished trials."""

from __future__ import annotations

import importlib.util
import math

import optuna
import pytest
from conftest import ROOT
from optuna.trial import TrialState, create_trial

SCRIPT = ROOT / "benchmarks" / "tune" / "equal_budget.py"


@pytest.fixture(scope="module")
def equal_budget():
    spec = importlib.util.spec_from_file_location("equal_budget", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def storage_with(folder, name, trials):
    """A study of gsq at 6 bits holding ``trials``: (state, value) in trial order."""
    folder.mkdir()
    study = optuna.create_study(study_name=f"{name}-gsq-6bit", storage=f"sqlite:///{folder / 'study.db'}",
                                direction="maximize")
    study.set_user_attr("quantizer", "gsq")
    study.set_user_attr("rate", 6)
    for state, value in trials:
        study.add_trial(create_trial(state=state, value=value if state == TrialState.COMPLETE else None,
                                     intermediate_values={500: 20.0} if state == TrialState.PRUNED else None))
    return folder


def test_each_side_keeps_its_first_n_finished_trials(tmp_path, equal_budget):
    done, pruned, failed = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL
    first = storage_with(tmp_path / "a", "a", [(done, 24.0), (failed, None), (pruned, None), (done, 25.0),
                                               (done, 26.5)])
    second = storage_with(tmp_path / "b", "b", [(pruned, None), (done, 25.5), (done, 23.0)])
    [row] = equal_budget.compare(first, second)
    # N = 3, the second study's finished count; a's failed trial 1 does not count, so a keeps trials 0, 2 and 3
    assert row["trials"] == 3 and (row["first"], row["first_trial"]) == (25.0, 3)
    assert (row["second"], row["second_trial"]) == (25.5, 1) and row["difference"] == pytest.approx(0.5)
    [row] = equal_budget.compare(first, second, trials=1)
    assert row["first"] == 24.0 and math.isnan(row["second"]) and row["second_trial"] is None
    with pytest.raises(ValueError, match="has only 3 finished trials"):
        equal_budget.compare(first, second, trials=4)


def test_bad_input_is_one_line_and_exit_2(tmp_path, equal_budget, capsys):
    assert equal_budget.main([str(tmp_path), str(tmp_path)]) == 2
    assert "no study.db" in capsys.readouterr().err
    first = storage_with(tmp_path / "a", "a", [(TrialState.COMPLETE, 24.0)])
    assert equal_budget.main([str(first), str(first), "--trials", "2"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
