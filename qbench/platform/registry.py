"""A generic registry of plugin specs, in the spirit of timm's ``create_model``.

Names are unique: a second spec with a taken name is a conflict naming both
origins (``add`` raises; ``add(..., strict=False)`` records it so that
``qbench plugins`` can still show it).  Unknown names are user errors listing
what is known, with a did-you-mean and the plugins that failed to load.
``create`` imports the factory lazily, so building and listing a registry
never imports torch; option names and values are checked before the factory
is called (``qbench.platform.options``).
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from qbench.errors import PluginError, unknown_name_error
from qbench.platform.options import call_factory, check_values, effective_options
from qbench.specs import PluginSpec

DISABLE_ENV = "QBENCH_DISABLE_PLUGINS"  # comma-separated entry-point or distribution names to skip

S = TypeVar("S", bound=PluginSpec)


def load_factory(spec: PluginSpec):
    module_name, _, attr = spec.factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a broken plugin module must not look like a user error
        raise PluginError(
            f"{spec.kind} {spec.name!r} from {spec.origin or '?'}: cannot import "
            f"{module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        target: Any = module
        for part in attr.split("."):
            target = getattr(target, part)
    except AttributeError as exc:
        raise PluginError(
            f"{spec.kind} {spec.name!r} from {spec.origin or '?'}: {spec.factory!r} not found"
        ) from exc
    return target


class Registry(Generic[S]):
    """Specs of one kind (quantizers, backbones, metrics or datasets) by name."""

    def __init__(self, kind: str, specs: Iterable[S] = (), *, failed_plugins: Iterable[str] = ()):
        self.kind = kind
        self._specs: dict[str, S] = {}
        self.conflicts: dict[str, list[S]] = {}
        self.failed_plugins = list(failed_plugins)  # named in unknown-name errors
        for spec in specs:
            self.add(spec)

    def add(self, spec: S, *, strict: bool = True) -> None:
        taken = self._specs.get(spec.name)
        if taken is None:
            self._specs[spec.name] = spec
            return
        self.conflicts.setdefault(spec.name, [taken]).append(spec)
        if strict:
            raise self.conflict_error(spec.name)

    def conflict_error(self, name: str) -> PluginError:
        origins = " and by ".join(_origin(s) for s in self.conflicts[name])
        return PluginError(
            f"{self.kind} {name!r} is registered twice: by {origins}; uninstall one, or set "
            f"{DISABLE_ENV}=NAME (an entry-point or distribution name) to skip it"
        )

    def names(self, pattern: str | None = None) -> list[str]:
        names = sorted(self._specs)
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names

    def list(self, pattern: str | None = None) -> list[S]:
        return [self._specs[n] for n in self.names(pattern)]

    def get(self, name: str) -> S:
        if name in self.conflicts:
            raise self.conflict_error(name)
        try:
            return self._specs[name]
        except KeyError:
            error = unknown_name_error(self.kind, name, self._specs)
        if self.failed_plugins:
            error = type(error)(f"{error}; plugins that failed to load: {', '.join(self.failed_plugins)} (see: qbench plugins)")
        raise error

    def options(self, name: str, **overrides: Any) -> dict[str, Any]:
        """The spec's defaults updated by ``overrides``, names and values checked: what ``create`` passes."""
        spec = self.get(name)
        return check_values(spec, load_factory(spec), {**spec.defaults, **overrides})

    def effective_options(self, name: str, **overrides: Any) -> dict[str, Any]:
        """Every option the object is built with: factory defaults, spec defaults, then ``overrides``."""
        return effective_options(load_factory(self.get(name)), self.options(name, **overrides))

    def create(self, name: str, **options: Any):
        spec = self.get(name)
        return call_factory(spec, load_factory(spec), self.options(name, **options))

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[S]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _origin(spec: PluginSpec) -> str:
    dist = f" [{spec.distribution} {spec.version}]".rstrip() if spec.distribution else ""
    return f"{spec.origin or '?'}{dist}"
