"""What each CLI command does, as plain functions a library user can call too.

Listing and plugin inspection import no torch; the heavy modules are
imported inside the commands that need them.
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass
from pathlib import Path

from qbench import weights as w
from qbench.comparison import runner
from qbench.comparison.preflight import Problems, light_problems, quantizer_name_problems
from qbench.comparison.tracking import check_loggers, with_loggers
from qbench.engine.shards import write_shards
from qbench.errors import ConfigError, ExitCode, suggest
from qbench.platform.plugins import KINDS, Registries, registries
from qbench.recipe import checks as recipe_checks
from qbench.recipe.config import available_recipes, load_recipe_and_problems, read_toml
from qbench.report.output import check_writable
from qbench.rundir.directory import slug
from qbench.sweeps import Plan, build_plan, load_sweep
from qbench.sweeps.launch import check_points, check_ranks, check_resumable, launch
from qbench.sweeps.local import available_cores, capped_jobs, default_jobs, threads_per_point
from qbench.sweeps.render import render_plan
from qbench.sweeps.spec import check_slurm, with_overrides
from qbench.sweeps.worker import PointResult


def _table(rows: list[tuple[str, ...]], headings: tuple[str, ...]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headings, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headings), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, row)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _recipe_rows(regs: Registries, pattern: str | None) -> list[tuple[str, ...]]:
    origins = {s.name: f"{s.origin} {s.version}".strip() for s in regs.recipes.list()}
    rows = []
    for name, path in available_recipes(regs).items():
        if pattern is None or fnmatch.fnmatchcase(name, pattern):
            try:
                description = read_toml(path).get("description", "")
            except ConfigError as exc:
                description = f"(unreadable: {exc})"
            rows.append((name, description, origins.get(name, str(path))))
    return rows


def listing(kind: str | None = None, pattern: str | None = None, regs: Registries | None = None) -> str:
    regs = regs or registries()
    parts = []
    for k in [kind] if kind else list(KINDS):
        headings: tuple[str, ...] = ("name", "description", "origin")
        if k == "recipes":
            rows = _recipe_rows(regs, pattern)
        else:
            specs = regs.by_kind(k).list(pattern)
            rows = [(s.name, s.description, f"{s.origin} {s.version}".strip()) for s in specs]
            if any(s.paper for s in specs):
                rows = [(*row, s.paper or "-") for row, s in zip(rows, specs)]
                headings += ("paper",)
        parts.append(f"{k}:\n" + _table(rows, headings))
    return "\n\n".join(parts)


def load_warnings(regs: Registries) -> list[str]:
    """One line per plugin that failed to load, for commands that list or use plugins."""
    return [f"warning: plugin {p.name!r} failed to load: {p.error} (see: qbench plugins)" for p in regs.failed()]


def print_listing(kind: str | None = None, pattern: str | None = None) -> None:
    regs = registries()
    for line in load_warnings(regs):
        print(line, file=sys.stderr)
    print(listing(kind, pattern, regs))


def plugins_report() -> str:
    regs = registries(strict=False)  # a conflict must not hide the table that shows it
    rows = []
    for info in regs.plugins:
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.registered.items()) or "-"
        dist = f"{info.distribution} {info.version}".strip() or "-"
        rows.append((info.name, dist, info.module, what, info.error or "ok"))
    text = _table(rows, ("plugin", "distribution", "module", "registers", "status"))
    conflicts = regs.conflicts()
    if conflicts:
        text += "\n\nconflicts:\n" + "\n".join(f"  {line}" for line in conflicts)
    return text


def print_plugins() -> None:
    print(plugins_report())


DEFAULT_QUANTIZERS = "gsq,vq,rvq,fsq"
DEFAULT_OUT = "results/runs"


def run(
    *,
    quantizers: str | None,
    recipe: str | None,
    overrides: list[str],
    seed: int | None,
    out: str | None,
    resume: str | None,
    strict_metrics: bool,
    progress: bool,
    log: list[str] | None = None,
) -> ExitCode:
    regs = registries()  # built once for the whole command
    if resume:
        _check_resume_flags(quantizers, recipe, overrides, seed, out)
    else:
        # names, recipe keys and loggers first, all of them, before torch is imported
        out = out or DEFAULT_OUT
        resolved = checked_recipe(DEFAULT_QUANTIZERS if quantizers is None else quantizers, recipe, overrides, seed, regs,
                                  strict_metrics=strict_metrics, out=out, log=log)

    # deferred: loads torch and pandas only when this runs
    from qbench.engine.distributed import is_main_process
    from qbench.report.publish import render_text
    from qbench.report.tables import build_report

    if resume:
        outcomes = [runner.resume_run(Path(resume), progress=progress, regs=regs, loggers=log,
                                      strict_metrics=strict_metrics)]
    else:
        outcomes = runner.run_comparison(
            runner.parse_quantizers(DEFAULT_QUANTIZERS if quantizers is None else quantizers), resolved, out_root=out,
            strict_metrics=strict_metrics, progress=progress, regs=regs,
        )
    if not is_main_process():
        return ExitCode.OK if all(o.status == "ok" for o in outcomes) else ExitCode.RUN_FAILED
    run_dirs = [o.run_dir for o in outcomes if o.run_dir is not None]
    if run_dirs:
        print()
        print(render_text(build_report(run_dirs)))
        note = "" if resume else resolved.note
        if note:
            print()
            print(f"note: {note}")
        print()
        print("run directories:")
        for o in outcomes:
            print(f"  {o.quantizer}: {o.run_dir} ({o.status}{': ' + o.reason if o.reason else ''})")
            if o.note:
                print(f"    {o.note}")
        # the folder that holds this command's runs: the resumed run itself, or --out
        print(f"tables and plots: qbench report {resume or out or DEFAULT_OUT} --out results/report")
    failed = [o for o in outcomes if o.status != "ok"]
    if failed:
        print(f"{len(failed)} of {len(outcomes)} runs failed: " + ", ".join(f"{o.quantizer} ({o.reason})" for o in failed))
        return ExitCode.RUN_FAILED
    return ExitCode.OK


def _check_resume_flags(quantizers, recipe, overrides, seed, out) -> None:
    """``--resume`` continues a run exactly as it started: flags that would change it are errors, not ignored."""
    given = [flag for flag, value in (("--quantizers", quantizers), ("--recipe", recipe), ("--set", overrides),
                                      ("--seed", seed), ("--out", out)) if value not in (None, [], "")]
    if given:
        raise ConfigError(
            f"--resume continues a run with its own recipe, quantizer, seed and folder; it takes none of "
            f"{', '.join(given)} (start a new run with them instead)"
        )


def checked_recipe(quantizers: str, recipe: str | None, overrides: list[str], seed: int | None, regs: Registries, *,
                   strict_metrics: bool = False, out: str = DEFAULT_OUT, log: list[str] | None = None):
    """The recipe of ``qbench run`` with ``--set``, ``--seed`` and ``--log`` applied; names and values checked first.

    This imports no torch.  Without problems ``run_comparison`` then makes the
    validation pass.  With problems, they are raised together with every
    other problem found without torch (``light_problems``: metric names and
    options' metric names, the output folder), in well under the seconds
    the full pass would take; unless a value could not even be parsed: the
    light checks would then see a default in its place.
    """
    import dataclasses

    names = [n.strip() for n in quantizers.split(",") if n.strip()]
    problems = Problems()
    for line in quantizer_name_problems(names, regs):
        problems.add(line)
    resolved, recipe_problems = load_recipe_and_problems(recipe, overrides, regs)
    for line in recipe_problems:
        problems.add(line)
    values_are_the_users = set(recipe_problems) <= set(recipe_checks.problems(resolved))
    resolved = with_loggers(resolved, log or [])
    problems.check(check_loggers, resolved, regs)
    problems.check(check_quantizer_tables, overrides, load_recipe_and_problems(recipe, regs=regs)[0], regs)
    if seed is not None and not 0 <= seed <= recipe_checks.MAX_SEED:
        problems.add(f"--seed must be in 0..{recipe_checks.MAX_SEED}, got {seed}")
    elif seed is not None:
        resolved = dataclasses.replace(resolved, seed=seed)
    if problems:
        # a configuration error is reported at once, before torch is imported: with it go the other
        # problems found without torch; those that need the plugins built come on the next attempt
        if values_are_the_users:
            for line in light_problems(resolved, regs, out):
                problems.add(line)
        problems.raise_if_any()
    return resolved


def check_quantizer_tables(overrides: list[str], base_recipe, regs: Registries) -> None:
    """``--set quantizers.X.KEY=...`` must name a registered quantizer or a table of the recipe file."""

    for item in overrides:
        parts = item.partition("=")[0].strip().split(".")
        if parts[0] != "quantizers" or len(parts) < 2:
            continue
        name = parts[1]
        if name not in regs.quantizers and name not in base_recipe.quantizers:
            known = sorted(set(regs.quantizers.names()) | set(base_recipe.quantizers))
            raise ConfigError(  # said alike to `--set` on the command line and `overrides=` in Python
                f"{item.partition('=')[0].strip()}: no quantizer {name!r}{suggest(name, known)}; "
                f"known: {', '.join(known)}"
            )


def report(paths: list[str], out: str, intro: str | None = None, *, baseline: str | None = None,
           fit: str | None = None, bd_method: str = "cubic", studies: list[str] | None = None) -> ExitCode:
    # deferred: loads pandas and numpy only when this runs
    from qbench.report.publish import render_text, write_report
    from qbench.report.tables import build_report

    intro_text = ""
    if intro:
        try:
            intro_text = Path(intro).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read --intro file {intro}: {exc.strerror}") from None

    check_writable(Path(out))  # before the work of building the report
    built = build_report(paths, baseline=baseline, fit=fit, bd_method=bd_method, studies=studies)
    readme = write_report(built, out, intro_text)
    print(render_text(built))
    written = f"{readme}, {Path(out) / 'summary.csv'} and {Path(out) / 'claims.csv'}" if built.runs is not None else str(readme)
    print(f"\nwritten: {written}")
    return ExitCode.OK


def rescore(run_dir: str, metrics: list[str] | None) -> ExitCode:
    # deferred: loads torch only when this runs
    from qbench.engine.evaluate import rescore as rescore_run

    results = rescore_run(Path(run_dir), metrics)
    for name, result in results.items():
        value = result.get("value")
        shown = f"{value:.4g}" if result.get("status") == "ok" and value is not None else f"{result.get('status')}: {result.get('reason', '')}"
        print(f"{name:12s} {shown}")
        if result.get("kept"):
            print(f"{'':12s} {result['kept']}")
    return ExitCode.OK


def weights(action: str, names: list[str] | None, file: str | None) -> ExitCode:
    if action == "status":
        rows = [
            (r["name"], r.get("used_by", ""), "yes" if r["present"] else "no",
             r.get("check", ""), r.get("sha256", "")[:16], str(r["path"]))
            for r in w.status()
        ]
        print(_table(rows, ("file", "used by", "present", "check", "sha256", "path")))
    elif action == "fetch":
        w.fetch(names or None)
    elif action == "install":
        print(f"installed: {w.install(Path(file))}")
    return ExitCode.OK


@dataclass
class SweepOutcome:
    """What ``qbench sweep`` did: the checked plan, and one result per point it ran (none for a dry run)."""

    plan: Plan
    results: list[PointResult]

    @property
    def out(self) -> Path:
        return self.plan.out

    @property
    def failed(self) -> list[PointResult]:
        return [r for r in self.results if r.status == "failed"]


def run_sweep(path: str | Path, *, dry_run: bool = False, jobs: int | None = None, launcher: str = "local",
              out: str | Path | None = None, slurm_options: dict | None = None, progress: bool = True,
              overrides: list[str] = (), cluster: str = "slurm", poll_s: float | None = None) -> SweepOutcome:
    """Plan every point (``ConfigError`` on the first problem), print the plan, check every pending point as
    ``qbench run`` would (``ConfigError`` with every problem; a dry run stops here), run what is not done.

    ``poll_s``: how often a Slurm sweep looks at its jobs (default ``qbench.sweeps.slurm.POLL_S``).
    """

    spec = with_overrides(load_sweep(str(path)), list(overrides))
    given = {k: v for k, v in (slurm_options or {}).items() if v is not None}
    options = check_slurm({**spec.slurm, **given}, lambda message: ConfigError(f"sweep {path}: {message}"))
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    jobs = jobs or default_jobs()
    if launcher == "local":
        jobs, note = capped_jobs(jobs)
        if note:
            print(f"qbench: note: {note}", file=sys.stderr)
    out_dir = str(out) if out else str(Path("results") / "sweeps" / slug(spec.name))
    regs = registries()
    plan = build_plan(spec, out_dir, regs)
    if launcher == "local":
        how = f"with --jobs {jobs} ({threads_per_point(jobs)} of {available_cores()} cores each)"
        parallel = jobs
    else:
        ranks = check_ranks(plan, options, cluster)  # an impossible request stops here, before submitting
        parallel = int(options.get("array_parallelism") or max(1, len(plan.pending())))
        how = f"with {parallel} Slurm jobs at a time" + (f", {ranks} ranks each" if ranks > 1 else "")
    check_resumable(plan, 1 if launcher == "local" else ranks)  # another world size: refused, never retrained
    print(render_plan(plan, parallel, how), flush=True)
    if not plan.pending():
        return SweepOutcome(plan, [])
    # the dry run too: a plan it passes must be one the real run accepts (seed range, image size, data, ...)
    check_points(plan, regs, local=launcher == "local", ranks=1 if launcher == "local" else ranks)
    if dry_run:
        return SweepOutcome(plan, [])
    print(flush=True)
    return SweepOutcome(plan, launch(plan, launcher=launcher, jobs=jobs, slurm_options=options, show_progress=progress,
                                     cluster=cluster, poll_s=poll_s))


def sweep(path: str, *, dry_run: bool, jobs: int | None, launcher: str, out: str | None,
          slurm_options: dict, progress: bool, overrides: list[str] = (), cluster: str = "slurm",
          poll_s: float | None = None) -> ExitCode:
    """``qbench sweep``: plan every point (exit 2 on the first problem), list them, run what is not done."""

    outcome = run_sweep(path, dry_run=dry_run, jobs=jobs, launcher=launcher, out=out, slurm_options=slurm_options,
                        progress=progress, overrides=overrides, cluster=cluster, poll_s=poll_s)
    plan, results = outcome.plan, outcome.results
    if not results:
        return ExitCode.OK
    failed = outcome.failed
    counts = {status: sum(r.status == status for r in results) for status in ("ok", "failed", "skipped", "busy")}
    print(f"\nsweep {plan.spec.name}: {counts['ok']} points ran, {counts['failed']} failed; "
          f"{plan.counts.get('done', 0) + counts['skipped']} were done already"
          + (f"; {plan.counts.get('running', 0) + counts['busy']} run in another process"
             if plan.counts.get("running", 0) + counts["busy"] else ""))
    for r in failed:
        label = next(p.label for p in plan.points if p.index == r.index)
        print(f"  failed: point {r.index} ({label}): {r.reason}" + (f" [{r.run_dir}]" if r.run_dir else ""))
    for r in results:
        if r.restarted:
            label = next(p.label for p in plan.points if p.index == r.index)
            old, _, why = r.restarted.partition(": ")
            print(f"  restarted: point {r.index} ({label}) could not resume {old} ({why}); trained afresh"
                  + (f" in {r.run_dir}" if r.run_dir else ""))
    print(f"tables and plots: qbench report {outcome.out} --out {Path(outcome.out) / 'report'}")
    return ExitCode.RUN_FAILED if failed else ExitCode.OK


def data_shards(src: str, out: str, *, size: int, val_fraction: float = 0.05, test_fraction: float = 0.0,
                val_folder: str = "val", test_folder: str = "test") -> ExitCode:
    """``qbench data shards``: write SRC's images as WebDataset shards under OUT/train, OUT/val and OUT/test."""
    written = write_shards(src, out, size=size, val_fraction=val_fraction, test_fraction=test_fraction,
                           val_folder=val_folder, test_folder=test_folder)
    for split, (images, shards) in written.items():
        last = f"{shards - 1:06d}"
        print(f"{split}: {images} images in {shards} shard(s): {Path(out) / split}/shard-{{000000..{last}}}.tar")
    for split, folder, share in (("val", val_folder, val_fraction), ("test", test_folder, test_fraction)):
        if split not in written:
            print(f"{split}: none (SRC has no {folder or split}/ folder, and --{split}-fraction {share:g} "
                  "held out no image)")
    print(f"use them with: --set data.dataset=webdataset --set data.root={out}")
    return ExitCode.OK
