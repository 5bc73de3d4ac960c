"""Building a fresh plugin manager and the registries it feeds.

Built-in plugins come from an explicit list; third-party plugins from the
``qbench`` entry-point group.  A plugin that fails to import, implements a
hook that does not exist (a misspelt name), or whose hook raises is recorded
with its reason and skipped; the others still load.
``QBENCH_DISABLE_PLUGINS=name,...`` blocks plugins by entry-point or
distribution name.  Two plugins registering one name are a conflict:
``registries()`` raises naming both, ``registries(strict=False)`` records it
for ``qbench plugins`` to show.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field, replace
from importlib import metadata

import pluggy

from qbench import hookspecs
from qbench.errors import PluginError, suggest
from qbench.platform.registry import DISABLE_ENV, Registry
from qbench.specs import (
    BackboneSpec,
    DatasetSpec,
    LoggerSpec,
    MetricSpec,
    PluginSpec,
    QuantizerSpec,
    RecipeSpec,
    WeightsSpec,
)

ENTRY_POINT_GROUP = "qbench"

# name -> module; registered in this order, before any entry point.
BUILTIN_PLUGINS: dict[str, str] = {"builtins": "qbench_builtins.hooks"}

# registry attribute -> (hook name, spec type)
KINDS: dict[str, tuple[str, type[PluginSpec]]] = {
    "quantizers": ("qbench_register_quantizers", QuantizerSpec),
    "backbones": ("qbench_register_backbones", BackboneSpec),
    "metrics": ("qbench_register_metrics", MetricSpec),
    "datasets": ("qbench_register_datasets", DatasetSpec),
    "recipes": ("qbench_register_recipes", RecipeSpec),
    "weights": ("qbench_register_weights", WeightsSpec),
    "loggers": ("qbench_register_loggers", LoggerSpec),
}


@dataclass
class PluginInfo:
    """Where one plugin came from and what it registered (for ``qbench plugins``)."""

    name: str
    module: str
    distribution: str = ""
    version: str = ""
    builtin: bool = False
    error: str = ""
    registered: dict[str, list[str]] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"{self.name} ({self.distribution} {self.version})".strip() if self.distribution else self.name


@dataclass
class Registries:
    """The registries of one plugin manager, plus its load report."""

    quantizers: Registry[QuantizerSpec]
    backbones: Registry[BackboneSpec]
    metrics: Registry[MetricSpec]
    datasets: Registry[DatasetSpec]
    recipes: Registry[RecipeSpec]
    weights: Registry[WeightsSpec]
    loggers: Registry[LoggerSpec]
    plugins: list[PluginInfo]

    def by_kind(self, kind: str) -> Registry:
        return getattr(self, kind)

    def conflicts(self) -> list[str]:
        """One line per name registered by more than one plugin."""
        return [str(self.by_kind(kind).conflict_error(name)) for kind in KINDS for name in self.by_kind(kind).conflicts]

    def check_conflicts(self) -> None:
        for kind in KINDS:
            for name in self.by_kind(kind).conflicts:
                raise self.by_kind(kind).conflict_error(name)

    def failed(self) -> list[PluginInfo]:
        """Plugins that did not load (disabled ones excluded)."""
        return [p for p in self.plugins if p.error and DISABLE_ENV not in p.error]


KNOWN_HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("qbench_"))


def _unknown_hooks(plugin) -> list[str]:
    """Names that look like qbench hooks but match no spec (pluggy would ignore them silently)."""
    return sorted(
        name for name in dir(plugin)
        if name.startswith("qbench_") and name not in KNOWN_HOOKS and callable(getattr(plugin, name, None))
    )


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def _distribution_version(dist_name: str) -> str:
    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        return ""


def make_plugin_manager(extra_plugins: dict[str, object] | None = None):
    """A fresh ``PluginManager`` with built-ins, entry points and ``extra_plugins``.

    Returns ``(pm, infos)``; ``infos`` lists every plugin tried, including the
    ones that failed to load.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = disabled_plugins()
    infos: list[PluginInfo] = []

    def register(info: PluginInfo, load) -> None:
        infos.append(info)
        if {info.name, info.distribution} & blocked:
            info.error = f"disabled by {DISABLE_ENV}"
            return
        try:
            plugin = load()
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            return
        unknown = _unknown_hooks(plugin)
        if unknown:
            info.error = f"unknown hook {', '.join(unknown)}{suggest(unknown[0], KNOWN_HOOKS)}; known hooks: {', '.join(KNOWN_HOOKS)}"
            return
        try:
            pm.register(plugin, name=info.name)
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"

    qbench_version = _distribution_version("qbench")
    for name, module in BUILTIN_PLUGINS.items():
        info = PluginInfo(name, module, "qbench", qbench_version, builtin=True)
        register(info, lambda module=module: importlib.import_module(module))

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else ""
        version = ep.dist.version if ep.dist is not None else ""
        register(PluginInfo(ep.name, ep.value, dist, version), ep.load)

    for name, plugin in (extra_plugins or {}).items():
        module = getattr(plugin, "__name__", type(plugin).__name__)
        register(PluginInfo(name, module), lambda plugin=plugin: plugin)
    return pm, infos


def registries(extra_plugins: dict[str, object] | None = None, *, strict: bool = True) -> Registries:
    """Build the registries from a fresh plugin manager.

    ``extra_plugins`` (name -> module or object with hook functions) is for
    tests and notebooks: plugins registered without an entry point.  With
    ``strict`` (the default) a name registered by two plugins raises
    ``PluginError`` naming both; otherwise the conflict is kept in
    ``Registry.conflicts`` and only using that name fails.
    """
    pm, infos = make_plugin_manager(extra_plugins)
    by_name = {info.name: info for info in infos}
    failed = [f"{info.name} ({info.error})" for info in infos if info.error and DISABLE_ENV not in info.error]
    built = {kind: Registry(spec_type.kind, failed_plugins=failed) for kind, (_, spec_type) in KINDS.items()}
    for kind, (hook_name, spec_type) in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            info = by_name[impl.plugin_name]
            try:
                specs = list(impl.function() or ())
            except Exception as exc:
                info.error = f"{hook_name} raised {type(exc).__name__}: {exc}"
                continue
            for spec in specs:
                if not isinstance(spec, spec_type):
                    raise PluginError(
                        f"plugin {info.name!r}: {hook_name} returned {type(spec).__name__}, "
                        f"expected {spec_type.__name__}"
                    )
                stamped = replace(spec, origin=info.name, version=info.version, distribution=info.distribution)
                built[kind].add(stamped, strict=False)
                info.registered.setdefault(kind, []).append(spec.name)
    regs = Registries(**built, plugins=infos)
    if strict:
        regs.check_conflicts()
    return regs


def given_or_built(regs: Registries | None, *, strict: bool = True) -> Registries:
    """``regs`` when the caller built them (once per command), else fresh ones (``registries(strict=strict)``)."""
    return regs if regs is not None else registries(strict=strict)
