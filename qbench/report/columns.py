"""Which columns a report shows, and how a number is written.

Metric columns come from the metrics recorded in the runs, not from a fixed
list: each record carries the metric's heading, number format, unit and
better direction (from its ``MetricSpec``), so a third-party metric gets a
column of its own.  Records written before those display fields existed
fall back to the built-in defaults below.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# built-ins first, in the order a reader scans a tokenizer table; then the rest by name
KNOWN_ORDER = ("rfid", "lpips", "psnr", "ssim", "usage", "perplexity", "throughput")
# display defaults for records that predate the display fields: name -> (heading, format, higher_is_better)
BUILTIN_DISPLAY: dict[str, tuple[str, str, bool | None]] = {
    "rfid": ("rFID", "", False),
    "lpips": ("LPIPS", "", False),
    "psnr": ("PSNR (dB)", "", True),
    "ssim": ("SSIM", "", True),
    "usage": ("usage (%)", "", True),
    "perplexity": ("perplexity", "", True),
    "throughput": ("throughput (img/s)", "", True),
}
# the rate axis is the model's bits per position; the "bits" metric repeats it
NOT_A_COLUMN = {"bits"}
ARROW = {True: " ↑", False: " ↓", None: ""}


@dataclass(frozen=True)
class Column:
    key: str  # the run frame's column
    heading: str
    higher_is_better: bool | None
    format: str = ""
    source: str = ""  # a dotted record path for descriptive columns; "" for metrics
    scale: float = 1.0

    @property
    def title(self) -> str:
        return self.heading + ARROW[self.higher_is_better]

    @property
    def descriptive(self) -> bool:
        """Rates, sizes and times: neither better nor worse, the mean says it all."""
        return self.higher_is_better is None


def eval_se_key(key: str) -> str:
    """The run frame's column holding a metric's evaluation standard error (its ``standard_error`` extra)."""
    return f"{key}_eval_se"


BITS = Column("bits", "bits/pos", None, source="model.bits_per_position")
DESCRIPTIVE_TAIL = (
    Column("params", "params (M)", None, source="model.parameters.total", scale=1e-6),
    Column("train_min", "train (min)", None, source="train.wall_time_s", scale=1 / 60),
)
RESERVED = {"run_dir", "recipe", "recipe_hash", "comparison_hash", "protocol", "quantizer", "config", "group", "label",
            "seed", "status", "reason", "sweep", "point", "plugins", "bits", "params", "train_min", "git_revision",
            "eval_split", "eval_images"}


def metric_key(name: str) -> str:
    """The run frame's column of metric ``name``; prefixed where it would shadow a run field."""
    return f"metric_{name}" if name in RESERVED else name


def _heading(name: str, entry: dict[str, Any]) -> str:
    if entry.get("heading"):
        return str(entry["heading"])
    if name in BUILTIN_DISPLAY:
        return BUILTIN_DISPLAY[name][0]
    unit = entry.get("unit") or ""
    return f"{name} ({unit})" if unit else name


def metric_columns(records: Iterable[dict[str, Any]]) -> list[Column]:
    """One column per metric recorded in any run, known built-ins first."""
    seen: dict[str, Column] = {}
    described: set[str] = set()  # metrics whose column came from a record with display fields
    for record in records:
        for name, entry in (record.get("metrics") or {}).items():
            if name in NOT_A_COLUMN or not isinstance(entry, dict) or name in described:
                continue
            if name in seen and not entry.get("heading"):
                continue
            builtin = BUILTIN_DISPLAY.get(name, ("", "", None))
            higher = entry["higher_is_better"] if "higher_is_better" in entry else builtin[2]
            seen[name] = Column(metric_key(name), _heading(name, entry), higher, entry.get("format") or builtin[1])
            if entry.get("heading"):
                described.add(name)
    known = [seen[n] for n in KNOWN_ORDER if n in seen]
    rest = [seen[n] for n in sorted(seen) if n not in KNOWN_ORDER]
    return known + rest


def fmt(value: float, spec: str = "") -> str:
    """``spec`` (e.g. ".2f") when the metric names one, else three significant digits."""
    if value is None or not math.isfinite(value):
        return f"{value}"
    if spec:
        try:
            return format(value, spec)
        except (ValueError, TypeError):
            pass  # a bad format from a plugin must not break the report
    if value == 0:
        return "0"
    if abs(value) < 1e-3:  # FSQ's 2^40 codes: a usage of 1.9e-07 % must not read as 0.0000
        return f"{value:.3g}"
    digits = max(0, 3 - int(math.floor(math.log10(abs(value)))) - 1)
    return f"{value:.{min(digits, 4)}f}"
