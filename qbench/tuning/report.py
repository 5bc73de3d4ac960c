"""The tuning report: per study the chosen options, trials by state, the spread of results, importance, a plot.

Written by ``qbench tune --report`` (and at the end of every ``qbench tune``)
to ``OUT/report/``: ``README.md`` and one PNG per study plotting the
validation score of every trial against each of its most important
parameters (pruned trials at their last held-out value, hollow).
Importance is Optuna's PED-ANOVA evaluator (``PedAnovaImportanceEvaluator``:
no scikit-learn needed; fANOVA when scikit-learn is installed is not used,
so that the report does not depend on what happens to be installed); it needs
a few complete trials and says so when there are too few.
"""

from __future__ import annotations

import math
import statistics
import warnings
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from qbench import atomic
from qbench.search_space import Choice, FloatRange
from qbench.tuning.best import best_of
from qbench.tuning.cost import cost_lines, cost_of
from qbench.tuning.plan import SELECTION_SPLIT, Study, TunePlan
from qbench.tuning.space import LAYOUT
from qbench.tuning.studies import trials_in

REPORT_FOLDER = "report"
PLOTTED_PARAMS = 4


def shown_storage(ref: str) -> str:
    """A SQLite or journal storage below the working folder as a relative path: a report names no machine path."""
    prefix = "sqlite:///" if ref.startswith("sqlite:///") else ""
    path = Path(ref[len(prefix):])
    if (prefix or "://" not in ref) and path.is_absolute():
        try:
            return prefix + str(path.relative_to(Path.cwd().resolve()))
        except ValueError:
            pass
    return ref


def importances(handle: optuna.Study) -> dict[str, float]:
    """Parameter -> importance (PED-ANOVA), empty when the study has too few complete trials to say."""
    complete = trials_in(handle, (TrialState.COMPLETE,))
    if len(complete) < 4 or not complete[0].params:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            return dict(optuna.importance.get_param_importances(handle, evaluator=evaluator))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) < 4:
        return f"{min(values):.3g} to {max(values):.3g}"
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"{min(values):.3g} / {q1:.3g} / {q2:.3g} / {q3:.3g} / {max(values):.3g}"


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def plot_study(study: Study, handle: optuna.Study, params: list[str], path: Path) -> Path | None:
    """The score of every complete (filled) and pruned (hollow) trial against each of ``params``."""
    trials = [t for t in trials_in(handle, (TrialState.COMPLETE, TrialState.PRUNED)) if t.value is not None]
    if not trials or not params:
        return None
    # deferred: loads matplotlib only when a report is drawn
    import matplotlib

    matplotlib.use("Agg")
    # deferred: loads matplotlib only when a report is drawn
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    tunables = study.space.tunables()
    fig, axes = plt.subplots(1, len(params), figsize=(3.2 * len(params), 3.0), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], params):
        tunable = tunables.get(name)
        for state, face in ((TrialState.COMPLETE, "C0"), (TrialState.PRUNED, "none")):
            picked = [t for t in trials if t.state == state and name in t.params]
            if isinstance(tunable, Choice):
                labels = [str(v) for v in tunable.values] if name != LAYOUT else list(tunable.values)
                xs = [labels.index(str(t.params[name])) if str(t.params[name]) in labels else math.nan for t in picked]
                ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=6)
            else:
                xs = [t.params[name] for t in picked]
                if isinstance(tunable, FloatRange) and tunable.log:
                    ax.set_xscale("log")
                    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels overlap
            ax.scatter(xs, [t.value for t in picked], facecolors=face, edgecolors="C0", s=18,
                       label=state.name.lower())
        ax.set_xlabel(name, fontsize=8)
    axes[0][0].set_ylabel(f"{handle.user_attrs.get('metric', 'score')}")
    axes[0][0].legend(fontsize=6)
    fig.suptitle(study.label, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _fail_lines(trials: list[FrozenTrial]) -> list[str]:
    return [f"  - trial {t.number}: {t.user_attrs.get('fail_reason', 'no reason recorded')}"
            for t in trials if t.state == TrialState.FAIL]


def study_section(plan: TunePlan, study: Study, handle: optuna.Study, best, folder: Path) -> list[str]:
    trials = trials_in(handle)
    by_state = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    complete = [t.value for t in trials if t.state == TrialState.COMPLETE]
    lines = [f"## {study.label}", "",
             f"Study `{study.name}`: {by_state['COMPLETE'] + by_state['PRUNED']}/{plan.tune.trials} finished "
             f"({by_state['COMPLETE']} complete, {by_state['PRUNED']} pruned), {by_state['FAIL']} failed, "
             f"{by_state['RUNNING'] + by_state['WAITING']} active.", ""]
    if best is not None:
        chosen = ", ".join(f"`{k}` = {_shown(v)}" for k, v in best.values.items()) or "the recipe's options"
        lines += [f"Chosen (trial {best.trial.number}, {plan.tune.metric} {best.trial.value:.4g} on "
                  f"{SELECTION_SPLIT}): {chosen}.", ""]
    lines += [f"Complete trials' {plan.tune.metric} (min / quartiles / max): {_spread(complete)}.", ""]
    weights = importances(handle)
    if weights:
        lines += ["Importance (PED-ANOVA): " + ", ".join(f"`{k}` {v:.2f}" for k, v in weights.items()) + ".", ""]
    else:
        lines += ["Importance: too few complete trials to estimate.", ""]
    params = list(weights)[:PLOTTED_PARAMS] or list(study.space.tunables())[:PLOTTED_PARAMS]
    picture = plot_study(study, handle, params, folder / f"{study.quantizer}-{study.rate:g}bit.png")
    if picture is not None:
        lines += [f"![{study.label}]({picture.name})", ""]
    failures = _fail_lines(trials)
    if failures:
        lines += ["Failed trials:", *failures, ""]
    return lines


def write_report(plan: TunePlan, handles) -> Path:
    """``OUT/report/README.md`` and its plots; the README's path."""
    folder = plan.out / REPORT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    tune = plan.tune
    bests = {b.study.name: b for b in best_of(plan, handles)}
    lines = [f"# Tuning study {tune.name}", "",
             f"Tune file `{tune.path}`, recipe `{tune.recipe}`; {tune.trials} finished trials (complete or pruned) "
             f"per quantizer and rate; objective: final {tune.metric} on the {SELECTION_SPLIT} split; sampler "
             f"{tune.sampler} (seed {tune.seed}); pruner {tune.pruner}; storage `{shown_storage(plan.storage)}`.", "",
             "| quantizer | rate | complete | pruned | failed | best | spread of complete | chosen |",
             "|---|---|---|---|---|---|---|---|"]
    for study in plan.studies:
        trials = trials_in(handles[study.name])
        n = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        best = bests.get(study.name)
        chosen = ", ".join(f"{k.split('.')[-1]}={_shown(v)}" for k, v in best.values.items()) if best else "-"
        complete = [t.value for t in trials if t.state == TrialState.COMPLETE]
        lines.append(f"| {study.quantizer} | {study.rate:g} | {n[TrialState.COMPLETE]} | {n[TrialState.PRUNED]} | "
                     f"{n[TrialState.FAIL]} | {best.trial.value:.4g} | " if best else
                     f"| {study.quantizer} | {study.rate:g} | {n[TrialState.COMPLETE]} | {n[TrialState.PRUNED]} | "
                     f"{n[TrialState.FAIL]} | - | ")
        lines[-1] += f"{_spread(complete)} | {chosen} |"
    lines.append("")
    lines += cost_lines(cost_of({s.name: handles[s.name] for s in plan.studies}, plan.trial_recipe({}).train.steps))
    for study in plan.studies:
        lines += study_section(plan, study, handles[study.name], bests.get(study.name), folder)
    path = folder / "README.md"
    atomic.write_text(path, "\n".join(lines))
    return path
