"""JSON that strict readers accept: no bare ``NaN`` or ``Infinity``.

Python's ``json`` writes non-finite floats as ``NaN``/``Infinity``, which is
not JSON (RFC 8259) and breaks ``jq``, JavaScript and other strict readers.
Results are written with every non-finite number as ``null`` (a missing
value), and ``allow_nan=False`` turns any that slipped through into an error
instead of a broken file.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None``, in nested dicts and lists too."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(value) for value in obj]
    return obj


def is_finite_number(value: Any) -> bool:
    """True for an int or float that is finite (not a bool, not a string such as ``"12.9"``): a metric value."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain(obj: Any) -> Any:
    """Numpy and torch scalars as Python numbers; anything else as its text."""
    try:
        value = obj.item()
    except (AttributeError, ValueError, RuntimeError, TypeError):
        return str(obj)
    return finite(value)


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(finite(obj), allow_nan=False, default=_plain, **kwargs)
