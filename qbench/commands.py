"""What each CLI command does, as plain functions a library user can call too.

Listing and plugin inspection import no torch; the heavy modules are
imported inside the commands that need them.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from .config import available_recipes, load_recipe, read_toml
from .errors import ConfigError
from .plugins import KINDS, registries


def _table(rows: list[tuple[str, ...]], headings: tuple[str, ...]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headings, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headings), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, row)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def listing(kind: str | None = None, pattern: str | None = None) -> str:
    kinds = [kind] if kind else [*KINDS, "recipes"]
    regs = registries() if any(k != "recipes" for k in kinds) else None
    parts = []
    for k in kinds:
        if k == "recipes":
            rows = []
            for name, path in available_recipes().items():
                if pattern is None or fnmatch.fnmatchcase(name, pattern):
                    rows.append((name, read_toml(path).get("description", ""), str(path)))
            parts.append(f"{k}:\n" + _table(rows, ("name", "description", "file")))
        else:
            specs = regs.by_kind(k).list(pattern)
            rows = [(s.name, s.description, f"{s.origin} {s.version}".strip()) for s in specs]
            parts.append(f"{k}:\n" + _table(rows, ("name", "description", "origin")))
    return "\n\n".join(parts)


def print_listing(kind: str | None = None, pattern: str | None = None) -> None:
    print(listing(kind, pattern))


def plugins_report() -> str:
    regs = registries()
    rows = []
    for info in regs.plugins:
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.registered.items()) or "-"
        dist = f"{info.distribution} {info.version}".strip() or "-"
        rows.append((info.name, dist, info.module, what, info.error or "ok"))
    return _table(rows, ("plugin", "distribution", "module", "registers", "status"))


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
) -> int:
    regs = registries()  # built once for the whole command
    if resume:
        _check_resume_flags(quantizers, recipe, overrides, seed, out)
    else:
        # names and recipe keys first, all of them, before torch is imported
        out = out or DEFAULT_OUT
        resolved = checked_recipe(quantizers or DEFAULT_QUANTIZERS, recipe, overrides, seed, regs,
                                  strict_metrics=strict_metrics, out=out)

    from . import runner
    from .distributed import is_main_process
    from .publish import render_text
    from .report import build_report

    if resume:
        outcomes = [runner.resume_run(Path(resume), progress=progress, registries=regs, strict_metrics=strict_metrics)]
    else:
        outcomes = runner.run_comparison(
            runner.parse_quantizers(quantizers or DEFAULT_QUANTIZERS), resolved, out_root=out,
            strict_metrics=strict_metrics, progress=progress, registries=regs,
        )
    if not is_main_process():
        return 0 if all(o.status == "ok" for o in outcomes) else 1
    run_dirs = [o.run_dir for o in outcomes if o.run_dir is not None]
    if run_dirs:
        print()
        print(render_text(build_report(run_dirs)))
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
        return 1
    return 0


def _check_resume_flags(quantizers, recipe, overrides, seed, out) -> None:
    """``--resume`` continues a run exactly as it started: flags that would change it are errors, not ignored."""
    given = [flag for flag, value in (("--quantizers", quantizers), ("--recipe", recipe), ("--set", overrides),
                                      ("--seed", seed), ("--out", out)) if value not in (None, [], "")]
    if given:
        raise ConfigError(
            f"--resume continues a run with its own recipe, quantizer, seed and folder; it takes none of "
            f"{', '.join(given)} (start a new run with them instead)"
        )


def checked_recipe(quantizers: str, recipe: str | None, overrides: list[str], seed: int | None, regs, *,
                   strict_metrics: bool = False, out: str = DEFAULT_OUT):
    """The recipe of ``qbench run`` with ``--set`` and ``--seed`` applied; names and values checked first.

    Without problems this imports no torch (``run_comparison`` then makes the
    validation pass).  With problems, the whole pass runs before the error
    is raised, so that one attempt shows every problem, unless a value could
    not even be parsed: the pass would then see a default in its place and
    could report problems the user does not have.
    """
    import dataclasses

    from . import recipe_checks
    from .config import load_recipe_and_problems
    from .preflight import Problems, quantizer_name_problems

    names = [n.strip() for n in quantizers.split(",") if n.strip()]
    problems = Problems()
    for line in quantizer_name_problems(names, regs):
        problems.add(line)
    resolved, recipe_problems = load_recipe_and_problems(recipe, overrides)
    for line in recipe_problems:
        problems.add(line)
    values_are_the_users = set(recipe_problems) <= set(recipe_checks.problems(resolved))
    problems.check(check_quantizer_tables, overrides, load_recipe_and_problems(recipe)[0], regs)
    if seed is not None and not 0 <= seed <= recipe_checks.MAX_SEED:
        problems.add(f"--seed must be in 0..{recipe_checks.MAX_SEED}, got {seed}")
    elif seed is not None:
        resolved = dataclasses.replace(resolved, seed=seed)
    if problems:
        if values_are_the_users:
            from .preflight import check_run

            problems.check(check_run, names, resolved, regs, strict_metrics=strict_metrics, out_root=out)
        problems.raise_if_any()
    return resolved


def check_quantizer_tables(overrides: list[str], base_recipe, regs) -> None:
    """``--set quantizers.X.KEY=...`` must name a registered quantizer or a table of the recipe file."""
    from .errors import suggest

    for item in overrides:
        parts = item.partition("=")[0].strip().split(".")
        if parts[0] != "quantizers" or len(parts) < 2:
            continue
        name = parts[1]
        if name not in regs.quantizers and name not in base_recipe.quantizers:
            known = sorted(set(regs.quantizers.names()) | set(base_recipe.quantizers))
            raise ConfigError(
                f"--set {item.partition('=')[0].strip()}: no quantizer {name!r}{suggest(name, known)}; "
                f"known: {', '.join(known)}"
            )


def report(paths: list[str], out: str, intro: str | None = None) -> int:
    from .publish import render_text, write_report
    from .report import build_report

    intro_text = ""
    if intro:
        try:
            intro_text = Path(intro).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read --intro file {intro}: {exc.strerror}") from None
    built = build_report(paths)
    readme = write_report(built, out, intro_text)
    print(render_text(built))
    print(f"\nwritten: {readme} and {Path(out) / 'summary.csv'}")
    return 0


def rescore(run_dir: str, metrics: list[str] | None) -> int:
    from .evaluate import rescore as rescore_run

    results = rescore_run(Path(run_dir), metrics)
    for name, result in results.items():
        value = result.get("value")
        shown = f"{value:.4g}" if result.get("status") == "ok" and value is not None else f"{result.get('status')}: {result.get('reason', '')}"
        print(f"{name:12s} {shown}")
        if result.get("kept"):
            print(f"{'':12s} {result['kept']}")
    return 0


def weights(action: str, names: list[str] | None, file: str | None) -> int:
    from . import weights as w

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
    return 0
