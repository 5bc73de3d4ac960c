"""The report's plots: rate-distortion bands, lines, bars, loss curves.

matplotlib's non-interactive Agg backend; every figure is written atomically.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from pathlib import Path

import numpy as np

from qbench import atomic


def _figure():
    # deferred: loads matplotlib only when this runs
    import matplotlib

    matplotlib.use("Agg")
    # deferred: loads matplotlib only when this runs
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _figure().close(fig)
    return atomic.write_bytes(path, buf.getvalue())


def _band(ax, x, mean, low, high, label, style: dict | None = None) -> None:
    """A line with its 95% band; a lone point gets an error bar instead. ``style``: color, linestyle."""
    x, mean, low, high = (np.asarray(v, dtype=float) for v in (x, mean, low, high))
    finite = np.isfinite(low) & np.isfinite(high)
    style = {k: v for k, v in (style or {}).items() if v is not None}
    if len(x) == 1:
        err = [[mean[0] - low[0]], [high[0] - mean[0]]] if finite[0] else None
        ax.errorbar(x, mean, yerr=err, fmt="o", capsize=3, label=label, color=style.get("color"))
        return
    (line,) = ax.plot(x, mean, marker="o", label=label, **style)
    if finite.any():
        ax.fill_between(x[finite], low[finite], high[finite], color=line.get_color(), alpha=0.2, linewidth=0)


MAX_OVERLAID = 4  # beyond this many bands one panel is unreadable


def rate_distortion(series: list[dict], ylabel: str, path: str | Path, title: str,
                    ceilings: list[dict] = ()) -> Path:
    """Bits per position against a metric: one line per curve with its 95% band over seeds.

    Each series has label, bits, mean, low, high (arrays along the curve). More
    than MAX_OVERLAID series, two or more of them curves, get one panel each,
    on shared axes, with the other series' means in grey behind it.
    """
    curves = [s for s in series if len(s["bits"]) > 1]
    if len(series) <= MAX_OVERLAID or len(curves) < 2:  # lone points (one rate) overlap little: one panel
        return lines(series, "bits per position", ylabel, path, title, x="bits", ceilings=ceilings)
    return _panels(series, "bits per position", ylabel, path, title, x="bits", ceilings=ceilings)


def _ceiling_lines(ax, ceilings: list[dict], legend: bool = True) -> None:
    """The unquantized ceiling: a dashed horizontal line at its mean, its interval shaded."""
    for level in ceilings:
        ax.axhline(level["mean"], color="black", linestyle="--", linewidth=1,
                   label=level["label"] if legend else None)
        if math.isfinite(level["low"]) and math.isfinite(level["high"]):
            ax.axhspan(level["low"], level["high"], color="black", alpha=0.08, linewidth=0)


def _panels(series: list[dict], xlabel: str, ylabel: str, path: str | Path, title: str, *, x: str,
            ceilings: list[dict] = ()) -> Path:
    plt = _figure()
    columns = min(4, len(series))
    rows = -(-len(series) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.3 * rows + 0.5), sharex=True, sharey=True,
                             squeeze=False)
    grey = "0.75"
    tab10 = plt.get_cmap("tab10").colors
    colours = tab10[:7] + tab10[8:]  # tab10 without its grey, which the other curves wear
    for i, (ax, own) in enumerate(zip(axes.flat, series)):
        for other in series:
            if other is not own:
                ax.plot(other[x], other["mean"], color=grey, linewidth=0.8, marker=".", markersize=3)
        ax.set_prop_cycle(color=[colours[i % len(colours)]])
        _band(ax, own[x], own["mean"], own["low"], own["high"], own["label"])
        _ceiling_lines(ax, ceilings, legend=False)
        ax.set_title(textwrap.fill(own["label"], 34), fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(series):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(xlabel, fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    ceiling = "; dashed: the unquantized ceiling" if ceilings else ""
    fig.suptitle(f"{title}; grey: the other curves{ceiling}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _finish_with_legend_outside(fig, ax, xlabel: str, ylabel: str, title: str, path: str | Path) -> Path:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def lines(series: list[dict], xlabel: str, ylabel: str, path: str | Path, title: str, *, x: str = "x", log2_x: bool = False,
          ceilings: list[dict] = ()) -> Path:
    """One line (with its band) per series; series have label, ``x``, mean, low, high; ceilings: dashed levels."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    tab10 = plt.get_cmap("tab10").colors
    keys = list(dict.fromkeys(s["colour"] for s in series if "colour" in s))
    for s in series:  # a legend, not annotations: configurations often share one rate
        style = {"color": tab10[keys.index(s["colour"]) % len(tab10)] if "colour" in s else None,
                 "linestyle": s.get("linestyle")}  # one configuration, one colour; a budget, a line style
        _band(ax, s[x], s["mean"], s["low"], s["high"], s["label"], style)
    _ceiling_lines(ax, ceilings)
    if log2_x:
        # deferred: loads matplotlib only when this runs
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 1, 2, 4 rather than 2^0, 2^1
    return _finish_with_legend_outside(fig, ax, xlabel, ylabel, title, path)


def points_and_model(measured: dict[str, tuple], model: dict[str, tuple], xlabel: str, ylabel: str,
                     path: str | Path, title: str) -> Path:
    """Measured (x, y) as markers and a model's (x, y) as a dashed line of the same colour, per label."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, (x, y) in measured.items():
        (marks,) = ax.plot(x, y, "o", label=f"{label} measured")
        if label in model:
            ax.plot(*model[label], "--", color=marks.get_color(), label=f"{label} fit")
    return _finish_with_legend_outside(fig, ax, xlabel, ylabel, title, path)


def bars(labels: list[str], values: list[float], ylabel: str, path: str | Path, title: str) -> Path:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(labels) + 2), 3.6))
    ax.bar(range(len(labels)), values, color="#4c72b0")
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    for i, v in enumerate(values):
        ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8)
    return save_figure(fig, path)


def curves(series: dict[str, tuple[list[float], list[float]]], ylabel: str, path: str | Path, title: str,
           styles: dict[str, dict] | None = None) -> Path:
    """One line per label; ``styles``: label -> colour key and line style (one colour per configuration)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    tab10 = plt.get_cmap("tab10").colors
    styles = styles or {}
    keys = list(dict.fromkeys(styles[label]["colour"] for label in series if label in styles))
    for label, (x, y) in series.items():
        style = styles.get(label, {})
        colour = tab10[keys.index(style["colour"]) % len(tab10)] if "colour" in style else None
        ax.plot(x, y, label=label, color=colour, linestyle=style.get("linestyle", "-"))
    ax.set_yscale("log")
    return _finish_with_legend_outside(fig, ax, "step", ylabel, title, path)


def grouped_panels(series: list[dict], xlabel: str, ylabel: str, path: str | Path, title: str,
                   ceilings: list[dict] = ()) -> Path:
    """One panel per ``panel`` value (a step budget), shared axes, one legend entry per label.

    Each series has label, base (its label without the panel's keys), colour
    (what picks its colour: one configuration keeps it across panels), panel,
    bits, mean, low, high; a ceiling with a panel value is drawn in that panel.
    """
    plt = _figure()
    panels = sorted(dict.fromkeys(s["panel"] for s in series), key=_natural)  # budgets in increasing order
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 2.5, 3.8), sharex=True, sharey=True,
                             squeeze=False)
    tab10 = plt.get_cmap("tab10").colors
    colours = {key: tab10[i % len(tab10)] for i, key in enumerate(dict.fromkeys(s["colour"] for s in series))}
    handles: dict[str, object] = {}
    for ax, panel in zip(axes[0], panels):
        for s in (s for s in series if s["panel"] == panel):
            ax.set_prop_cycle(color=[colours[s["colour"]]])
            _band(ax, s["bits"], s["mean"], s["low"], s["high"], s["base"])
        _ceiling_lines(ax, [c for c in ceilings if c.get("panel", panel) == panel])
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(alpha=0.3)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)  # one entry per label, however many panels draw it
    axes[0][0].set_ylabel(ylabel, fontsize=8)
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.95))
    fig.suptitle(f"{title}; one panel per {', '.join(sorted({p.split('=')[0] for p in panels}))}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _natural(text: str) -> list:
    """'train.steps=500' before 'train.steps=1000': numbers compare as numbers."""
    return [(0, float(part), "") if re.fullmatch(r"-?\d+(?:\.\d+)?", part) else (1, 0.0, part)
            for part in re.split(r"(-?\d+(?:\.\d+)?)", text) if part]
