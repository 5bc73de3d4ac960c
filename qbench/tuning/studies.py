"""The Optuna side: storage, samplers, pruners, studies and their trial counts.

Storage: a database URL (``sqlite:///OUT/study.db`` by default; any
SQLAlchemy URL such as ``postgresql://...`` for many machines) or a journal
file (a path ending ``.log`` or ``.journal``: Optuna's ``JournalStorage``,
safe on a shared file system where SQLite is not).  Each (quantizer, rate)
study records its plan in its user attributes (quantizer, rate, planned
trials, metric, tune file, recipe), so ``optuna.load_study`` and
``optuna-dashboard`` show what it was for.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from qbench.errors import ConfigError
from qbench.platform.plugins import Registries
from qbench.tuning.plan import Study, TunePlan

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts toward the planned trials
ACTIVE = (TrialState.RUNNING, TrialState.WAITING)
JOURNAL_SUFFIXES = (".log", ".journal")
SQLITE_TIMEOUT_S = 120  # several workers write one SQLite file: wait for the lock rather than fail

optuna.logging.set_verbosity(optuna.logging.WARNING)  # qbench prints its own progress


def open_storage(ref: str) -> optuna.storages.BaseStorage:
    """A storage from a database URL or a journal file path; ``ConfigError`` for anything else."""
    if "://" in ref:
        kwargs = {}
        if ref.startswith("sqlite:///"):
            Path(ref[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
        try:
            return optuna.storages.RDBStorage(ref, engine_kwargs=kwargs)
        except ImportError as exc:  # a database driver that is not installed
            raise ConfigError(f"storage {ref}: {exc}") from None
        except Exception as exc:  # noqa: BLE001  SQLAlchemy's many ways of refusing a URL
            raise ConfigError(f"storage {ref} cannot be opened: {type(exc).__name__}: {exc}") from None
    if ref.endswith(JOURNAL_SUFFIXES):
        Path(ref).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(ref))
    raise ConfigError(f"storage {ref!r} must be a database URL (sqlite:///study.db, postgresql://...) "
                      f"or a journal file ending {' or '.join(JOURNAL_SUFFIXES)}")


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    if kind == "qmc":
        with warnings.catch_warnings():  # "experimental since 3.0": its interface, not its sequence
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                              warn_independent_sampling=False)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(options: dict, total_steps: int) -> optuna.pruners.BasePruner:
    kind = options["kind"]
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=options.get("startup_trials", 4),
                                           n_warmup_steps=options.get("warmup_steps", 0))
    if kind == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=options.get("min_steps", "auto"),
                                                      reduction_factor=options.get("reduction_factor", 3))
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=options.get("min_steps", 1), max_resource=total_steps,
                                              reduction_factor=options.get("reduction_factor", 3))
    return optuna.pruners.NopPruner()


def open_study(plan: TunePlan, study: Study, storage, direction: str) -> optuna.Study:
    """Create or load ``study`` in ``storage``, with its sampler and pruner; its plan in its user attributes."""
    steps = plan.trial_recipe({}).train.steps
    handle = optuna.create_study(study_name=study.name, storage=storage, direction=direction, load_if_exists=True,
                                 sampler=make_sampler(plan.tune.sampler, plan.tune.seed),
                                 pruner=make_pruner(plan.tune.pruner, steps))
    attrs = {"quantizer": study.quantizer, "rate": study.rate, "trials": plan.tune.trials,
             "metric": f"{plan.tune.metric} on val", "tune_file": plan.tune.path, "recipe": plan.tune.recipe,
             "sampler": plan.tune.sampler, "pruner": dict(plan.tune.pruner), "steps_per_trial": steps,
             "space": {name: t.describe() for name, t in study.space.tunables().items()}}
    for key, value in attrs.items():
        if handle.user_attrs.get(key) != value:
            handle.set_user_attr(key, value)
    return handle


def trials_in(handle: optuna.Study, states=None) -> list[FrozenTrial]:
    return handle.get_trials(deepcopy=False, states=states)


def counts(handle: optuna.Study) -> dict[str, int]:
    """Trials by state name (COMPLETE, PRUNED, FAIL, RUNNING, WAITING)."""
    found: dict[str, int] = {}
    for trial in trials_in(handle):
        found[trial.state.name] = found.get(trial.state.name, 0) + 1
    return found


def finished(handle: optuna.Study) -> int:
    return len(trials_in(handle, FINISHED))


def best_trial(handle: optuna.Study) -> FrozenTrial | None:
    """The best complete trial (pruned trials never win: they did not train the whole budget)."""
    complete = trials_in(handle, (TrialState.COMPLETE,))
    if not complete:
        return None
    pick = max if handle.direction == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(complete, key=lambda t: (t.value, -t.number) if pick is max else (t.value, t.number))


def direction(plan: TunePlan, regs: Registries) -> str:
    spec = regs.metrics.get(plan.tune.metric)
    return "minimize" if spec.higher_is_better is False else "maximize"


def open_studies(plan: TunePlan, regs: Registries) -> dict[str, optuna.Study]:
    """Every study of ``plan``, created or loaded, by name (shared by ``qbench tune``, its workers and the report)."""
    storage = open_storage(plan.storage)
    way = direction(plan, regs)
    return {study.name: open_study(plan, study, storage, way) for study in plan.studies}
