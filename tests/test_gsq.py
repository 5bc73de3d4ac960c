"""GSQ (arXiv 2412.02632) against hand-written references of its specification."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import qbench


def create(name, **options):
    return qbench.registries().quantizers.create(name, **options)


def test_gsq_g1_without_l2_and_uniform_init_is_vq():
    torch.manual_seed(0)
    vq = create("vq", dim=6, codebook_size=32)
    gsq = create("gsq", dim=6, groups=1, codebook_size=32, init="uniform", l2_lookup=False)
    with torch.no_grad():
        gsq.codebook[0].copy_(vq.codebook)
    z = torch.randn(2, 6, 3, 5)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    a, b = vq(z1), gsq(z2)
    assert torch.equal(a.codes, b.codes)
    assert torch.equal(a.z_q, b.z_q)
    assert torch.allclose(a.loss, b.loss)
    w = torch.randn_like(z)
    ((a.z_q * w).sum() + a.loss).backward()
    ((b.z_q * w).sum() + b.loss).backward()
    assert torch.allclose(z1.grad, z2.grad)
    assert torch.allclose(vq.codebook.grad, gsq.codebook.grad[0])


def test_uniform_init_range():
    torch.manual_seed(0)
    book = create("gsq", dim=8, groups=2, codebook_size=64, init="uniform").codebook
    assert book.abs().max() <= 1 / 64 and book.abs().max() > 0.5 / 64


def test_spherical_init_rows_are_unit_and_spread():
    torch.manual_seed(0)
    q = create("gsq", dim=16, groups=4, codebook_size=512)
    assert q.codebook.shape == (1, 512, 4)
    assert torch.allclose(q.codebook.norm(dim=-1), torch.ones(1, 512), atol=1e-6)
    # Gaussian then normalised: isotropic, so the mean direction is near zero
    assert q.codebook[0].mean(dim=0).norm() < 0.2


def test_l2_lookup_is_automatic_and_switchable():
    assert create("gsq", dim=8, groups=2).l2_lookup is True  # d = 4
    assert create("gsq", dim=8, groups=4).l2_lookup is False  # d = 2
    assert create("gsq", dim=8, groups=8).l2_lookup is False  # d = 1
    assert create("gsq", dim=8, groups=4, l2_lookup=True).l2_lookup is True
    assert create("gsq", dim=8, groups=2, l2_lookup=False).l2_lookup is False


def _reference(z, codebook, groups, l2, beta=0.25):
    """GSQ written out from the paper: loops over positions and groups."""
    b, dim, h, w = z.shape
    d = dim // groups
    codes = torch.empty(b, h, w, groups, dtype=torch.long)
    out = torch.empty_like(z)
    losses = []
    for i in range(b):
        for y in range(h):
            for x in range(w):
                for g in range(groups):
                    zg = z[i, g * d : (g + 1) * d, y, x]  # channel g * d + j
                    book = codebook[0] if codebook.shape[0] == 1 else codebook[g]
                    zt = F.normalize(zg, dim=0) if l2 else zg
                    bt = F.normalize(book, dim=1) if l2 else book
                    k = int(((zt[None] - bt) ** 2).sum(1).argmin())
                    codes[i, y, x, g] = k
                    out[i, g * d : (g + 1) * d, y, x] = book[k]  # the stored row
                    losses.append(((book[k] - zt) ** 2).mean() * (1 + beta))
    return codes, out, torch.stack(losses).mean()


@pytest.mark.parametrize(
    "groups,shared,l2", [(4, True, True), (2, False, True), (8, True, False), (1, True, True)]
)
def test_gsq_equals_looped_reference(groups, shared, l2):
    torch.manual_seed(groups)
    q = create("gsq", dim=8, groups=groups, codebook_size=16, shared_codebook=shared, l2_lookup=l2)
    z = torch.randn(2, 8, 3, 2)
    out = q(z)
    codes, values, loss = _reference(z, q.codebook.detach(), groups, l2)
    assert torch.equal(out.codes, codes)
    assert torch.allclose(out.z_q, values, atol=1e-6)
    assert torch.allclose(out.loss, loss, atol=1e-6)
    assert q.tokens_per_position == groups and q.codebook_shared is shared
    assert q.bits_per_position == pytest.approx(groups * math.log2(16))


def test_straight_through_gradient_goes_through_the_l2_normalisation():
    torch.manual_seed(0)
    q = create("gsq", dim=8, groups=2, codebook_size=16)
    z = torch.randn(1, 8, 2, 2, requires_grad=True)
    w = torch.randn(1, 8, 2, 2)
    (q(z).z_q * w).sum().backward()
    zr = z.detach().clone().requires_grad_(True)
    # z_q = l2(z_g) + const, so its gradient is that of l2(z_g)
    groups = zr.view(1, 2, 4, 2, 2)
    (F.normalize(groups, dim=2).view(1, 8, 2, 2) * w).sum().backward()
    assert torch.allclose(z.grad, zr.grad, atol=1e-6)


def test_codebook_learns_from_the_loss_only():
    torch.manual_seed(0)
    q = create("gsq", dim=8, groups=2, codebook_size=16)
    out = q(torch.randn(2, 8, 4, 4, requires_grad=True))
    out.z_q.sum().backward(retain_graph=True)
    assert q.codebook.grad is None or q.codebook.grad.abs().sum() == 0
    out.loss.backward()
    used = torch.zeros(16, dtype=torch.bool)
    used[out.codes.unique()] = True
    grad_rows = q.codebook.grad[0].abs().sum(dim=1) > 0
    assert torch.equal(grad_rows, used)  # exactly the rows that were hit


def test_large_codebook_stays_within_budget(monkeypatch):
    # V = 2^16 codes against 64 rows with a 64 KiB score budget: many blocks of
    # codes, none of them larger than the budget, and still the exact answer
    import qbench.lookup as lookup

    blocks = []
    real_addmm = torch.addmm

    def recording_addmm(*args, **kwargs):
        out = real_addmm(*args, **kwargs)
        blocks.append(out.numel() * out.element_size())
        return out

    monkeypatch.setattr(lookup.torch, "addmm", recording_addmm)
    torch.manual_seed(0)
    book = F.normalize(torch.randn(2**16, 8), dim=1)
    x = torch.randn(64, 8)
    got = lookup.nearest_code(x, book, normalize=True, max_chunk_bytes=2**16, fused=False)
    dense = (F.normalize(x, dim=1) @ book.t()).argmax(dim=1)
    assert torch.equal(got, dense)
    assert len(blocks) >= 64 * 2**16 * 4 // 2**16 and max(blocks) <= 2**16
