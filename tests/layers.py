"""The import graph of a package and the rules its floors keep (used by tests/test_layers.py).

Every ``import`` statement counts, the ones inside functions included: a
lazy import hides an edge from a reader of the file's top, not from this
graph.  Layers are ordered lowest first; a module may import its own layer
or a lower one.  Modules of one layer listed in ``INDEPENDENT`` never import
each other.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

# lowest first; a prefix names a module or a subpackage
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("qbench._version", "qbench.errors", "qbench.specs", "qbench.search_space", "qbench.hookspecs", "qbench.atomic",
              "qbench.codebook", "qbench.lookup", "qbench._fused_kernel", "qbench._circle_lookup", "qbench._grid_lookup",
              "qbench.quantizer", "qbench.metric",
              "qbench.logger")),
    ("platform", ("qbench.platform",)),
    ("recipe", ("qbench.recipe", "qbench.weights")),
    ("rundir", ("qbench.rundir",)),
    ("engine/report", ("qbench.engine", "qbench.report")),
    ("comparison", ("qbench.comparison",)),
    ("sweeps", ("qbench.sweeps",)),
    ("tuning", ("qbench.tuning",)),
    ("entry", ("qbench.api", "qbench.testing", "qbench.commands", "qbench.cli", "qbench",
               # deprecated paths kept for one release
               "qbench.runner", "qbench.model", "qbench.identity")),
]
INDEPENDENT = [("qbench.engine", "qbench.report")]
TORCH_FREE = ("qbench.platform", "qbench.recipe", "qbench.rundir.directory", "qbench.report", "qbench.errors",
              "qbench.specs", "qbench.search_space", "qbench.hookspecs", "qbench._version")
# third-party packages worth deferring: a lazy import of anything else (or of a light module of ours) is refused
HEAVY = {"torch", "torchvision", "timm", "torch_fidelity", "lpips", "matplotlib", "pandas", "scipy", "numpy",
         "PIL", "skimage", "submitit", "optuna", "tensorboard", "wandb", "mlflow", "webdataset", "huggingface_hub"}
DEFER_WORDS = ("defer", "lazy", "heavy", "torch", "only when", "on first use", "optional")


@dataclass
class Edge:
    source: str
    target: str
    line: int
    lazy: bool
    comment: bool  # a comment on the import or on the line above its block


@dataclass
class Graph:
    modules: dict[str, Path] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    third_party: dict[str, list[tuple[str, int, bool, bool]]] = field(default_factory=dict)  # module -> (pkg, line, lazy, comment)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if not node.level:
        base = node.module or ""
    else:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]  # ``from pkg import name`` may name a submodule


def _has_comment(lines: list[str], lineno: int, end: int) -> bool:
    if any("#" in lines[i - 1] for i in range(lineno, end + 1)):
        return True
    i = lineno - 1
    while i >= 1 and (lines[i - 1].strip().startswith(("import ", "from ", ")")) or not lines[i - 1].strip()
                      or lines[i - 1].startswith(" " * 8) and not lines[i - 1].strip().startswith("#")
                      and lines[i - 1].rstrip().endswith(",")):
        i -= 1  # the comment may head the block of imports this one belongs to
    return i >= 1 and lines[i - 1].strip().startswith("#")


def _function_level(tree: ast.AST) -> set[int]:
    lazy = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    lazy.add(id(inner))
    return lazy


def build_graph(root: Path) -> Graph:
    graph = Graph()
    top = root.name
    for path in sorted(root.rglob("*.py")):
        graph.modules[module_name(root, path)] = path
    for name, path in graph.modules.items():
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text, filename=str(path))
        lazy_nodes = _function_level(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = _resolve(name, path.name == "__init__.py", node)
                if node.module == "__future__":
                    continue
            else:
                continue
            lazy = id(node) in lazy_nodes
            comment = _has_comment(lines, node.lineno, node.end_lineno or node.lineno)
            if isinstance(node, ast.ImportFrom) and any(t in graph.modules for t in targets[1:]):
                targets = [t for t in targets[1:] if t in graph.modules]  # from pkg import submodule: not pkg's names
            elif isinstance(node, ast.ImportFrom):
                targets = targets[:1]
            for target in targets:
                if target.split(".")[0] == top:
                    if target in graph.modules and target != name:
                        graph.edges.append(Edge(name, target, node.lineno, lazy, comment))
                elif target:
                    pkg = target.split(".")[0]
                    graph.third_party.setdefault(name, []).append((pkg, node.lineno, lazy, comment))
                    break  # one entry per statement
    return graph


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def unplaced(graph: Graph) -> list[str]:
    return [m for m in graph.modules if layer_of(m) < 0]


def upward(graph: Graph) -> list[str]:
    bad = []
    for e in graph.edges:
        if e.target == "qbench" or e.source == "qbench":
            if e.target == "qbench" and e.source != "qbench":
                bad.append(f"{e.source}:{e.line} imports the facade 'qbench' (import the module that defines the name)")
            continue
        if layer_of(e.target) > layer_of(e.source):
            bad.append(f"{e.source}:{e.line} ({LAYERS[layer_of(e.source)][0]}) imports {e.target} "
                       f"({LAYERS[layer_of(e.target)][0]})")
        for a, b in INDEPENDENT:
            if (_within(e.source, a) and _within(e.target, b)) or (_within(e.source, b) and _within(e.target, a)):
                bad.append(f"{e.source}:{e.line} imports {e.target}: {a} and {b} are independent")
    return bad


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), a package's __init__ excluded
    as an importer of its own submodules (re-exports are not a dependency of the submodule)."""
    adjacency: dict[str, set[str]] = {m: set() for m in graph.modules}
    for e in graph.edges:
        if not e.target.startswith(e.source + "."):
            adjacency[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(adjacency[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(adjacency):
        if module not in index:
            visit(module)
    return found


def imports_torch(graph: Graph) -> set[str]:
    """Modules that import torch at their top, directly or through other modules' tops."""
    return _closure(graph, {"torch"})


def heavy_at_import(graph: Graph) -> set[str]:
    """Modules whose import pulls in a heavy third-party package."""
    return _closure(graph, HEAVY)


def _closure(graph: Graph, packages: set[str]) -> set[str]:
    direct = {m for m, uses in graph.third_party.items() if any(p in packages and not lazy for p, _, lazy, _ in uses)}
    top_edges: dict[str, set[str]] = {}
    for e in graph.edges:
        if not e.lazy:
            top_edges.setdefault(e.source, set()).add(e.target)
    heavy = set(direct)
    changed = True
    while changed:
        changed = False
        for m in graph.modules:
            if m not in heavy and top_edges.get(m, set()) & heavy:
                heavy.add(m)
                changed = True
    return heavy


def reaches(graph: Graph, start: str) -> set[str]:
    """Every module ``start`` may import, lazily or not."""
    out: dict[str, set[str]] = {}
    for e in graph.edges:
        out.setdefault(e.source, set()).add(e.target)
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        for t in out.get(m, ()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def torch_in_torch_free(graph: Graph) -> list[str]:
    """Importing a torch-free module must not import torch (a function may still defer it)."""
    torchy = imports_torch(graph)
    return [f"{m} is torch-free but importing it imports torch" for m in sorted(torchy)
            if any(_within(m, p) for p in TORCH_FREE)]


def unjustified_lazy(graph: Graph) -> list[str]:
    """A lazy import must defer something heavy, and say so in a comment."""
    heavy_modules = heavy_at_import(graph)
    bad = []
    for e in graph.edges:
        if e.lazy and e.target not in heavy_modules:
            bad.append(f"{e.source}:{e.line} imports the light module {e.target} lazily")
        elif e.lazy and not e.comment:
            bad.append(f"{e.source}:{e.line} imports {e.target} lazily without a comment saying what it defers")
    for module, uses in graph.third_party.items():
        for pkg, line, lazy, comment in uses:
            if lazy and pkg not in HEAVY and pkg not in STDLIB_OK:
                bad.append(f"{module}:{line} imports {pkg} lazily: only heavy packages may be deferred")
            elif lazy and not comment and pkg in HEAVY:
                bad.append(f"{module}:{line} imports {pkg} lazily without a comment saying what it defers")
    return bad


# standard-library modules imported inside functions where they are a rare path's need (no comment required)
STDLIB_OK = {"dataclasses", "importlib", "json", "os", "sys", "subprocess", "shutil", "tempfile", "warnings",
             "signal", "socket", "time", "traceback", "pickle", "io", "zipfile", "hashlib", "math", "re", "platform",
             "multiprocessing", "concurrent", "fnmatch", "textwrap", "contextlib", "urllib", "getpass", "glob",
             "itertools", "functools", "collections", "tomllib", "inspect", "difflib", "statistics", "ast",
             "threading", "queue", "uuid", "random", "copy", "string", "datetime", "shlex", "atexit", "gc",
             "struct", "errno", "stat", "numbers", "typing", "pathlib", "logging", "tarfile", "bisect",
             "types", "enum", "fcntl", "heapq", "operator", "csv", "argparse", "select", "resource", "locale"}
