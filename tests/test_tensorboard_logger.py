"""The tensorboard logger: what a smoke run writes reads back with TensorBoard's own event reader."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorboard", reason="the tensorboard logger needs: pip install 'qbench[tensorboard]'")

from qbench import cli  # noqa: E402


def test_smoke_run_with_log_tensorboard_matches_log_csv_and_the_recon_grid(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    status = cli.main(["run", "--recipe", "smoke", "--quantizers", "gsq", "--log", "tensorboard",
                       "--set", "train.image_every=2", "--out", str(tmp_path), "--no-progress"])
    assert status == 0
    [run_dir] = (tmp_path / "smoke").iterdir()
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    events.Reload()

    with open(run_dir / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    for column in rows[0]:
        if column == "step":
            continue
        logged = [(e.step, e.value) for e in events.Scalars(f"train/{column}")]
        assert [s for s, _ in logged] == [2, 4, 6], column
        assert [v for _, v in logged] == pytest.approx([float(r[column]) for r in rows], rel=1e-6), column

    grids = events.Images("reconstructions")
    assert [g.step for g in grids] == [2, 4, 6]
    last = np.asarray(Image.open(io.BytesIO(grids[-1].encoded_image_string)).convert("RGB"))
    assert np.array_equal(last, np.asarray(Image.open(run_dir / "recon.png").convert("RGB")))

    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    for name in ("psnr", "usage", "perplexity", "bits"):
        [final] = events.Scalars(f"eval/{name}")
        assert (final.step, final.value) == (6, pytest.approx(metrics[name]["value"], rel=1e-6)), name

    [histogram] = events.Histograms("eval/codes")
    counts = np.asarray(histogram.histogram_value.bucket)
    assert histogram.step == 6 and len(counts) == 16  # one bucket per code of the 16
    assert counts.sum() == histogram.histogram_value.num == 32 * metrics["bits"]["extras"]["positions_per_image"]
    assert 100.0 * (counts > 0).mean() == pytest.approx(metrics["usage"]["value"])
    p = counts[counts > 0] / counts.sum()
    assert math.exp(-(p * np.log(p)).sum()) == pytest.approx(metrics["perplexity"]["value"])
