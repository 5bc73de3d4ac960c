"""evaluate(): one pass, statuses, DDP reduction over two gloo ranks, offline defaults."""

from __future__ import annotations

import json
import math
import os
import types

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import qbench
from qbench import QuantizerOutput
from qbench.engine.evaluate import check_metrics, evaluate, to_uint8
from qbench.platform.registry import Registry
from qbench.specs import MetricSpec


class StandInQuantizer:
    codebook_size = 8
    tokens_per_position = 3
    bits_per_position = 9.0
    codebook_shared = True


class StandInTokenizer(torch.nn.Module):
    """Not a learned model: 4x4 average pooling, each channel rounded to 8 levels."""

    def __init__(self):
        super().__init__()
        self.quantizer = StandInQuantizer()

    def encode(self, x):
        pooled = torch.nn.functional.avg_pool2d(x, 4)  # (B, 3, h, w) in [-1, 1]
        return ((pooled + 1) / 2 * 7).round().long().permute(0, 2, 3, 1)  # (B, h, w, 3)

    def decode(self, codes):
        values = codes.permute(0, 3, 1, 2).float() / 7 * 2 - 1
        return torch.nn.functional.interpolate(values, scale_factor=4, mode="nearest")

    def forward(self, x):
        codes = self.encode(x)
        return self.decode(codes), QuantizerOutput(None, codes, torch.zeros(()), {})


def dataset(n=11, size=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8) for _ in range(n)]


CHEAP = ["psnr", "ssim", "usage", "perplexity", "bits", "throughput"]


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_evaluate_scores_every_metric_in_one_pass(empty_torch_home):
    data = dataset()
    tok = StandInTokenizer()
    out = evaluate(tok, data, CHEAP + ["rfid", "lpips"], batch_size=4, progress=False)
    assert list(out) == CHEAP + ["rfid", "lpips"]
    for name in CHEAP:
        assert out[name]["status"] == "ok", out[name]
        assert isinstance(out[name]["value"], float)
        assert out[name]["protocol"]["num_images"] == 11
    # independent PSNR: reconstruct by hand, numpy formula per image, mean over images
    x = torch.stack(data)
    recon = to_uint8(tok.decode(tok.encode(x.float() / 127.5 - 1)))
    mse = ((x.double() - recon.double()) / 255).pow(2).flatten(1).mean(1).numpy()
    assert out["psnr"]["value"] == pytest.approx(np.mean(10 * np.log10(1 / mse)), abs=1e-9)
    codes = tok.encode(x.float() / 127.5 - 1)
    assert out["usage"]["value"] == pytest.approx(100 * len(codes.unique()) / 8)
    assert out["bits"]["extras"]["bits_per_image"] == 9.0 * 16
    assert out["psnr"]["higher_is_better"] is True and out["psnr"]["unit"] == "dB"
    assert out["psnr"]["heading"] == "PSNR (dB)" and out["psnr"]["format"] == ""  # what report tables show
    # without weights: unavailable with the reason, never a number
    for name in ("rfid", "lpips"):
        assert out[name]["status"] == "unavailable"
        assert out[name]["value"] is None
        assert "qbench weights" in out[name]["reason"]


def test_batch_size_and_max_images_do_not_change_the_protocol_values():
    data = dataset(n=9)
    small = evaluate(StandInTokenizer(), data, ["psnr", "ssim"], batch_size=2, progress=False)
    large = evaluate(StandInTokenizer(), data, ["psnr", "ssim"], batch_size=64, progress=False)
    for name in ("psnr", "ssim"):
        assert small[name]["value"] == pytest.approx(large[name]["value"], rel=1e-12)
    first5 = evaluate(StandInTokenizer(), data, ["psnr"], max_images=5, progress=False)
    direct = evaluate(StandInTokenizer(), data[:5], ["psnr"], progress=False)
    assert first5["psnr"]["value"] == direct["psnr"]["value"]
    assert first5["psnr"]["protocol"]["num_images"] == 5


def test_a_raising_metric_is_failed_and_the_others_go_on():
    regs = qbench.registries()
    broken = MetricSpec(name="broken", factory="qbench.metric:Metric", higher_is_better=True)
    metrics = Registry("metric", [*regs.metrics, broken])
    out = evaluate(
        StandInTokenizer(), dataset(n=4), ["broken", "psnr"], regs=types.SimpleNamespace(metrics=metrics),
        progress=False,
    )
    assert out["broken"]["status"] == "failed"
    assert "NotImplementedError" in out["broken"]["reason"] and out["broken"]["value"] is None
    assert out["psnr"]["status"] == "ok"


def test_unknown_metric_and_bad_items_are_user_errors():
    with pytest.raises(qbench.ConfigError, match="did you mean 'psnr'"):
        evaluate(StandInTokenizer(), dataset(n=2), ["psnrr"], progress=False)
    with pytest.raises(qbench.ConfigError, match=r"uint8 \(3, H, W\)"):
        evaluate(StandInTokenizer(), [torch.zeros(3, 16, 16)], ["psnr"], progress=False)


def test_check_metrics_names_what_is_unavailable(empty_torch_home):
    reasons = check_metrics(["psnr", "rfid", "lpips", "usage"])
    assert set(reasons) == {"rfid", "lpips"}
    assert "weights-inception-2015-12-05-6726825d.pth" in reasons["rfid"]
    assert check_metrics(["psnr", "ssim"]) == {}


# ---- two gloo ranks -------------------------------------------------------------------------


def _rank_worker(rank, init_file, out_dir):
    torch.set_num_threads(1)  # two ranks on a shared 2-core machine
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        out = evaluate(StandInTokenizer(), dataset(), CHEAP, batch_size=3, progress=False)
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump(out, fh)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("sparse", [False, True])
def test_two_gloo_ranks_reduce_to_the_single_process_result(tmp_path, monkeypatch, sparse):
    if sparse:  # code counts kept as keyed (sparse) states, gathered rather than summed
        from qbench_builtins.metrics import codes

        monkeypatch.setattr(codes, "DENSE_LIMIT", 0)
    # fork: the children inherit the imported modules instead of importing torch again
    mp.start_processes(
        _rank_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True, start_method="fork"
    )
    single = evaluate(StandInTokenizer(), dataset(), CHEAP, batch_size=3, progress=False)
    for rank in (0, 1):
        ranked = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for name in ("psnr", "ssim", "usage", "perplexity", "bits"):
            assert ranked[name]["status"] == "ok"
            assert ranked[name]["value"] == pytest.approx(single[name]["value"], rel=1e-12), name
            assert ranked[name]["protocol"]["num_images"] == 11
        assert ranked["usage"]["extras"]["per_token"] == pytest.approx(single["usage"]["extras"]["per_token"])
        assert math.isfinite(ranked["throughput"]["value"])


# ---- the default run without weights --------------------------------------------------------


def test_run_without_weights_reports_rfid_and_lpips_unavailable(tmp_path, empty_torch_home):
    runner = pytest.importorskip("qbench.comparison.runner")
    if not hasattr(runner, "run_comparison"):
        pytest.skip("the training runner is not in this checkout yet")
    from conftest import run_cli

    # the smoke recipe keeps this test short; the metric list is the default one's
    proc = run_cli(
        "run", "--recipe", "smoke", "--quantizers", "vq", "--out", str(tmp_path / "runs"), "--no-progress",
        "--set", "eval.metrics=psnr,ssim,lpips,rfid,usage,perplexity,bits,throughput",
        "--set", "data.image_size=32",  # LPIPS' AlexNet takes 31x31 and up
        env={"TORCH_HOME": str(empty_torch_home)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    records = list((tmp_path / "runs").rglob("metrics.json"))
    assert len(records) == 1
    metrics = json.loads(records[0].read_text())["metrics"]
    for name in ("rfid", "lpips"):
        assert metrics[name]["status"] == "unavailable" and metrics[name]["value"] is None
    assert metrics["psnr"]["status"] == "ok"
    strict = run_cli(
        "run", "--recipe", "smoke", "--quantizers", "vq", "--out", str(tmp_path / "strict"), "--strict-metrics",
        "--set", "eval.metrics=psnr,lpips,rfid", "--set", "data.image_size=32",
        env={"TORCH_HOME": str(empty_torch_home)},
    )
    assert strict.returncode == 2 and "weights" in strict.stderr
    assert not (tmp_path / "strict").exists() or not list((tmp_path / "strict").rglob("*.pt"))


class _NoCodebookQuantizer:
    codebook_size = None
    tokens_per_position = 0
    bits_per_position = 0.0
    codebook_shared = True


class _NoTokensTokenizer(StandInTokenizer):
    """Like an identity quantizer: zero tokens per position, no codebook."""

    def __init__(self):
        super().__init__()
        self.quantizer = _NoCodebookQuantizer()

    def encode(self, x):
        return torch.zeros(x.shape[0], x.shape[2] // 4, x.shape[3] // 4, 0, dtype=torch.int64)

    def decode(self, codes):
        return torch.zeros(codes.shape[0], 3, codes.shape[1] * 4, codes.shape[2] * 4)


def test_usage_of_a_quantizer_without_tokens_or_codebook_is_absent_not_a_crash():
    from qbench.engine.code_counts import CodeCounts

    observers = {"codes": CodeCounts()}
    out = evaluate(_NoTokensTokenizer(), dataset(), ["psnr", "usage", "perplexity"], batch_size=4, progress=False,
                   observers=observers)
    assert out["psnr"]["status"] == "ok"
    for name in ("usage", "perplexity"):
        assert out[name]["status"] == "unavailable" and out[name]["value"] is None
        assert "no codebook" in out[name]["reason"]
    assert observers == {}  # no histogram for the loggers either
