"""``qbench tune``: read the tune file, plan and check every study, run the workers, write the results.

Exit status: 0 when every study ends with its planned finished trials (or
for ``--dry-run`` and ``--report``), 1 when a study stopped at its failure
cap, 2 for a user error found before anything trains (one line each).
"""

from __future__ import annotations

import sys
from pathlib import Path

from qbench.comparison.preflight import check_run
from qbench.errors import ConfigError, ExitCode
from qbench.platform.plugins import registries
from qbench.rundir.directory import slug
from qbench.sweeps.local import available_cores, capped_jobs, threads_per_point
from qbench.sweeps.spec import check_slurm
from qbench.tuning.best import write_best
from qbench.tuning.plan import TunePlan, build_plan, probe_values
from qbench.tuning.report import write_report
from qbench.tuning.run import short_studies, tune
from qbench.tuning.spec import load_tune, with_overrides
from qbench.tuning.studies import open_studies

DEFAULT_JOBS = 2


def render_plan(plan: TunePlan, how: str) -> str:
    tune_spec = plan.tune
    steps = plan.trial_recipe({}).train.steps
    total = tune_spec.trials * len(plan.studies)
    lines = [f"tune {tune_spec.name}: {len(plan.studies)} studies (quantizer x rate), {tune_spec.trials} finished "
             f"trials each, {steps} steps a trial: at most {total} x {steps} steps, fewer where pruned",
             f"  recipe {tune_spec.recipe}, selected on the val split by the final {tune_spec.metric}; sampler "
             f"{tune_spec.sampler} (seed {tune_spec.seed}); pruner {tune_spec.pruner}",
             f"  storage {plan.storage}", f"  output {plan.out}", f"  {how}"]
    for study in plan.studies:
        space = "; ".join(f"{name} {t.describe() if name != 'layout' else f'({len(t.values)} layouts)'}"
                          for name, t in study.space.tunables().items()) or "nothing to search"
        lines.append(f"  {study.label}: {space}")
    return "\n".join(lines)


def _check_trials_run(plan: TunePlan, regs, local: bool) -> None:
    """``qbench run``'s own validation of each study's first trial recipe (data, device, metrics, output)."""
    lines, memo = [], {}
    for study in plan.studies:
        try:
            check_run([study.quantizer], plan.trial_recipe(probe_values(study.space)), regs, out_root=study.folder,
                      memo=memo, device_here=local)
        except ConfigError as exc:
            lines += [f"tune {plan.tune.path}: {study.label}: {line}" for line in str(exc).splitlines()]
    if lines:
        raise ConfigError("\n".join(dict.fromkeys(lines)))


def tune_command(path: str, *, jobs: int | None, launcher: str, out: str | None, storage: str | None,
                 overrides: list[str], slurm_options: dict, dry_run: bool, report_only: bool, progress: bool,
                 cluster: str = "slurm") -> ExitCode:
    spec = with_overrides(load_tune(path), list(overrides))
    given = {k: v for k, v in (slurm_options or {}).items() if v is not None}
    options = check_slurm({**spec.slurm, **given}, lambda message: ConfigError(f"tune {path}: {message}"))
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    jobs = jobs or DEFAULT_JOBS
    if launcher == "local":
        jobs, note = capped_jobs(jobs)
        if note:
            print(f"qbench: note: {note}", file=sys.stderr)
    regs = registries()
    plan = build_plan(spec, out or Path("results") / "tune" / slug(spec.name), regs, storage)
    threads = threads_per_point(jobs) if launcher == "local" else int(options.get("cpus_per_task") or 0)
    how = (f"--jobs {jobs}: {jobs} trials at a time, {threads} of {available_cores()} cores each"
           if launcher == "local" else f"{jobs} Slurm worker jobs sharing the storage")
    print(render_plan(plan, how), flush=True)
    if dry_run:
        return ExitCode.OK
    if report_only:
        handles = open_studies(plan, regs)
        written = write_best(plan, handles) + [write_report(plan, handles)]
        print("\n".join(f"wrote {p}" for p in written))
        short = short_studies(plan, handles)
        if short:
            print("not finished yet:\n  " + "\n  ".join(short))
        return ExitCode.OK
    _check_trials_run(plan, regs, local=launcher == "local")
    print(flush=True)
    result = tune(plan, regs, jobs=jobs, threads=threads, launcher=launcher, slurm_options=options,
                  show_progress=progress, cluster=cluster, overrides=list(overrides))
    written = result.written + [write_report(plan, result.handles)]
    print("\n".join(f"wrote {p}" for p in written))
    print(f"dashboard: optuna-dashboard {plan.storage}")
    if result.short:
        print("stopped short:\n  " + "\n  ".join(result.short))
        return ExitCode.RUN_FAILED
    return ExitCode.OK
