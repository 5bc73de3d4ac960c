"""The exact Euclidean grid search at d = 1 and 2 gives the fused brute force's codes, ties included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from qbench import _grid_lookup
from qbench.lookup import nearest_code


def _brute(x: torch.Tensor, book: torch.Tensor) -> torch.Tensor:
    return nearest_code(x, book, fused=True, structured=False)


def _exact(x: torch.Tensor, book: torch.Tensor) -> torch.Tensor:
    """Independent reference for small-integer data, where every score is exact in float64:
    argmin of the squared distance, the first index on a tie."""
    dist = (x.double()[:, None, :] - book.double()[None, :, :]).pow(2).sum(-1)
    best = dist.min(dim=1, keepdim=True).values
    index = torch.arange(book.shape[0]).expand_as(dist)
    return torch.where(dist == best, index, book.shape[0]).min(dim=1).values


def _cases():
    g = torch.Generator().manual_seed(0)
    for d in (1, 2):
        yield f"gaussian d{d}", torch.randn(3000, d, generator=g), torch.randn(5000, d, generator=g) * 0.5
        yield f"wide queries d{d}", torch.randn(2000, d, generator=g) * 50, torch.randn(4000, d, generator=g)
        yield f"duplicates d{d}", torch.randn(500, d, generator=g), torch.randn(40, d, generator=g).repeat(50, 1)
        dense = torch.randn(1, d, generator=g) + 1e-6 * torch.randn(3000, d, generator=g)  # one tight cluster
        yield f"cluster d{d}", torch.cat([dense[:200] + 1e-7, torch.randn(100, d, generator=g)]), \
            torch.cat([dense, torch.randn(500, d, generator=g)])
        yield f"one code d{d}", torch.randn(50, d, generator=g), torch.randn(1, d, generator=g)
        yield f"zeros d{d}", torch.cat([torch.zeros(5, d), torch.randn(20, d, generator=g)]), \
            torch.cat([torch.zeros(3, d), torch.randn(30, d, generator=g), torch.zeros(2, d)])
        yield f"tiny d{d}", torch.randn(300, d, generator=g) * 1e-30, torch.randn(400, d, generator=g) * 1e-30
    # GSQ's spherical init: +-1 at d = 1 (two distinct codes, each repeated), the unit circle at d = 2
    yield "plus minus one d1", torch.randn(800, 1, generator=g), torch.randn(4096, 1, generator=g).sign()
    yield "unit circle d2", torch.randn(800, 2, generator=g), F.normalize(torch.randn(4096, 2, generator=g), dim=1)
    # a trained GSQ codebook at d = 2: the untouched codes on one circle (shrunk alike by weight
    # decay), duplicates among them, a few codes moved off it, inside and outside
    ring = F.normalize(torch.randn(4000, 2, generator=g), dim=1) * 0.9994
    yield "ring with outliers d2", torch.cat([torch.randn(600, 2, generator=g), ring[:50] * 0.5, ring[50:80]]), \
        torch.cat([ring, ring[:100], torch.randn(300, 2, generator=g) * 0.3, F.normalize(torch.randn(100, 2, generator=g), dim=1) * 1.001])
    # crowded cells with some duplicates (the hashed de-duplication), signed zeros among them
    crowd = torch.randn(60, 2, generator=g) * 1e-3
    yield "crowded cells d2", torch.randn(400, 2, generator=g) * 1e-3, \
        torch.cat([crowd, crowd[:30], torch.tensor([[0.0, 0.0], [-0.0, 0.0], [0.0, -0.0]]), crowd.flip(0), torch.randn(40, 2, generator=g)])
    # a degenerate axis: every code on one vertical line, so one axis has no extent
    line = torch.stack([torch.full((3000,), 0.25), torch.randn(3000, generator=g)], dim=1)
    yield "one line d2", torch.randn(400, 2, generator=g), line
    yield "all codes equal d2", torch.randn(100, 2, generator=g), torch.tensor([[0.5, -1.0]]).repeat(700, 1)


@pytest.mark.parametrize("name,x,book", list(_cases()), ids=[c[0] for c in _cases()])
def test_grid_search_equals_brute_force(name, x, book):
    assert torch.equal(nearest_code(x, book, fused=True), _brute(x, book))


@pytest.mark.parametrize("d", [1, 2])
def test_ties_and_midpoints_on_integer_codes(d):
    # integer codes and half-integer queries: exact ties between two codes, and duplicated codes,
    # where the first index must win; every score is exact, so an independent reference applies
    g = torch.Generator().manual_seed(1)
    book = torch.randint(-20, 21, (3000, d), generator=g).float()
    x = torch.cat([torch.randint(-44, 45, (2000, d), generator=g).float() / 2, book[:300]])
    got = nearest_code(x, book, fused=True)
    assert torch.equal(got, _exact(x, book))
    assert torch.equal(got, _brute(x, book))


def test_near_ties_follow_the_kernel_rounding():
    # a dense 1-d codebook: many codes round to the same float32 score as the nearest one, so the
    # nearest code by exact distance is not always the brute force's (first index of the rounded max)
    g = torch.Generator().manual_seed(2)
    book = torch.rand(2**16, 1, generator=g) * 1e-3 + 1.0
    x = torch.rand(3000, 1, generator=g) * 1e-3 + 1.0
    nearest = (x.double() - book.double().t()).abs().argmin(dim=1)
    brute = _brute(x, book)
    assert not torch.equal(nearest, brute)
    assert torch.equal(nearest_code(x, book, fused=True), brute)


def test_queries_over_the_cap_and_bad_values_go_to_the_brute_force(monkeypatch):
    g = torch.Generator().manual_seed(3)
    book = torch.randn(4000, 2, generator=g)
    x = torch.cat([torch.randn(300, 2, generator=g), torch.tensor([[float("nan"), 0.0], [float("inf"), 1.0], [3e15, 0.0]])])
    handed = []

    def brute(rows):
        handed.append(rows.shape[0])
        return _brute(rows, book)

    bias = -0.5 * book.pow(2).sum(-1)
    got = _grid_lookup.grid_nearest(x, book, bias, brute)
    assert handed == [3]  # the non-finite and huge queries only
    assert torch.equal(got, _brute(x, book))

    handed.clear()
    monkeypatch.setattr(_grid_lookup, "CAP", 10)
    got = _grid_lookup.grid_nearest(x, book, bias, brute)
    assert handed and handed[0] > 3
    assert torch.equal(got, _brute(x, book))


def test_bad_codes_refuse_the_grid():
    g = torch.Generator().manual_seed(4)
    x, book = torch.randn(50, 1, generator=g), torch.randn(300, 1, generator=g)
    book[7] = float("nan")
    assert _grid_lookup.grid_nearest(x, book, -0.5 * book.pow(2).sum(-1), None) is None
    book[7] = 2e15
    assert _grid_lookup.grid_nearest(x, book, -0.5 * book.pow(2).sum(-1), None) is None
    assert _grid_lookup.grid_nearest(torch.randn(5, 3), torch.randn(9, 3), torch.zeros(9), None) is None  # d = 3


def test_paper_scale_codebook(monkeypatch):
    # GSQ's G = 16 and G = 8 rows at D = 16: V = 2^18 codes at d = 1 and 2, where the default path
    # (a fused-size search, no l2 lookup) takes the grid
    from qbench import lookup

    calls = []
    monkeypatch.setattr(lookup, "grid_nearest", lambda *a: calls.append(1) or _grid_lookup.grid_nearest(*a))
    g = torch.Generator().manual_seed(5)
    for d in (1, 2):
        book = torch.randn(2**18, d, generator=g) * 0.3
        x = torch.randn(2048, d, generator=g)
        assert torch.equal(nearest_code(x, book), _brute(x, book))
    assert len(calls) == 2


def test_ring_codebooks_take_the_angular_search():
    from qbench._fused_kernel import compiled

    g = torch.Generator().manual_seed(6)
    ring = F.normalize(torch.randn(2**14, 2, generator=g), dim=1)
    book = torch.cat([ring, torch.randn(200, 2, generator=g) * 0.5])  # 200 codes off the ring
    x = torch.randn(1000, 2, generator=g) * 0.7
    bias = -0.5 * book.pow(2).sum(-1)
    args = (_grid_lookup.KAPPA, _grid_lookup.CAP, _grid_lookup.LIMIT)
    found = compiled().ring(x, book, bias, *args)
    assert found.shape[0] == 1000 and bool((found >= 0).all())  # searched by angle, none handed back
    assert torch.equal(found, _brute(x, book))
    gaussian = torch.randn(4096, 2, generator=g)
    assert compiled().ring(x, gaussian, -0.5 * gaussian.pow(2).sum(-1), *args).shape[0] == 0  # no ring
