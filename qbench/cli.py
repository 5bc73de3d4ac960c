"""The ``qbench`` command: parses arguments, calls the library, maps errors to exit codes.

Exit status (``qbench.errors.ExitCode``): 0 success, 1 a run failed (the
others finished), 2 a user error (one line on stderr, no traceback), 130
interrupted.  ``--help``, ``list`` and ``plugins`` do
not import torch.
"""

from __future__ import annotations

import argparse
import sys

from qbench._version import __version__
from qbench.commands import data_shards, print_listing, print_plugins, report, rescore, run, sweep, weights
from qbench.errors import ConfigError, ExitCode, PluginError
from qbench.platform.plugins import KINDS
from qbench.sweeps.spec import SLURM_KEYS


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors are user errors too: one line, no usage block
        raise ConfigError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qbench", description="Train and compare image-tokenizer quantizers under one recipe.")
    parser.add_argument("--version", action="version", version=f"qbench {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list registered quantizers, backbones, metrics, datasets, recipes, weights, "
                                    "loggers")
    p.add_argument("kind", nargs="?", choices=tuple(KINDS), help="what to list (default: everything)")
    p.add_argument("--filter", default=None, metavar="PATTERN", help="fnmatch pattern on names, e.g. 'g*'")

    sub.add_parser("plugins", help="show every plugin, its distribution and version, and load errors")

    p = sub.add_parser("run", help="train and score quantizers under one recipe")
    p.add_argument("--quantizers", default=None, help="comma-separated names (default: gsq,vq,rvq,fsq)")
    p.add_argument("--recipe", default=None, help="recipe name or TOML file (default: cpu-tuned)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set train.steps=200 --set quantizers.gsq.groups=2")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the recipe's)")
    p.add_argument("--out", default=None, help="where run directories go (default: results/runs)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue an interrupted run with its own recipe, quantizer and seed")
    p.add_argument("--strict-metrics", action="store_true", help="fail before training if a metric is unavailable")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--log", default=None, metavar="NAMES",
                   help="add loggers to the recipe's train.loggers, e.g. --log tensorboard,wandb (qbench list loggers)")

    p = sub.add_parser("sweep", help="run a study: a grid of runs from a sweep file, resumable")
    p.add_argument("sweep_file", metavar="SWEEP.toml", help="the sweep file (docs/sweeps.md)")
    p.add_argument("--dry-run", action="store_true", help="list every point, its rate, status and time; run nothing")
    p.add_argument("--jobs", type=int, default=None, metavar="N", help="points at a time, local launcher (default: see docs/sweeps.md)")
    p.add_argument("--launcher", choices=("local", "slurm"), default="local", help="where points run (default: local)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: results/sweeps/NAME)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a recipe key for every point, e.g. --set train.steps=20 for a quick check")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    s = p.add_argument_group("slurm (also a [slurm] table in the sweep file; these win)")

    for key, (kind, meaning) in SLURM_KEYS.items():
        s.add_argument(f"--{key.replace('_', '-')}", dest=f"slurm_{key}", type=kind, default=None, help=meaning,
                       metavar="N" if kind is int else key.upper())

    p = sub.add_parser("tune", help="tune every quantizer with the same search budget (Optuna), selected on val")
    p.add_argument("tune_file", metavar="TUNE.toml", help="the tune file (docs/tuning.md)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="trials at a time (local) or worker jobs (slurm) (default: 2)")
    p.add_argument("--launcher", choices=("local", "slurm"), default="local", help="where trials run (default: local)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: results/tune/NAME)")
    p.add_argument("--storage", default=None, metavar="URL|FILE",
                   help="Optuna storage: a database URL or a journal file .log (default: sqlite:///OUT/study.db)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a recipe key for every trial, e.g. --set train.steps=20 for a quick check")
    p.add_argument("--dry-run", action="store_true", help="check and list every study and its space; run nothing")
    p.add_argument("--report", action="store_true",
                   help="write the best configurations and the tuning report from the storage; run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    s = p.add_argument_group("slurm (also a [slurm] table in the tune file; these win)")
    for key, (kind, meaning) in SLURM_KEYS.items():
        s.add_argument(f"--{key.replace('_', '-')}", dest=f"slurm_{key}", type=kind, default=None, help=meaning,
                       metavar="N" if kind is int else key.upper())

    p = sub.add_parser("report", help="aggregate run directories into tables and plots")
    p.add_argument("paths", nargs="*", default=["results/runs"], help="run directories or folders of them (sweep tables follow this order; default: results/runs)")
    p.add_argument("--out", default="results/report", help="output directory (default: results/report)")
    p.add_argument("--intro", default=None, metavar="FILE",
                   help="Markdown file to put above the tables (default: a plain '# qbench comparison' heading)")
    p.add_argument("--baseline", default=None, metavar="NAME",
                   help="compare every configuration with this quantizer (or configuration label): paired differences and BD")
    p.add_argument("--bd-method", default="cubic", choices=("cubic", "pchip"), help="Bjøntegaard interpolation (default: cubic)")
    p.add_argument("--fit", action="store_true", help="fit metric = a/(log2 V)^b + c*D^e to each D x V grid of the runs")
    p.add_argument("--fit-metric", default="auto", metavar="NAME",
                   help="the metric --fit models (default: rfid, else lpips, else psnr, the first with a grid)")
    p.add_argument("--studies", action="append", default=None, metavar="PATH",
                   help="sweep or study file, or a folder of them, whose [report] table declares the claims "
                        "(repeatable; default: the sweep files the runs recorded)")

    p = sub.add_parser("eval", help="re-score a finished run from its checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--metrics", default=None, help="comma-separated metric names (default: the recipe's)")

    p = sub.add_parser("data", help="prepare datasets")
    dsub = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    d = dsub.add_parser("shards", help="write an image folder as WebDataset tar shards (the webdataset dataset)")
    d.add_argument("src", metavar="SRC", help="image folder, as data.root of the imagefolder dataset")
    d.add_argument("out", metavar="OUT", help="output folder: OUT/train, OUT/val and OUT/test, shard-*.tar in each")
    d.add_argument("--size", type=int, required=True, metavar="N", help="images per shard")
    d.add_argument("--val-fraction", type=float, default=0.05, metavar="F",
                   help="share held out for val: of SRC when it has no split folders, else of SRC/train "
                        "when it has no val folder (default: 0.05)")
    d.add_argument("--test-fraction", type=float, default=0.0, metavar="F",
                   help="the same for test (default: 0: without a test folder, no test split)")
    d.add_argument("--val-folder", default="val", metavar="NAME",
                   help="SRC's folder read as val (default: val; \"\": none, val is held out of train/)")
    d.add_argument("--test-folder", default="test", metavar="NAME",
                   help="SRC's folder read as test (default: test; ImageNet: val)")

    p = sub.add_parser("weights", help="pretrained files needed by metrics and losses")
    wsub = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    wsub.add_parser("status", help="list each file, whether present and verified")
    f = wsub.add_parser("fetch", help="download missing files (needs internet)")
    f.add_argument("names", nargs="*", help="which files (default: all)")
    i = wsub.add_parser("install", help="copy a file you brought into the torch cache, checking its sha256")
    i.add_argument("file")
    return parser


def _version() -> str:
    return __version__


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def cmd_list(args) -> ExitCode:
    print_listing(args.kind, args.filter)
    return ExitCode.OK


def cmd_plugins(args) -> ExitCode:
    print_plugins()
    return ExitCode.OK


def cmd_run(args) -> ExitCode:
    return run(
        quantizers=args.quantizers,
        recipe=args.recipe,
        overrides=args.overrides,
        seed=args.seed,
        out=args.out,
        resume=args.resume,
        strict_metrics=args.strict_metrics,
        progress=not args.no_progress,
        log=_names(args.log) or [],
    )


def cmd_sweep(args) -> ExitCode:
    slurm = {k[len("slurm_"):]: v for k, v in vars(args).items() if k.startswith("slurm_")}
    return sweep(args.sweep_file, dry_run=args.dry_run, jobs=args.jobs, launcher=args.launcher, out=args.out,
                 slurm_options=slurm, progress=not args.no_progress, overrides=args.overrides)


def cmd_tune(args) -> ExitCode:
    # deferred: loads optuna only when tuning
    from qbench.tuning.command import tune_command

    slurm = {k[len("slurm_"):]: v for k, v in vars(args).items() if k.startswith("slurm_")}
    return tune_command(args.tune_file, jobs=args.jobs, launcher=args.launcher, out=args.out, storage=args.storage,
                        overrides=args.overrides, slurm_options=slurm, dry_run=args.dry_run,
                        report_only=args.report, progress=not args.no_progress)


def cmd_report(args) -> ExitCode:
    return report(args.paths, args.out, args.intro, baseline=args.baseline, fit=args.fit_metric if args.fit else None,
                  bd_method=args.bd_method, studies=args.studies)


def cmd_eval(args) -> ExitCode:
    return rescore(args.run_dir, _names(args.metrics))


def cmd_data(args) -> ExitCode:
    return data_shards(args.src, args.out, size=args.size, val_fraction=args.val_fraction,
                       test_fraction=args.test_fraction, val_folder=args.val_folder, test_folder=args.test_folder)


def cmd_weights(args) -> ExitCode:
    return weights(args.action, getattr(args, "names", None), getattr(args, "file", None))


HANDLERS = {
    "list": cmd_list,
    "plugins": cmd_plugins,
    "run": cmd_run,
    "sweep": cmd_sweep,
    "tune": cmd_tune,
    "report": cmd_report,
    "eval": cmd_eval,
    "data": cmd_data,
    "weights": cmd_weights,
}


def main(argv: list[str] | None = None) -> ExitCode:
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # argparse would blame the top-level parser; point to the subcommand's help instead
            command = " ".join(filter(None, ("qbench", args.command, getattr(args, "action", None))))
            raise ConfigError(f"unrecognized arguments: {' '.join(extra)} (see: {command} --help)")
        return HANDLERS[args.command](args)
    except (ConfigError, PluginError) as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:  # one problem per line
            print(f"qbench: error: {line}", file=sys.stderr)
        return ExitCode.USER_ERROR
    except KeyboardInterrupt:
        print("qbench: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
