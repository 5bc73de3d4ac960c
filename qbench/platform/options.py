"""Plugin options: names and values checked against the factory before anything is built.

A plugin's factory (a class or function named by its spec) declares its
options as keyword parameters with type annotations and defaults.  Before the
factory is called, every option given in a recipe or ``--set`` is checked:

- its name must be a parameter of the factory (a did-you-mean otherwise);
- its value must fit the annotation (``int``, ``float``, ``bool``, ``str``,
  ``list[...]``/``tuple[...]``/``Sequence[...]``, ``X | None``, ``Literal``);
  a ``float`` must be finite: TOML's ``nan`` and ``inf`` are refused here,
  since they slip through a plugin's own range checks;
  TOML values are coerced only where that is lossless (an int where a float
  is expected, a list where a tuple is);
- the effective options are the factory's defaults updated by the spec's
  defaults and the given values, so a run can record exactly what it used.

Parameters without an annotation, or with one this module does not
understand, accept any value: the plugin remains the judge there.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import types
import typing
from typing import Any

from qbench.errors import ConfigError, QbenchError, suggest

_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)


def _signature(factory) -> inspect.Signature | None:
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):
        return None


def _hints(factory) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: no type checks, names still checked
        return {}


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "unset"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    if origin in _SEQUENCES:
        args = typing.get_args(hint)
        return f"a list of {_describe(args[0])}" if args and args[0] is not Ellipsis else "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


_NO = object()


def coerce(value: Any, hint: Any) -> Any:
    """``value`` made to fit ``hint``, or ``_NO`` when it cannot be done losslessly."""
    if hint is Any or hint is inspect.Parameter.empty:
        return value
    if hint is type(None):
        return value if value is None else _NO
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            fitted = coerce(value, arg)
            if fitted is not _NO:
                return fitted
        return _NO
    if origin is typing.Literal:
        return value if value in typing.get_args(hint) else _NO
    if origin in _SEQUENCES or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return _NO
        args = typing.get_args(hint)
        item_hints = [args[0]] * len(value) if len(args) == 1 or (len(args) == 2 and args[1] is Ellipsis) else list(args)
        if args and len(item_hints) != len(value):
            return _NO
        items = [coerce(v, h) for v, h in zip(value, item_hints)] if args else list(value)
        return _NO if any(i is _NO for i in items) else items
    if hint is bool:
        return value if isinstance(value, bool) else _NO
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _NO
    if hint is float:  # nan and inf pass every comparison a plugin makes (nan > 0 is False, so `<= 0` lets it by)
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if is_number and math.isfinite(value) else _NO
    if hint is str:
        return value if isinstance(value, str) else _NO
    if isinstance(hint, type):
        return value if isinstance(value, hint) else _NO
    return value  # an annotation we do not understand: the plugin judges


def check_values(spec, factory, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with names checked and values coerced; ``ConfigError`` naming the first bad one."""
    signature = _signature(factory)
    if signature is None:
        return dict(options)
    params = signature.parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    allowed = [n for n, p in params.items() if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    hints = _hints(factory)
    checked = {}
    for key, value in options.items():
        if key not in params and not open_ended:
            raise ConfigError(
                f"{spec.kind} {spec.name!r} has no option {key!r}{suggest(key, allowed)}; "
                f"options: {', '.join(allowed)}"
            )
        hint = hints.get(key, inspect.Parameter.empty)
        fitted = coerce(value, hint)
        if fitted is _NO:
            wanted = _describe(hint)
            if isinstance(value, float) and not math.isfinite(value):
                wanted = "a finite number" if wanted == "a number" else f"{wanted} (a finite number)"
            raise ConfigError(f"{spec.kind} {spec.name!r}: option {key} must be {wanted}, got {value!r}")
        checked[key] = fitted
    return checked


def effective_options(factory, given: dict[str, Any]) -> dict[str, Any]:
    """The factory's keyword defaults updated by ``given``: every value the object is built with."""
    signature = _signature(factory)
    defaults = {}
    if signature is not None:
        for name, param in signature.parameters.items():
            if param.default is not inspect.Parameter.empty and param.kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY,
            ):
                defaults[name] = list(param.default) if isinstance(param.default, tuple) else param.default
    return {**defaults, **given}


def named(spec, message: str) -> str:
    """``message`` prefixed with the kind, name and plugin of ``spec`` (once: a leading ``NAME:`` is dropped)."""
    prefix = f"{spec.kind} {spec.name!r} ({spec.origin or '?'}): "
    if message.startswith(prefix):
        return message
    return prefix + message.removeprefix(f"{spec.name}: ")


def call_factory(spec, factory, options: dict[str, Any]):
    """``factory(**options)``; anything it raises becomes one ``ConfigError`` naming the plugin: its own
    ``ConfigError`` prefixed with kind, name and plugin, any other exception with the options too."""
    try:
        return factory(**options)
    except ConfigError as exc:  # the plugin's own words, said to come from it
        raise ConfigError(named(spec, str(exc))) from None
    except QbenchError:  # handled by the caller (MetricUnavailable, PluginError)
        raise
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "no options"
        raise ConfigError(
            f"{spec.kind} {spec.name!r} ({spec.origin or '?'}) rejected {shown}: {type(exc).__name__}: {exc}"
        ) from None
