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


# ---- a step-budget study: the same configurations at two budgets, read back from the figures ----


def _budget_runs(root):
    import json

    for steps in (1000, 2000):
        for quantizer in ("gsq", "vq", "identity"):
            for seed in range(2):
                run = root / f"{quantizer}-{steps}-seed{seed}"
                run.mkdir(parents=True)
                metric = {"status": "ok", "value": 25.0 + steps / 1000 + seed / 10, "reason": "", "protocol": {},
                          "extras": {}, "higher_is_better": True, "heading": "PSNR (dB)", "unit": "dB", "format": ""}
                record = {"schema": 1, "metrics": {"psnr": metric},
                          "run": {"quantizer": quantizer, "options": {"dim": 4}, "recipe": "r", "recipe_hash": f"h{steps}",
                                  "config_hash": f"{quantizer}-{steps}", "seed": seed, "status": "ok", "reason": "",
                                  "sweep": {"name": "budget", "file": "none.toml", "point": {"train.steps": steps}}},
                          "model": {"bits_per_position": 10.0, "continuous": quantizer == "identity"},
                          "train": {"wall_time_s": 1.0}}
                (run / "metrics.json").write_text(json.dumps(record))
                (run / "log.csv").write_text("step,loss,heldout_psnr\n100,0.5,\n200,0.4,24.0\n300,0.3,25.0\n")


def _legend_texts(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [text.get_text() for legend in legends for text in legend.get_texts()]


def test_budgets_get_panels_and_no_legend_repeats_an_entry(monkeypatch, tmp_path):
    from qbench.report import figures
    from qbench.report.tables import build_report

    _budget_runs(tmp_path / "runs")
    drawn = {}

    def keep(fig, path):
        drawn[path.name] = (_legend_texts(fig), [ax.get_title() for ax in fig.axes if ax.get_visible()])
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    report = build_report([tmp_path / "runs"])
    figures.table_figures(report.runs, report.metrics, tmp_path, "t")
    assert {"t-rd-psnr.png", "t-curves.png", "t-heldout-psnr.png"} <= set(drawn)
    for name, (texts, _) in drawn.items():
        assert texts and len(texts) == len(set(texts)), (name, texts)
    texts, titles = drawn["t-rd-psnr.png"]
    assert titles == ["train.steps=1000", "train.steps=2000"]  # one panel per budget, in order
    assert any("[train.steps=2000] (ceiling" in t for t in texts) and len(texts) == 2 + 2  # 2 quantizers, 2 ceilings
    for name in ("t-curves.png", "t-heldout-psnr.png"):  # both budgets of each configuration, told apart
        assert sum("gsq" in t for t in drawn[name][0]) == 2
        assert any("[train.steps=1000]" in t for t in drawn[name][0])
