"""Built-in metrics against independent references: scikit-image, lpips, hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import qbench
from qbench.metric import EvalBatch, merge_states
from qbench.testing import check_metric
from qbench_builtins.metrics import PSNR, SSIM, Bits, CodebookUsage, LPIPSMetric, Perplexity, Throughput


class Quantizer:
    def __init__(self, codebook_size, tokens, bits, shared):
        self.codebook_size = codebook_size
        self.tokens_per_position = tokens
        self.bits_per_position = bits
        self.codebook_shared = shared


class Tokenizer:
    def __init__(self, **kwargs):
        self.quantizer = Quantizer(**kwargs)


def batch_of(originals, reconstructions, codes=None, tokenizer=None, **kwargs):
    if codes is None:
        codes = torch.zeros(originals.shape[0], 1, 1, 1, dtype=torch.long)
    return EvalBatch(originals, reconstructions, codes, tokenizer, **kwargs)


def random_pairs(n=6, size=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)
    y = (x.long() + torch.randint(-40, 41, x.shape, generator=gen)).clamp(0, 255).to(torch.uint8)
    return x, y


def photo_pairs():
    """Crops of two photos shipped inside scikit-image, against a degraded copy."""
    crops = [skdata.astronaut()[100:164, 180:244], skdata.chelsea()[80:144, 150:214]]
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    blurred = torch.nn.functional.avg_pool2d(x.float(), 3, stride=1, padding=1, count_include_pad=False)
    y = (blurred + 6 * torch.randn(blurred.shape, generator=torch.Generator().manual_seed(1))).round()
    return x, y.clamp(0, 255).to(torch.uint8)


def as_hwc01(images):
    return images.permute(0, 2, 3, 1).double().numpy() / 255.0


@pytest.mark.parametrize("pairs", [random_pairs, photo_pairs], ids=["random", "photos"])
def test_psnr_and_ssim_equal_scikit_image(pairs):
    x, y = pairs()
    psnr, ssim = PSNR(), SSIM()
    for i in range(0, len(x), 4):  # several batches: the mean is over images, not batches
        psnr.update(batch_of(x[i : i + 4], y[i : i + 4]))
        ssim.update(batch_of(x[i : i + 4], y[i : i + 4]))
    xs, ys = as_hwc01(x), as_hwc01(y)
    ref_psnr = np.mean([peak_signal_noise_ratio(a, b, data_range=1) for a, b in zip(xs, ys)])
    ref_ssim = np.mean(
        [
            structural_similarity(
                a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
            )
            for a, b in zip(xs, ys)
        ]
    )
    assert psnr.compute()["value"] == pytest.approx(ref_psnr, abs=1e-4)
    assert ssim.compute()["value"] == pytest.approx(ref_ssim, abs=1e-4)
    assert 0.05 < ref_ssim < 0.99  # a real, non-trivial comparison


@pytest.mark.parametrize("metric_class", [PSNR, SSIM])
def test_spread_over_images_equals_numpy_whole_and_in_shards(metric_class):
    """image_sd and standard_error (the evaluation noise) from the sums equal numpy on the per-image scores."""
    x, y = random_pairs(n=9, size=16, seed=3)
    per_image = metric_class().per_image(batch_of(x, y)).numpy()
    whole, first, second = metric_class(), metric_class(), metric_class()
    whole.update(batch_of(x, y))
    first.update(batch_of(x[:4], y[:4]))
    second.update(batch_of(x[4:], y[4:]))
    merged = metric_class()
    merged.load_state(merge_states([first.state(), second.state()]))
    sd = np.std(per_image, ddof=1)
    assert sd > 0
    for metric in (whole, merged):
        out = metric.compute()
        assert out["image_sd"] == pytest.approx(sd, rel=1e-9)
        assert out["standard_error"] == pytest.approx(sd / math.sqrt(len(per_image)), rel=1e-9)


def test_one_image_has_a_mean_but_no_spread():
    x, y = random_pairs(n=1)
    psnr = PSNR()
    psnr.update(batch_of(x, y))
    assert set(psnr.compute()) == {"value"}


def test_psnr_of_identical_images_is_capped_not_infinite():
    x, _ = random_pairs(n=2)
    psnr = PSNR()
    psnr.update(batch_of(x, x))
    assert psnr.compute()["value"] == pytest.approx(100.0)


def test_ssim_rejects_images_smaller_than_the_window():
    x, y = random_pairs(n=1, size=8)
    with pytest.raises(qbench.ConfigError, match="at least 11x11"):
        SSIM().update(batch_of(x, y))


def test_lpips_equals_direct_lpips_call_with_random_backbone():
    import lpips

    torch.manual_seed(0)
    network = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    metric = LPIPSMetric.from_network(network)
    x, y = random_pairs(n=5, size=32)
    metric.update(batch_of(x[:3], y[:3]))
    metric.update(batch_of(x[3:], y[3:]))
    with torch.no_grad():  # independent scaling path: lpips maps [0, 1] to [-1, 1] itself
        direct = network(x.float() / 255, y.float() / 255, normalize=True).mean().item()
    assert metric.compute()["value"] == pytest.approx(direct, rel=1e-5)
    assert metric.compute()["value"] > 0


def test_lpips_rejects_unknown_backbone():
    with pytest.raises(qbench.ConfigError, match="alex, vgg"):
        LPIPSMetric(net="squeezenet")


def test_usage_and_perplexity_equal_hand_computation_shared_codebook():
    # 2 tokens per position, codebook of 8 shared by both tokens (GSQ groups)
    codes = torch.tensor([[[[0, 1], [1, 1]], [[2, 0], [0, 1]]]])  # (1, 2, 2, 2)
    tok = Tokenizer(codebook_size=8, tokens=2, bits=6.0, shared=True)
    usage, perp = CodebookUsage(), Perplexity()
    for metric in (usage, perp):
        metric.update(batch_of(*random_pairs(n=1, size=16), codes=codes, tokenizer=tok))
    # pooled counts: code0 x3, code1 x4, code2 x1 of 8 tokens -> 3 of 8 codes used
    p = np.array([3, 4, 1]) / 8
    assert usage.compute()["value"] == pytest.approx(100 * 3 / 8)
    assert perp.compute()["value"] == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    # per token: token0 = [0,1,2,0] -> codes {0,1,2}; token1 = [1,1,0,1] -> {0,1}
    assert usage.compute()["per_token"] == pytest.approx([100 * 3 / 8, 100 * 2 / 8])
    q0, q1 = np.array([2, 1, 1]) / 4, np.array([1, 3]) / 4
    expected = [math.exp(-(q * np.log(q)).sum()) for q in (q0, q1)]
    assert perp.compute()["per_token"] == pytest.approx(expected)


def test_usage_and_perplexity_average_over_separate_codebooks():
    codes = torch.tensor([[[[0, 3]], [[1, 3]]]])  # (1, 2, 1, 2): stage 0 uses {0,1}, stage 1 uses {3}
    tok = Tokenizer(codebook_size=4, tokens=2, bits=4.0, shared=False)
    usage, perp = CodebookUsage(), Perplexity()
    for metric in (usage, perp):
        metric.update(batch_of(*random_pairs(n=1, size=16), codes=codes, tokenizer=tok))
    assert usage.compute()["value"] == pytest.approx((50.0 + 25.0) / 2)
    assert perp.compute()["value"] == pytest.approx((2.0 + 1.0) / 2)


def test_bits_per_position_image_and_compression_ratio():
    tok = Tokenizer(codebook_size=1024, tokens=2, bits=20.0, shared=True)
    x, y = random_pairs(n=3, size=32)
    codes = torch.zeros(3, 8, 8, 2, dtype=torch.long)
    bits = Bits()
    bits.update(batch_of(x, y, codes=codes, tokenizer=tok))
    out = bits.compute()
    assert out["value"] == 20.0
    assert out["bits_per_image"] == 20.0 * 64
    assert out["compression_ratio"] == pytest.approx(24 * 32 * 32 / (20.0 * 64))


def test_throughput_from_timed_batches():
    metric = Throughput()
    x, y = random_pairs(n=4)
    metric.update(batch_of(x, y, encode_seconds=0.5, decode_seconds=0.25))
    metric.update(batch_of(x, y, encode_seconds=0.5, decode_seconds=0.75))
    out = metric.compute()
    assert out["encode_images_per_s"] == pytest.approx(8.0)
    assert out["decode_images_per_s"] == pytest.approx(8.0)
    assert out["value"] == pytest.approx(4.0)


def test_states_of_split_data_add_up_to_the_whole():
    x, y = random_pairs(n=8, size=16)
    whole, a, b = SSIM(), SSIM(), SSIM()
    whole.update(batch_of(x, y))
    a.update(batch_of(x[:3], y[:3]))
    b.update(batch_of(x[3:], y[3:]))
    merged = SSIM()
    merged.load_state(merge_states([a.state(), b.state()]))
    assert merged.compute()["value"] == pytest.approx(whole.compute()["value"], rel=1e-12)


@pytest.mark.parametrize("name", ["psnr", "ssim", "usage", "perplexity", "bits", "throughput"])
def test_builtin_metric_conformance(name):
    check_metric(name)


def test_metric_specs_declare_direction_and_unit():
    specs = {s.name: s for s in qbench.registries().metrics}
    assert specs["psnr"].higher_is_better is True and specs["psnr"].unit == "dB"
    assert specs["rfid"].higher_is_better is False and specs["lpips"].higher_is_better is False
    assert specs["usage"].unit == "%"
    assert specs["bits"].higher_is_better is None
