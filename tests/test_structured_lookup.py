"""The exact d = 1 (sign) and d = 2 (sorted angle) searches give the brute-force codes, ties included."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from qbench import _circle_lookup
from qbench.lookup import nearest_code


def _reference(x: torch.Tensor, book: torch.Tensor) -> torch.Tensor:
    """Dense brute force, written independently: score = float32 fma(u1, c1, u0 * c0), the rounding of
    the fused kernel and of BLAS's 2-term dot; first index of each row's maximum."""
    u, c = F.normalize(x.float(), dim=-1), F.normalize(book.float(), dim=-1)
    if x.shape[1] == 1:
        scores = u @ c.t()  # one product: exact for +-1 and 0
    else:
        exact = u[:, None, 1].double() * c[None, :, 1].double() + (u[:, None, 0] * c[None, :, 0]).double()
        scores = exact.float()  # rounds twice; the test data avoids float32 midpoints (checked below)
    best = scores.max(dim=1, keepdim=True).values
    index = torch.arange(book.shape[0]).expand_as(scores)
    return torch.where(scores == best, index, book.shape[0]).min(dim=1).values


def _circle(angles: torch.Tensor) -> torch.Tensor:
    return torch.stack([angles.cos(), angles.sin()], dim=1)


def _adversarial_circle():
    g = torch.Generator().manual_seed(3)
    grid = torch.linspace(-math.pi, math.pi, 65)  # both ends of the +-pi seam
    seam = torch.tensor([[-1.0, 0.0], [-1.0, -0.0], [-1.0, 1e-7], [-1.0, -1e-7]])
    book = torch.cat([_circle(grid), _circle(grid[:9]), seam, torch.zeros(3, 2), _circle(grid[20:30]) * 5.0])
    between = _circle((grid[:-1] + grid[1:]) / 2)  # exactly between two codes (up to float32)
    x = torch.cat([between, book, 2.5 * book, torch.zeros(3, 2), torch.tensor([[1e-40, 0.0], [0.0, -1e-39]]),
                   torch.randn(300, 2, generator=g)])
    return x, book


def _cases():
    g = torch.Generator().manual_seed(0)
    yield "random", torch.randn(500, 2, generator=g), torch.randn(3000, 2, generator=g)
    yield "adversarial", *_adversarial_circle()
    yield "grid", torch.randn(800, 2, generator=g).mul(16).round(), torch.randn(4000, 2, generator=g).mul(16).round()
    yield "dense", torch.randn(300, 2, generator=g), _circle(torch.rand(2**16, generator=g) * 2e-2)
    yield "one side", torch.tensor([[-1.0, 0.0], [-1.0, 1e-3], [0.0, 1.0], [0.3, -1.0]]), \
        torch.tensor([[1.0, 0.0], [1.0, 1e-3], [0.0, 0.0], [1.0, 0.0]])
    yield "all duplicates", torch.randn(50, 2, generator=g), torch.tensor([[0.6, 0.8]]).repeat(300, 1)


@pytest.mark.parametrize("name,x,book", list(_cases()), ids=[c[0] for c in _cases()])
def test_circle_search_equals_brute_force(name, x, book):
    got = nearest_code(x, book, normalize=True)
    assert torch.equal(got, _reference(x, book))
    eager = nearest_code(x, book, normalize=True, structured=False, fused=False)
    assert (got == eager).float().mean() > 0.95  # BLAS rounds a few near-ties its own way (see docs)


def test_circle_search_runs_without_brute_force_on_unit_rows():
    g = torch.Generator().manual_seed(1)
    x, book = torch.randn(400, 2, generator=g), torch.randn(5000, 2, generator=g)
    called = []
    u, c = F.normalize(x, dim=1), F.normalize(book, dim=1)  # normalised once, as nearest_code does
    got = _circle_lookup.circle_nearest(u, c, lambda rows: called.append(rows) or torch.zeros(len(rows)))
    assert got is not None and not called
    assert torch.equal(got, _reference(x, book))


def test_nearest_angle_alone_is_not_brute_force():
    # why candidates are re-scored: at V = 2^16 on an arc, several codes round to the top score
    g = torch.Generator().manual_seed(2)
    x, book = torch.randn(300, 2, generator=g), _circle(torch.rand(2**16, generator=g) * 2e-2)
    angle = lambda t: torch.atan2(t[:, 1].double(), t[:, 0].double())  # noqa: E731
    gap = (angle(x)[:, None] - angle(book)[None, :]).remainder(2 * math.pi)
    nearest_angle = torch.minimum(gap, 2 * math.pi - gap).argmin(dim=1)
    assert not torch.equal(nearest_angle, _reference(x, book))


def test_fma_score_rounds_once():
    g = torch.Generator().manual_seed(4)
    u0, u1, c0, c1 = (torch.randn(20000, generator=g) for _ in range(4))
    got = _circle_lookup.fma_score(u0, u1, c0, c1)
    # exact rational reference through float64 pairs: p + q computed exactly with Fraction on a sample
    from fractions import Fraction

    for i in range(0, 20000, 97):
        exact = Fraction(float(u1[i])) * Fraction(float(c1[i])) + Fraction(float((u0[i] * c0[i]).item()))
        down = torch.tensor(float(exact), dtype=torch.float64).float()
        candidates = [down, torch.nextafter(down, torch.tensor(math.inf)), torch.nextafter(down, torch.tensor(-math.inf))]
        best = min(candidates, key=lambda v: (abs(Fraction(float(v)) - exact), int(v.view(torch.int32)) & 1))
        assert float(got[i]) == float(best)


def test_preconditions_fall_back_to_brute_force():
    g = torch.Generator().manual_seed(5)
    x, book = torch.randn(100, 2, generator=g), torch.randn(300, 2, generator=g)
    assert _circle_lookup.circle_nearest(x, book, None) is None  # codes not unit: refused
    book_nan = F.normalize(book, dim=1)
    book_nan[3] = float("nan")
    assert _circle_lookup.circle_nearest(F.normalize(x, dim=1), book_nan, None) is None
    assert _circle_lookup.sign_nearest(torch.ones(3, 1), torch.tensor([[0.5], [1.0]])) is None
    # unnormalised lookups below the fused size never take a structured path: plain brute force
    assert torch.equal(nearest_code(x, book), nearest_code(x, book, structured=False))


@pytest.mark.parametrize(
    "book",
    [[[0.3], [-2.0], [0.0], [5.0]], [[-1.0], [-3.0]], [[2.0], [0.0]], [[0.0], [0.0]], [[-0.0], [4.0], [-1.0]]],
)
def test_sign_search_equals_brute_force(book):
    book = torch.tensor(book)
    x = torch.tensor([[1.0], [-1.0], [0.0], [-0.0], [1e-30], [-1e-42], [7.0], [-3.0]])
    got = nearest_code(x, book, normalize=True)
    assert torch.equal(got, _reference(x, book))
    assert torch.equal(got, nearest_code(x, book, normalize=True, structured=False, fused=False))


def test_sign_search_random():
    g = torch.Generator().manual_seed(6)
    book = torch.randint(-1, 2, (200, 1), generator=g).float() * torch.rand(200, 1, generator=g)
    x = torch.randint(-1, 2, (500, 1), generator=g).float() * torch.randn(500, 1, generator=g)
    assert torch.equal(nearest_code(x, book, normalize=True), _reference(x, book))


@pytest.mark.parametrize("size,rows,tokens,shared", [(2**18, 2048, 16, True), (2**18, 2048, 8, False), (4096, 50, 3, True)])
def test_usage_stats_for_a_large_codebook_equal_the_dense_histogram(size, rows, tokens, shared):
    # at V = 2^18 the step's usage statistics skip the dense (T, V) histogram; the values must not change
    from qbench.codebook import code_histogram, perplexity, usage, usage_stats

    g = torch.Generator().manual_seed(7)
    codes = torch.randint(0, size, (rows, tokens), generator=g) // 5  # repeated codes, most of V unused
    got = usage_stats(codes, size, shared)
    per = code_histogram(codes, size, shared=False)
    pooled = code_histogram(codes, size, shared=True) if shared else per
    assert torch.equal(got["usage"], usage(pooled).mean().float())
    assert torch.equal(got["perplexity"], perplexity(pooled).mean().float())
    for t in range(tokens):
        assert torch.equal(got[f"usage/{t}"], usage(per)[t].float())
        assert torch.equal(got[f"perplexity/{t}"], perplexity(per)[t].float())


def test_without_a_compiler_the_lookup_warns_once_and_stays_exact(monkeypatch):
    from qbench import _fused_kernel

    def no_compiler():
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(_fused_kernel, "_load", no_compiler)
    monkeypatch.setattr(_fused_kernel, "_failed", False)
    g = torch.Generator().manual_seed(8)
    x, book = torch.randn(200, 6, generator=g), torch.randn(500, 6, generator=g)
    with pytest.warns(UserWarning, match="unavailable"):
        got = nearest_code(x, book, fused=True)
    assert torch.equal(got, nearest_code(x, book, fused=False))
    x2, book2 = torch.randn(300, 2, generator=g), torch.randn(2000, 2, generator=g)
    assert torch.equal(nearest_code(x2, book2, normalize=True, fused=True), _reference(x2, book2))  # tensor-op scan
