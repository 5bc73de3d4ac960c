"""A generic registry of plugin specs, in the spirit of timm's ``create_model``.

Names are unique: a second spec with a taken name is an error naming both
origins.  Unknown names are user errors listing what is known, with a
did-you-mean.  ``create`` imports the factory lazily, so building and listing a
registry never imports torch.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from .errors import ConfigError, PluginError, suggest, unknown_name_error
from .specs import PluginSpec

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


def check_options(spec: PluginSpec, factory, options: dict[str, Any]) -> None:
    """Reject option names the factory does not accept, before anything is built."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"{spec.kind} {spec.name!r} has no option {key!r}{suggest(key, allowed)}; "
                f"options: {', '.join(allowed)}"
            )


class Registry(Generic[S]):
    """Specs of one kind (quantizers, backbones, metrics or datasets) by name."""

    def __init__(self, kind: str, specs: Iterable[S] = ()):
        self.kind = kind
        self._specs: dict[str, S] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: S) -> None:
        taken = self._specs.get(spec.name)
        if taken is not None:
            raise PluginError(
                f"{self.kind} {spec.name!r} is registered twice: by "
                f"{taken.origin or '?'} and by {spec.origin or '?'}"
            )
        self._specs[spec.name] = spec

    def names(self, pattern: str | None = None) -> list[str]:
        names = sorted(self._specs)
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names

    def list(self, pattern: str | None = None) -> list[S]:
        return [self._specs[n] for n in self.names(pattern)]

    def get(self, name: str) -> S:
        try:
            return self._specs[name]
        except KeyError:
            raise unknown_name_error(self.kind, name, self._specs) from None

    def options(self, name: str, **overrides: Any) -> dict[str, Any]:
        """The spec's defaults updated by ``overrides``: what ``create`` passes."""
        return {**self.get(name).defaults, **overrides}

    def create(self, name: str, **options: Any):
        spec = self.get(name)
        factory = load_factory(spec)
        merged = self.options(name, **options)
        check_options(spec, factory, merged)
        return factory(**merged)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[S]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
