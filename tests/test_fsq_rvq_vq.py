"""FSQ, RVQ and VQ against independent references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import qbench


def create(name, **options):
    return qbench.registries().quantizers.create(name, **options)


# -- FSQ against vector-quantize-pytorch --------------------------------------------------


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [7, 5, 5, 5, 5], [4, 3], [8, 8, 8, 6, 5]])
def test_fsq_matches_vector_quantize_pytorch(levels):
    vqp = pytest.importorskip("vector_quantize_pytorch")
    reference = vqp.FSQ(levels=levels)
    ours = create("fsq", dim=len(levels), levels=levels)
    torch.manual_seed(0)
    z = torch.randn(2, len(levels), 5, 7) * 2
    out = ours(z)
    values, indices = reference(z)
    assert torch.equal(out.codes[..., 0], indices.long())
    assert torch.equal(out.z_q, values)
    assert ours.codebook_size == reference.codebook_size
    assert torch.equal(ours.decode(out.codes), reference.indices_to_codes(indices))


def test_fsq_level_two_and_rate():
    q = create("fsq", dim=3, levels=[2, 3, 4])
    z = torch.linspace(-4, 4, 3 * 64).view(1, 3, 8, 8)
    out = q(z)
    assert out.codes.max() < 24 and q.codebook_size == 24
    assert set(out.z_q[0, 0].unique().tolist()) <= {-1.0, 0.0}  # L = 2: two values
    assert set(out.z_q[0, 1].unique().tolist()) == {-1.0, 0.0, 1.0}
    assert q.bits_per_position == pytest.approx(math.log2(24))
    assert float(out.loss) == 0.0


def test_fsq_projections_when_dim_differs():
    torch.manual_seed(0)
    q = create("fsq", dim=16, levels=[5, 5, 5])
    assert isinstance(q.project_in, torch.nn.Linear) and q.project_in.out_features == 3
    z = torch.randn(2, 16, 4, 4)
    inner = q.project_in(z.permute(0, 2, 3, 1))
    reference = create("fsq", dim=3, levels=[5, 5, 5])(inner.permute(0, 3, 1, 2))
    assert torch.equal(q(z).codes, reference.codes)


# -- RVQ against a hand-written loop ---------------------------------------------------


def test_rvq_equals_hand_written_loop():
    torch.manual_seed(0)
    q = create("rvq", dim=4, stages=3, codebook_size=8)
    with torch.no_grad():
        q.codebooks.normal_()  # spread codes so every stage matters
    z = torch.randn(2, 4, 3, 3)
    out = q(z)
    rows = z.permute(0, 2, 3, 1).reshape(-1, 4)
    residual, total, loss, codes = rows.clone(), torch.zeros_like(rows), 0.0, []
    for s in range(3):
        book = q.codebooks[s].detach()
        k = torch.cdist(residual, book).argmin(dim=1)
        qs = book[k]
        loss = loss + 1.25 * ((qs - residual) ** 2).mean()
        total, residual = total + qs, residual - qs
        codes.append(k)
    assert torch.equal(out.codes.view(-1, 3), torch.stack(codes, 1))
    assert torch.allclose(out.z_q.permute(0, 2, 3, 1).reshape(-1, 4), total, atol=1e-6)
    assert torch.allclose(out.loss, loss, atol=1e-6)
    assert q.codebook_shared is False and q.bits_per_position == pytest.approx(9.0)


def test_rvq_each_stage_learns_against_its_residual():
    torch.manual_seed(0)
    q = create("rvq", dim=4, stages=2, codebook_size=8)
    with torch.no_grad():
        q.codebooks.normal_()
    out = q(torch.randn(2, 4, 3, 3))
    out.loss.backward()
    assert (q.codebooks.grad.abs().sum(dim=(1, 2)) > 0).all()


# -- VQ: EMA updates and dead-code restart against the formulas ------------------------


def test_vq_ema_update_follows_the_formula():
    torch.manual_seed(0)
    q = create("vq", dim=3, codebook_size=4, ema_decay=0.8, ema_epsilon=1e-5)
    with torch.no_grad():
        q.codebook.copy_(torch.randn(4, 3))
        q.ema_sum.copy_(q.codebook)  # m starts at the codebook (N starts at 1)
    start = q.codebook.clone()
    z = torch.randn(1, 3, 4, 4)
    x = z.permute(0, 2, 3, 1).reshape(-1, 3)
    k = torch.cdist(x, start).argmin(1)
    out = q(z)
    assert torch.equal(out.codes.view(-1), k)
    n = torch.bincount(k, minlength=4).float()
    sums = torch.stack([x[k == i].sum(0) if (k == i).any() else torch.zeros(3) for i in range(4)])
    count = 0.8 * torch.ones(4) + 0.2 * n
    ema_sum = 0.8 * start + 0.2 * sums
    total = count.sum()
    smoothed = (count + 1e-5) / (total + 4e-5) * total
    assert torch.allclose(q.codebook, ema_sum / smoothed[:, None], atol=1e-6)
    assert not q.codebook.requires_grad and len(list(q.parameters())) == 0
    assert torch.allclose(out.loss, 0.25 * ((start[k] - x) ** 2).mean())
    q.eval()
    frozen = q.codebook.clone()
    q(z)
    assert torch.equal(q.codebook, frozen)


def test_vq_dead_codes_restart_to_batch_inputs():
    torch.manual_seed(0)
    q = create("vq", dim=2, codebook_size=8, dead_code_threshold=1.0)
    z = torch.randn(1, 2, 4, 4) + 5.0  # far from every initial code
    q(z)  # usage averages start at 0: every code is dead and restarts from the batch
    rows = z.permute(0, 2, 3, 1).reshape(-1, 2)
    on_batch = (torch.cdist(q.codebook.detach(), rows).min(dim=1).values < 1e-6).all()
    assert on_batch
    assert torch.allclose(q.usage_count, torch.ones(8))


def test_vq_ema_all_reduces_under_torch_distributed(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        q = create("vq", dim=3, codebook_size=4, ema_decay=0.5, dead_code_threshold=0.1)
        torch.manual_seed(0)
        solo = create("vq", dim=3, codebook_size=4, ema_decay=0.5, dead_code_threshold=0.1)
        z = torch.randn(1, 3, 4, 4)
        torch.manual_seed(1)
        q(z)
    finally:
        dist.destroy_process_group()
    torch.manual_seed(1)
    solo(z)
    assert torch.equal(q.codebook, solo.codebook)  # world size 1: the reduction is the identity


def test_vq_l2_lookup_outputs_stored_rows():
    torch.manual_seed(0)
    q = create("vq", dim=4, codebook_size=16, l2_lookup=True)
    z = torch.randn(2, 4, 3, 3)
    out = q(z)
    rows = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, 4), dim=1)
    k = (rows @ F.normalize(q.codebook.detach(), dim=1).t()).argmax(1)
    assert torch.equal(out.codes.view(-1), k)
    assert torch.allclose(out.z_q.permute(0, 2, 3, 1).reshape(-1, 4), q.codebook.detach()[k], atol=1e-6)
