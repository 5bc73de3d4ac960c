"""The docs, run as written: README.md's and docs/*.md's commands and snippets, so they cannot drift.

Every fenced block of the README and of docs/*.md is classified:

- shell blocks (```bash``` or unlabelled): each command line (``qbench ...``,
  ``python ...``, ``pip ...``; backslash continuations joined, ``# ...``
  comments dropped) either runs here or matches one rule of ``SKIP``, which
  says why not (network, GPUs, a cluster, minutes of training, a server that
  never exits, data that is not in the repository).  A command written as
  ``$ COMMAND`` is followed by the output it prints: that output is checked.
- Python blocks: each page's blocks run in order in one namespace, as cells
  of a notebook; a ``test_*`` function a block defines is called.
- TOML blocks parse, and a complete sweep file among them loads as one.

Commands and snippets run in a temporary folder that links the repository's
``benchmarks/``, ``examples/`` and committed ``results/`` entries, with the
example plugin of docs/plugins.md installed, and ``qbench`` commands run
through ``qbench.cli.main`` in this process (one torch import for all).
Below them, the reference facts the docs state are checked against the code:
the recipe list, the default ladder's table, the weights tables, the helper
signatures and the command-line flags.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib
from conftest import ROOT, install_example_plugin

import qbench

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGRAMS = {"qbench", "python", "python3", "pip", "torchrun", "tensorboard", "mlflow", "optuna-dashboard", "wandb",
            "time", "."}
TIME_LIMIT_S = 120  # a command the docs call quick that takes longer fails here instead of hanging the suite

# (pattern on the command, why it does not run here); every rule must still match a command of the docs
SKIP = [
    (r"^(python3 -m venv|\. \.venv|pip install)", "installs packages (network, minutes); CI runs the README's "
                                                  "set-up commands verbatim (tests/test_readme.py)"),
    (r"^torchrun", "several processes, and GPUs for the paper recipes; tests/test_distributed.py runs the DDP path"),
    (r"^(tensorboard|mlflow ui|optuna-dashboard)", "starts a server that runs until it is stopped"),
    (r"^qbench weights fetch", "downloads the weights (network)"),
    (r"check_gpu\.py", "needs an NVIDIA GPU (benchmarks/gpu/check_gpu.py --cpu-smoke is tested)"),
    (r"/data/", "needs ImageNet on disk"),
    (r"--launcher slurm", "needs a Slurm cluster; tests/test_sweep.py runs the launcher through submitit's local "
                          "executor, tests/test_slurm_cluster.py on a real one-node Slurm"),
    (r"slurm_cluster\.py", "starts or stops a one-node Slurm (root and the Slurm packages); "
                           "tests/test_slurm_cluster.py does"),
    (r"^qbench run(?!.*--recipe smoke)(?!.*--resume)", "trains cpu-tuned or a paper recipe (minutes); the smoke "
                                                       "recipe's commands run"),
    (r"--resume \S*\.\.\.", "a placeholder run directory"),
    (r"^(time )?qbench sweep (?!.*--dry-run)", "trains every point of a study (up to an hour)"),
    (r"^qbench tune (?!.*--dry-run)(?!.*--report)", "runs every trial of the tuning studies (hours)"),
    (r"^qbench tune .*--report", "needs the studies' storage, written by the tuning above (not committed)"),
    (r"^qbench report results/sweeps/", "needs the study's runs, written by the sweep above (not committed)"),
    (r"compare_in_python\.py", "run by tests/test_python_api.py::test_the_notebook_example_runs_and_plots"),
]
# Python blocks that do not run here: (page, text in the block, why)
SKIP_PYTHON = [
    ("python-api.md", 'qbench.sweep("my-sweep.toml"', "a sweep file of the reader's own, and it trains every point"),
]


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Command:
    block: Block
    text: str
    expected: list[str] = field(default_factory=list)  # output lines shown after a `$ COMMAND`

    @property
    def skip_reason(self) -> str | None:
        return next((why for pattern, why in SKIP if re.search(pattern, self.text)), None)


def blocks(pages=PAGES) -> list[Block]:
    found = []
    for page in pages:
        text = page.read_text()
        for m in re.finditer(r"^( *)```(\w*)\n(.*?)^\1```", text, re.S | re.M):
            body = "\n".join(line[len(m.group(1)):] for line in m.group(3).splitlines())
            found.append(Block(page, text[: m.start()].count("\n") + 1, m.group(2), body))
    return found


def commands(all_blocks: list[Block]) -> list[Command]:
    found: list[Command] = []
    for block in all_blocks:
        if block.lang not in ("", "bash", "sh"):
            continue
        lines = re.sub(r"\\\n\s*", " ", block.text).splitlines()
        current = None
        for line in lines:
            prompt = line.startswith("$ ")
            stripped = line[2:] if prompt else line
            first = stripped.split(" ", 1)[0]
            if first in PROGRAMS:
                command = re.sub(r"\s+#.*$", "", stripped).strip()
                current = Command(block, command)
                found.append(current)
                if not prompt:
                    current = None  # only a `$ COMMAND` shows its output below it
            elif current is not None and line.strip():
                current.expected.append(line.strip())
    return found


ALL_BLOCKS = blocks()
COMMANDS = commands(ALL_BLOCKS)
RUNNABLE = [c for c in COMMANDS if c.skip_reason is None]


def test_every_command_runs_or_is_skipped_for_a_reason_that_still_applies():
    assert len(COMMANDS) > 30 and len(RUNNABLE) >= 5
    for pattern, why in SKIP:
        assert any(re.search(pattern, c.text) for c in COMMANDS), f"the skip rule {pattern!r} ({why}) matches nothing"
    for page, text, why in SKIP_PYTHON:
        assert any(b.page.name == page and text in b.text for b in ALL_BLOCKS), f"{page}: {text!r} ({why}) is gone"
    # what the docs promise runs in seconds is among what runs
    ran = {c.text for c in RUNNABLE}
    assert "qbench run --recipe smoke --quantizers gsq" in ran
    assert "qbench sweep benchmarks/sweeps/rd-cpu.toml --dry-run" in ran


@pytest.fixture
def docs_folder(tmp_path, monkeypatch, site):
    """A temporary working folder that looks like the repository's root to the docs' commands."""
    install_example_plugin(site)
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    for name in ("benchmarks", "examples"):
        (work / name).symlink_to(ROOT / name)
    for entry in (ROOT / "results").iterdir():  # committed results; what commands write stays in the temp folder
        if entry.name not in ("runs", "sweeps", "report", "notebook"):
            (work / "results" / entry.name).symlink_to(entry)
    monkeypatch.chdir(work)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # the same result whatever weights this machine has
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and much faster on a busy machine
    yield work
    torch.set_num_threads(threads)


def run_command(command: str) -> tuple[int, str]:
    """Exit status and output (stdout and stderr) of one command, as a shell would run it here."""
    argv = shlex.split(command)
    if argv[0] == "qbench":
        from qbench import cli

        def too_long(signum, frame):
            raise TimeoutError(f"{command} ran past {TIME_LIMIT_S} s: skip it with a reason, or make it quick")

        out, err = io.StringIO(), io.StringIO()
        previous = signal.signal(signal.SIGALRM, too_long)
        signal.alarm(TIME_LIMIT_S)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = cli.main(argv[1:])
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        return int(status), out.getvalue() + err.getvalue()
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIME_LIMIT_S, env=os.environ.copy())
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("command", RUNNABLE, ids=[f"{c.block.where}: {c.text}" for c in RUNNABLE])
def test_the_docs_commands_run_as_written(docs_folder, command):
    status, output = run_command(command.text)
    if command.expected:
        shown = [line for line in command.expected if line.startswith("qbench: error:")]
        assert status == (2 if shown else 0), output
        for line in command.expected:
            assert line in output.splitlines(), f"{command.block.where}: the docs show {line!r}; qbench printed:\n{output}"
    else:
        assert status == 0, f"{command.block.where}: {command.text} exited {status}:\n{output[-3000:]}"
    assert "Traceback" not in output


PYTHON_PAGES = sorted({b.page for b in ALL_BLOCKS if b.lang == "python"}, key=PAGES.index)


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=[p.name for p in PYTHON_PAGES])
def test_each_pages_python_runs_as_written_in_order(docs_folder, page, capsys):
    namespace: dict = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    ran = 0
    for block in [b for b in ALL_BLOCKS if b.page == page and b.lang == "python"]:
        if any(block.page.name == p and text in block.text for p, text, _ in SKIP_PYTHON):
            continue
        before = set(namespace)
        exec(compile(block.text, block.where, "exec"), namespace)  # the docs' own code
        for name in sorted(set(namespace) - before):
            if name.startswith("test_") and callable(namespace[name]):
                namespace[name]()
        ran += 1
    assert ran, f"no Python block of {page.name} ran"


def test_toml_blocks_parse_and_sweep_and_tune_files_load(tmp_path):
    from qbench.sweeps.spec import load_sweep
    from qbench.tuning.spec import load_tune

    toml_blocks = [b for b in ALL_BLOCKS if b.lang == "toml"]
    assert len(toml_blocks) >= 6
    loaded = 0
    for block in toml_blocks:
        table = tomllib.loads(block.text)
        if {"name", "quantizers"} <= table.keys():  # a whole sweep file, or a tune file (it declares trials)
            path = tmp_path / f"{table['name']}.toml"
            path.write_text(block.text)
            spec = (load_tune if "trials" in table else load_sweep)(str(path))
            assert spec.name == table["name"], block.where
            loaded += 1
    assert loaded >= 3


# -- reference facts the docs state, checked against the code ---------------------------------------


def test_every_recipe_is_in_the_recipe_table_and_the_readme():
    names = qbench.registries().recipes.names()
    assert "cpu-converged" in names
    training = (ROOT / "docs" / "training.md").read_text()
    table = training.split("## Recipes", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`") for line in table.splitlines() if line.startswith("| `")}
    assert rows == set(names)
    readme = (ROOT / "README.md").read_text()
    training_section = readme.split("## Training", 1)[1].split("\n## ", 1)[0]
    layout = readme.split("## Layout", 1)[1]
    for name in names:
        assert f"`{name}`" in training_section and name in layout, name


def _table_rows(text: str, heading: str) -> list[list[str]]:
    section = text.split(heading, 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    first = section.splitlines().index(lines[0])
    rows = []
    for line in section.splitlines()[first:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[2:]  # below the heading and the rule


def test_the_default_ladder_table_is_the_ladder_file():
    from qbench.sweeps.ladder import read_ladder

    ladder = read_ladder("default")
    regs = qbench.registries()
    rows = _table_rows((ROOT / "docs" / "sweeps.md").read_text(), "### The default ladder")
    by_name = {row[0].split()[0]: row[1:] for row in rows}
    assert set(by_name) == set(ladder.rows)  # every quantizer of the file, and no other
    rates = sorted({rate for rungs in ladder.rows.values() for rate in rungs})
    for quantizer, rungs in ladder.rows.items():
        assert sorted(rungs) == rates, quantizer
        for rate, cell in zip(rates, by_name[quantizer]):
            options = rungs[rate]
            numbers = [v for value in options.values() for v in (value if isinstance(value, list) else [value])]
            expected = [float(n) for n in numbers if not isinstance(n, bool)]
            built = regs.quantizers.create(quantizer, dim=ladder.latent_dim, **options).bits_per_position
            if quantizer == "fsq":  # its rate is not its rung: the table says it
                expected.append(round(built, 2))
            assert [float(n) for n in re.findall(r"\d+(?:\.\d+)?", cell)] == expected, (quantizer, rate, cell)


def test_the_weights_tables_list_every_file_qbench_knows():
    names = [row["name"] for row in qbench.weights.status()]
    assert {"squeezenet", "dinov2"} <= set(names)
    for page, heading in (("metrics.md", "## Pretrained weights"), ("scale.md", "## Weights offline")):
        rows = _table_rows((ROOT / "docs" / page).read_text(), heading)
        assert {row[0].strip("`") for row in rows} == set(names), page


def _signature(function) -> str:
    parts, keyword_only = [], False
    for param in inspect.signature(function).parameters.values():
        if param.kind is param.KEYWORD_ONLY and not keyword_only:
            parts.append("*")
            keyword_only = True
        parts.append(param.name if param.default is param.empty else f"{param.name}={param.default!r}")
    return f"{function.__name__}({', '.join(parts)})"


def test_the_plugin_guide_gives_every_helpers_exact_signature():
    from qbench import quantizer

    text = (ROOT / "docs" / "plugins.md").read_text()
    documented = {cell.split("(")[0]: cell for cell in re.findall(r"^\| `(\w+\([^`]*\))` \|", text, re.M)}
    helpers = [getattr(quantizer, n) for n in quantizer.__all__ if n != "Quantizer"] + [qbench.nearest_code]
    for helper in helpers:
        assert documented.get(helper.__name__) == _signature(helper), helper.__name__
    # what a Quantizer subclass must set, since the base class reads and does not define it
    base = qbench.Quantizer.__annotations__
    for attribute in ("dim", "codebook_size"):
        assert attribute in base and not hasattr(qbench.Quantizer, attribute)
        assert f"`self.{attribute}`" in text


def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _subparsers(child, (*path, name))


def test_every_command_line_option_is_documented_with_its_default():
    from qbench.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    docs = readme + "".join(p.read_text() for p in PAGES[1:])
    for path, parser in _subparsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            for flag in action.option_strings:
                rows = [line for line in table.splitlines() if f"`qbench {' '.join(path)}" in line and flag in line]
                slurm = action.dest.startswith("slurm_")  # one table for sweep and tune: docs/sweeps.md
                assert rows or (slurm and flag in docs), f"qbench {' '.join(path)} {flag} is in no README row"
            if action.default not in (None, False, [], argparse.SUPPRESS):
                assert "default" in (action.help or ""), f"qbench {' '.join(path)} {action.dest}: help has no default"


def test_no_code_block_swallows_prose_and_every_fence_closes():
    for page in PAGES:
        text = page.read_text()
        fences = re.findall(r"^ *```", text, re.M)
        assert len(fences) % 2 == 0, f"{page.name}: a code fence is never closed"
    for block in ALL_BLOCKS:
        assert not re.search(r"^#{1,3} [A-Z`]", block.text, re.M) or block.lang in ("python", "toml", "bash", "sh"), (
            f"{block.where}: a Markdown heading inside a code block: a stray fence swallows the section")


def _inline_and_block_commands(program: str) -> list[str]:
    found = [c.text for c in COMMANDS if c.text.startswith(program + " ")]
    for page in PAGES:
        found += [span for span in re.findall(r"`([^`\n]+)`", page.read_text()) if span.startswith(program + " ")]
    return found


def test_torchrun_is_given_the_qbench_module_not_the_console_script():
    # torchrun runs a Python file or `-m module`; the `qbench` console script is neither
    launches = [c for c in _inline_and_block_commands("torchrun") if " run" in c]
    assert len(launches) >= 3
    for command in launches:
        assert "-m qbench.cli run" in command, command


def test_the_mlflow_ui_is_installed_by_what_the_docs_tell_to_install():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    ui_blocks = [b for b in ALL_BLOCKS if re.search(r"^mlflow ui", b.text, re.M)]
    assert ui_blocks
    for block in ui_blocks:
        installs = re.findall(r"pip install '?qbench\[([\w-]+)\]", block.text.split("mlflow ui")[0])
        assert installs, f"{block.where}: `mlflow ui` without saying what provides it"
        requirements = [r for extra in installs for r in extras[extra]]
        # mlflow-skinny, the `mlflow` extra, logs but has no server: `mlflow ui` needs the full package
        assert any(re.match(r"mlflow\b(?!-)", r) for r in requirements), (block.where, requirements)
