"""Every registered quantizer against the contract (qbench.testing.check_quantizer),
plus the shared lookup and statistics against independent references."""

from __future__ import annotations

import math

import pytest
import torch

import qbench
from qbench import ConfigError
from qbench.codebook import code_histogram, perplexity, usage, usage_stats
from qbench.lookup import nearest_code
from qbench.quantizer import Quantizer
from qbench.testing import check_quantizer

# small options per built-in; a quantizer registered by anyone else runs with dim=8
VARIANTS = {
    "gsq": [
        dict(dim=8, groups=4, codebook_size=16),
        dict(dim=8, groups=2, codebook_size=16, shared_codebook=False),
        dict(dim=4, groups=2, codebook_size=8, init="uniform"),  # d = 2: l2 lookup off
        dict(dim=6, groups=1, codebook_size=32),
    ],
    "vq": [
        dict(dim=8, codebook_size=16),
        dict(dim=8, codebook_size=16, l2_lookup=True),
        dict(dim=8, codebook_size=16, ema_decay=0.9),
        dict(dim=8, codebook_size=16, dead_code_threshold=0.5),
    ],
    "rvq": [dict(dim=8, stages=3, codebook_size=8)],
    "fsq": [dict(dim=8, levels=[8, 5, 5, 5]), dict(dim=3, levels=[2, 3, 4])],
    "lfq": [dict(dim=6), dict(dim=4, bits=10), dict(dim=8, codebook_size=16, entropy_group_size=2)],
    "bsq": [dict(dim=6), dict(dim=4, bits=10), dict(dim=8, bits=6, entropy_group_size=3)],
    "simvq": [dict(dim=4, codebook_size=64), dict(dim=8, codebook_size=16, projection_bias=False)],
    "ibq": [
        dict(dim=4, codebook_size=64),
        dict(dim=8, codebook_size=16, entropy_weight=0.0),
        dict(dim=4, codebook_size=32, init="spherical"),
    ],
}


def _cases():
    for name in qbench.registries().quantizers.names():
        for options in VARIANTS.get(name, [dict(dim=8)]):
            yield pytest.param(name, options, id=f"{name}-" + ",".join(f"{k}={v}" for k, v in options.items()))


@pytest.mark.parametrize("name,options", list(_cases()))
def test_contract(name, options):
    check_quantizer(name, **options)


def test_every_builtin_is_covered():
    assert set(VARIANTS) <= set(qbench.registries().quantizers.names())


# -- the kit must be able to fail ---------------------------------------------------


class _NoStraightThrough(Quantizer):
    """A VQ that forgets the straight-through form: z gets no gradient."""

    def __init__(self):
        super().__init__()
        self.dim, self.codebook_size = 4, 8
        self.codebook = torch.nn.Parameter(torch.randn(8, 4))

    def encode(self, z):
        rows = z.permute(0, 2, 3, 1).reshape(-1, 4)
        return nearest_code(rows, self.codebook).view(*z.shape[:1], *z.shape[2:], 1)

    def decode(self, codes):
        return self.codebook[codes[..., 0]].permute(0, 3, 1, 2)

    def forward(self, z):
        codes = self.encode(z)
        z_q = self.decode(codes)
        return qbench.QuantizerOutput(z_q, codes, ((z_q - z.detach()) ** 2).mean(), self.code_stats(codes))


class _WrongStats(_NoStraightThrough):
    def forward(self, z):
        out = super().forward(z)
        z_q = z + (out.z_q - z).detach()
        return out._replace(z_q=z_q, stats={"extra": torch.ones(3)})  # not a scalar


def test_kit_rejects_missing_straight_through():
    with pytest.raises(AssertionError, match="gradient"):
        check_quantizer(_NoStraightThrough())


def test_kit_rejects_stats_that_are_not_detached_scalars():
    with pytest.raises(AssertionError, match="stats"):
        check_quantizer(_WrongStats())


# -- chunked lookup against brute force ------------------------------------------------


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("chunk_bytes", [4, 256, 4096, 2**24])  # 1 score per block .. all at once
def test_nearest_code_equals_dense_search(normalize, chunk_bytes):
    torch.manual_seed(0)
    x, book = torch.randn(300, 5, dtype=torch.float64), torch.randn(37, 5, dtype=torch.float64)
    if normalize:
        xr, br = x / x.norm(dim=1, keepdim=True), book / book.norm(dim=1, keepdim=True)
    else:
        xr, br = x, book
    dense = ((xr[:, None, :] - br[None]) ** 2).sum(-1)  # float64 brute force, every distance
    got = nearest_code(x.float(), book.float(), normalize=normalize, max_chunk_bytes=chunk_bytes)
    assert got.dtype == torch.int64 and got.shape == (300,)
    assert torch.equal(got, dense.argmin(dim=1))


def test_nearest_code_runs_float32_under_autocast():
    torch.manual_seed(1)
    x, book = torch.randn(64, 3), torch.randn(1000, 3)
    expected = nearest_code(x, book)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert torch.equal(nearest_code(x, book), expected)
        assert torch.equal(nearest_code(x.bfloat16(), book), nearest_code(x.bfloat16().float(), book))


def test_nearest_code_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="codebook"):
        nearest_code(torch.zeros(3, 4), torch.zeros(5, 3))


# -- usage and perplexity on a known histogram ------------------------------------------


def test_usage_stats_by_hand():
    # 2 tokens, V = 4: token 0 uses codes {0, 0, 1, 1}, token 1 uses {3, 3, 3, 3}
    codes = torch.tensor([[0, 3], [0, 3], [1, 3], [1, 3]]).view(1, 2, 2, 2)
    shared = usage_stats(codes, 4, shared=True)
    # pooled histogram [2, 2, 0, 4] over 8 tokens
    assert float(shared["usage"]) == pytest.approx(100 * 3 / 4)
    p = torch.tensor([2, 2, 4]) / 8
    assert float(shared["perplexity"]) == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-6)
    assert float(shared["usage/0"]) == pytest.approx(100 * 2 / 4)
    assert float(shared["perplexity/0"]) == pytest.approx(2.0)
    assert float(shared["usage/1"]) == pytest.approx(100 * 1 / 4)
    assert float(shared["perplexity/1"]) == pytest.approx(1.0)
    separate = usage_stats(codes, 4, shared=False)
    assert float(separate["usage"]) == pytest.approx(100 * (2 / 4 + 1 / 4) / 2)
    assert float(separate["perplexity"]) == pytest.approx((2.0 + 1.0) / 2)
    # the same numbers as the metric helpers give
    assert float(usage(code_histogram(codes, 4)).item()) == pytest.approx(100 * 3 / 4)
    assert float(perplexity(code_histogram(codes, 4, shared=False))[0]) == pytest.approx(2.0)


def test_single_token_stats_have_no_per_token_entries():
    stats = usage_stats(torch.tensor([0, 1, 1, 2]).view(1, 2, 2, 1), 8)
    assert set(stats) == {"usage", "perplexity"}


# -- configuration errors before any tensor is made --------------------------------------

BAD_OPTIONS = [
    ("gsq", dict(dim=10, groups=4), "not divisible"),
    ("gsq", dict(dim=8, codebook_size=1), "codebook_size"),
    ("gsq", dict(dim=8, init="gaussian"), "init"),
    ("gsq", dict(dim=8, l2_lookup="yes"), "l2_lookup"),
    ("gsq", dict(dim=8, beta=-1), "beta"),
    ("gsq", dict(dim=0), "dim"),
    ("vq", dict(dim=8, codebook_size=0), "codebook_size"),
    ("vq", dict(dim=8, ema_decay=1.0), "ema_decay"),
    ("vq", dict(dim=8, dead_code_threshold=-1), "dead_code_threshold"),
    ("rvq", dict(dim=8, stages=0), "stages"),
    ("rvq", dict(dim=8, codebook_size=1), "codebook_size"),
    ("fsq", dict(dim=4, levels=[]), "levels"),
    ("fsq", dict(dim=4, levels=[8, 1]), "level"),
    ("fsq", dict(dim=4, levels=[8, 2.5]), "level"),
    ("fsq", dict(dim=4, levels="8555"), "levels"),
    ("lfq", dict(dim=4, codebook_size=1000), "power of 2"),
    ("lfq", dict(dim=4, bits=10, codebook_size=512), "disagree"),
    ("lfq", dict(dim=4, bits=0), "bits"),
    ("lfq", dict(dim=4, bits=10, entropy_group_size=3), "does not divide"),
    ("lfq", dict(dim=4, inv_temperature=0), "inv_temperature"),
    ("lfq", dict(dim=4, entropy_weight=-0.1), "entropy_weight"),
    ("bsq", dict(dim=4, codebook_size=3), "power of 2"),
    ("bsq", dict(dim=4, commitment_weight="a"), "commitment_weight"),
    ("simvq", dict(dim=4, codebook_size=1), "codebook_size"),
    ("simvq", dict(dim=4, projection_bias="yes"), "projection_bias"),
    ("ibq", dict(dim=4, codebook_size=0), "codebook_size"),
    ("ibq", dict(dim=4, diversity_gamma=-1), "diversity_gamma"),
    ("ibq", dict(dim=4, init="sphere"), "init"),
]


@pytest.mark.parametrize("name,options,message", BAD_OPTIONS)
def test_invalid_options_raise_config_error_before_tensors(name, options, message, monkeypatch):
    made = []
    for factory in ("empty", "randn", "zeros", "ones", "tensor"):
        original = getattr(torch, factory)
        monkeypatch.setattr(torch, factory, lambda *a, _f=original, **k: made.append(1) or _f(*a, **k))
    with pytest.raises(ConfigError, match=message):
        qbench.registries().quantizers.create(name, **options)
    assert not made, "a tensor was made before the configuration error"


def test_wrong_latent_shape_is_a_config_error():
    q = qbench.registries().quantizers.create("gsq", dim=8, groups=2, codebook_size=4)
    with pytest.raises(ConfigError, match=r"\(B, 8, h, w\)"):
        q(torch.randn(1, 6, 2, 2))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_codes_with_the_wrong_token_count_are_a_config_error_naming_the_quantizer(name):
    q = qbench.registries().quantizers.create(name, **VARIANTS[name][0])
    codes = q.encode(torch.randn(2, q.dim, 3, 3))
    tokens = q.tokens_per_position
    assert codes.shape == (2, 3, 3, tokens)
    assert q.decode(codes).shape == (2, q.dim, 3, 3)
    wrong = torch.cat([codes, codes[..., :1]], dim=-1)
    with pytest.raises(ConfigError, match=rf"^{name}: codes carry {tokens + 1} tokens per position, expected {tokens}$"):
        q.decode(wrong)
    with pytest.raises(ConfigError, match=rf"^{name} expects codes of shape \(B, h, w, {tokens}\), got \(2, 3, 3\)$"):
        q.decode(codes[..., 0])


@pytest.mark.slow
@pytest.mark.parametrize("d", [1, 3, 4, 8, 16, 20])
def test_fused_lookup_finds_the_nearest_code(d):
    # compiles the C++ kernel once (cached on disk); near-ties may break differently from the
    # matmul path, so compare distances, not indices
    torch.manual_seed(0)
    x, book = torch.randn(1500, d), torch.randn(70001, d)  # > 1 row chunk, > 1 code chunk, a padded tail
    got = nearest_code(x, book, fused=True)
    dist = torch.cdist(x.double(), book.double()).square()
    best = dist.min(dim=1).values
    # scores x.c - |c|^2 / 2 round at ~1e-6 in float32: squared distances closer than that are ties
    assert torch.allclose(dist.gather(1, got[:, None]).squeeze(1), best, atol=1e-5)
    if d > 1:  # at d = 1, 70k codes on a line: most rows have codes within float32 rounding of each other
        assert (got == dist.argmin(dim=1)).float().mean() > 0.99
    ties = nearest_code(x[:20], torch.cat([book[:5], book[:5]]), fused=True)  # duplicated codes: the first
    assert bool((ties < 5).all())


@pytest.mark.slow
def test_compiled_circle_search_equals_fused_brute_force():
    g = torch.Generator().manual_seed(0)
    x, book = torch.randn(4000, 2, generator=g), torch.randn(2**16, 2, generator=g)
    book[100:200] = book[:100]  # duplicates
    book[300] = 0.0  # a zero code
    book[301] = torch.tensor([-1.0, 0.0])  # on the seam
    structured = nearest_code(x, book, normalize=True, fused=True)
    tensor_ops = nearest_code(x, book, normalize=True, fused=False)
    brute = nearest_code(x, book, normalize=True, fused=True, structured=False)
    assert torch.equal(structured, brute) and torch.equal(tensor_ops, brute)


@pytest.mark.parametrize(
    "name,options",
    [
        ("gsq", dict(dim=8, groups=2, codebook_size=64)),
        ("vq", dict(dim=8, codebook_size=64)),
        ("rvq", dict(dim=8, stages=2, codebook_size=16)),
        ("fsq", dict(dim=4, levels=[8, 5, 5, 5])),
        ("lfq", dict(dim=4, bits=10)),
        ("bsq", dict(dim=4, bits=10)),
        ("simvq", dict(dim=4, codebook_size=256)),
        ("ibq", dict(dim=4, codebook_size=256)),
    ],
)
def test_lookup_is_float32_under_bf16_autocast(name, options):
    torch.manual_seed(0)
    q = qbench.registries().quantizers.create(name, **options).eval()
    z = torch.randn(2, options["dim"], 8, 8)
    expected = q(z)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = q(z)
    assert torch.equal(got.codes, expected.codes)
    assert got.loss.dtype == torch.float32
    assert torch.allclose(got.z_q.float(), expected.z_q, atol=1e-6)


def test_the_old_registries_keyword_of_the_checks_still_works_with_a_warning():
    from qbench.testing import check_metric

    with pytest.warns(FutureWarning, match="now regs="):
        check_quantizer("gsq", registries=qbench.registries(), dim=8, groups=2, codebook_size=8)
    regs = qbench.registries()
    with pytest.warns(FutureWarning, match="now regs="):
        old = check_metric("psnr", registries=regs)
    assert old == check_metric("psnr", regs=regs) and set(old) == {"value", "image_sd", "standard_error"}
