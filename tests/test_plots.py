"""Rate-distortion figures: a few curves share one panel, many get a panel each."""

import numpy as np
import pytest
from matplotlib.colors import to_hex

from qbench.report import plots


def _series(n):
    bits = np.array([6.0, 8.0, 10.0])
    return [{"label": f"q{i}", "bits": bits, "mean": bits + i, "low": bits + i - 0.5, "high": bits + i + 0.5}
            for i in range(n)]


@pytest.mark.parametrize("count, panels", [(3, 1), (plots.MAX_OVERLAID, 1), (5, 5), (8, 8)])
def test_rate_distortion_panels(monkeypatch, tmp_path, count, panels):
    drawn = {}

    def keep(fig, path):
        drawn["axes"] = [ax for ax in fig.axes if ax.get_visible()]
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    plots.rate_distortion(_series(count), "PSNR (dB)", tmp_path / "rd.png", "rd")
    axes = drawn["axes"]
    assert len(axes) == panels
    if panels > 1:  # each panel: its own curve with a band, the others as grey lines
        assert [ax.get_title() for ax in axes] == [f"q{i}" for i in range(count)]
        for ax in axes:
            assert len(ax.lines) == count and len(ax.collections) == 1
        assert len({ax.get_ylim() for ax in axes}) == 1  # shared axes, so panels compare by eye
        own = [to_hex(ax.lines[-1].get_color()) for ax in axes]
        grey = {to_hex(line.get_color()) for line in axes[0].lines[:-1]}
        assert len(set(own)) == count and not grey & set(own) and "#7f7f7f" not in own  # no curve in grey


def test_points_at_one_rate_share_one_panel(monkeypatch, tmp_path):
    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.setdefault("axes", fig.axes))
    lone = [{"label": f"q{i}", "bits": np.array([10.0]), "mean": np.array([20.0 + i]), "low": np.array([19.0 + i]),
             "high": np.array([21.0 + i])} for i in range(8)]
    plots.rate_distortion(lone, "PSNR (dB)", tmp_path / "rd.png", "rd")
    assert len(drawn["axes"]) == 1


def test_rate_distortion_writes_a_png(tmp_path):
    path = plots.rate_distortion(_series(6), "PSNR (dB)", tmp_path / "rd.png", "rd")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
