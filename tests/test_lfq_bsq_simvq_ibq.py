"""LFQ, BSQ, SimVQ and IBQ against independent references: vector-quantize-pytorch
(LFQ, LFQ(spherical=True), SimVQ) and formulas written out here (BSQ's grouped
entropy, IBQ's index backpropagation)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import qbench
from qbench.recipe.config import load_recipe


def create(name, **options):
    return qbench.registries().quantizers.create(name, **options)


def reverse_bits(indices: torch.Tensor, bits: int) -> torch.Tensor:
    """vector-quantize-pytorch's LFQ index (channel 0 = most significant bit) -> qbench's (least)."""
    out = torch.zeros_like(indices)
    for i in range(bits):
        out |= ((indices >> i) & 1) << (bits - 1 - i)
    return out


def clamp_bound(codebook_size: int) -> float:
    """How far an entropy with probabilities clamped at 1e-5 (the reference) can lie below
    the exact one (qbench): sum over codes of max_p p log(1e-5 / p) = V * 1e-5 / e."""
    return codebook_size * 1e-5 / math.e + 1e-5


# -- LFQ and BSQ against vector-quantize-pytorch's LFQ ------------------------------------


@pytest.mark.parametrize("spherical", [False, True], ids=["lfq", "bsq"])
@pytest.mark.parametrize(
    "dim,bits,inv_temperature,scale",
    [
        (6, 6, 100.0, 1.0),  # no projection, the default temperature: peaked assignments
        (4, 10, 100.0, 1.0),  # cpu-default's shape: D = 4 projected to 10 bits and back
        (6, 6, 1.0, 0.3),  # soft assignments: every probability above the reference's clamp
    ],
)
def test_lfq_and_bsq_match_vector_quantize_pytorch(spherical, dim, bits, inv_temperature, scale):
    vqp = pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(0)
    weights = dict(entropy_weight=0.1, diversity_gamma=1.0, commitment_weight=0.25)
    reference = vqp.LFQ(
        dim=dim, codebook_size=2**bits, spherical=spherical, entropy_loss_weight=0.1,
        diversity_gamma=1.0, commitment_loss_weight=0.25,
    ).train()
    ours = create("bsq" if spherical else "lfq", dim=dim, bits=bits, inv_temperature=inv_temperature, **weights)
    assert isinstance(ours.project_in, torch.nn.Linear) == (dim != bits)
    if dim != bits:
        ours.project_in.load_state_dict(reference.project_in.state_dict())
        ours.project_out.load_state_dict(reference.project_out.state_dict())
    z = torch.randn(2, dim, 5, 7) * scale
    z_ours, z_ref = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    out = ours(z_ours)
    (values, indices, aux), (sample, codebook, _) = reference(
        z_ref, inv_temperature=inv_temperature, return_loss_breakdown=True
    )

    assert torch.equal(out.codes[..., 0], reverse_bits(indices.long(), bits))
    assert torch.allclose(out.z_q, values, atol=1e-6)
    assert torch.allclose(ours.decode(out.codes), reference.indices_to_codes(indices), atol=1e-6)
    bound = clamp_bound(2**bits)
    assert float(out.stats["entropy/sample"]) == pytest.approx(sample.item(), abs=bound)
    assert float(out.stats["entropy/codebook"]) == pytest.approx(codebook.item(), abs=bound)
    assert out.loss.item() == pytest.approx(aux.item(), abs=0.1 * 2 * bound + 1e-6)

    # the gradient of decoder output and loss, to the latent and the projections
    w = torch.randn_like(z)
    ((out.z_q * w).sum() + out.loss).backward()
    ((values * w).sum() + aux).backward()
    assert torch.allclose(z_ours.grad, z_ref.grad, rtol=1e-4, atol=1e-4 * z_ref.grad.abs().max())
    if dim != bits:
        for mine, theirs in [(ours.project_in, reference.project_in), (ours.project_out, reference.project_out)]:
            scale_ = theirs.weight.grad.abs().max()
            assert torch.allclose(mine.weight.grad, theirs.weight.grad, rtol=1e-4, atol=1e-4 * scale_)


def test_lfq_bit_order_is_least_significant_first():
    q = create("lfq", dim=4)
    z = torch.tensor([1.0, -1.0, 0.0, 2.0]).view(1, 4, 1, 1)  # bits 1, 0, 0 (0 -> -1), 1
    assert int(q.encode(z)) == 1 + 8
    assert torch.equal(q.decode(q.encode(z)).view(4), torch.tensor([1.0, -1.0, -1.0, 1.0]))
    assert q.codebook_size == 16 and q.bits_per_position == 4.0


def test_bsq_codes_lie_on_the_unit_sphere():
    q = create("bsq", dim=6)  # dim = bits: no projection, decode gives the codes themselves
    codes = q.decode(torch.arange(64).view(1, 8, 8, 1)).permute(0, 2, 3, 1).reshape(64, 6)
    assert torch.allclose(codes.abs(), torch.full((64, 6), 6**-0.5))
    assert len({tuple(row.tolist()) for row in codes}) == 64


# -- BSQ's factorised entropy against the per-bit formula of the official code ------------


def _bsq_entropies_written_out(u: torch.Tensor, inv_temperature: float, group_size: int):
    """Official BSQ: bit d is +1 with probability sigmoid(4 tau u_d / sqrt(L)); H_sample sums
    the per-bit entropies; H_codebook sums, over groups of g bits, the entropy of the
    batch-mean distribution of each group's 2^g sub-codes (probabilities: products over bits)."""
    u = u.double()
    bits = u.shape[1]
    p_one = torch.sigmoid(4 * inv_temperature * u / math.sqrt(bits))
    h = -(p_one * p_one.log() + (1 - p_one) * (1 - p_one).log())
    sample = h.sum(dim=1).mean()
    codebook = 0.0
    for start in range(0, bits, group_size):
        probs = []
        for pattern in itertools.product([0, 1], repeat=group_size):
            prob = torch.ones(u.shape[0], dtype=torch.float64)
            for offset, bit in enumerate(pattern):
                p = p_one[:, start + offset]
                prob = prob * (p if bit else 1 - p)
            probs.append(prob.mean())
        avg = torch.stack(probs)
        codebook = codebook - (avg * avg.log()).sum()
    return float(sample), float(codebook)


@pytest.mark.parametrize("group_size", [1, 3, 6])
def test_bsq_grouped_entropy_matches_the_official_formula(group_size):
    torch.manual_seed(0)
    q = create("bsq", dim=6, inv_temperature=2.0, entropy_group_size=group_size, entropy_weight=0.1, diversity_gamma=1.0)
    z = torch.randn(3, 6, 4, 4)
    out = q(z)
    u = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, 6), dim=1)
    sample, codebook = _bsq_entropies_written_out(u, 2.0, group_size)
    assert float(out.stats["entropy/sample"]) == pytest.approx(sample, rel=1e-5)
    assert float(out.stats["entropy/codebook"]) == pytest.approx(codebook, rel=1e-5)
    assert out.loss.item() == pytest.approx(0.1 * (sample - codebook), rel=1e-4)  # commitment 0 by default


def test_grouped_codebook_entropy_bounds_the_exact_one():
    torch.manual_seed(0)
    z = torch.randn(2, 8, 4, 4) * 3
    exact = create("lfq", dim=8, entropy_group_size=8, inv_temperature=1.0)(z).stats["entropy/codebook"]
    grouped = create("lfq", dim=8, entropy_group_size=2, inv_temperature=1.0)(z).stats["entropy/codebook"]
    assert grouped >= exact - 1e-5 and grouped > exact + 1e-3  # subadditivity, strictly here


# -- SimVQ against vector-quantize-pytorch's SimVQ -------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
def test_simvq_matches_vector_quantize_pytorch(bias):
    vqp = pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(0)
    dim, size = 4, 64
    transform = torch.nn.Linear(dim, dim, bias=bias)
    reference = vqp.SimVQ(dim=dim, codebook_size=size, codebook_transform=transform,
                          rotation_trick=False, channel_first=True)
    ours = create("simvq", dim=dim, codebook_size=size, projection_bias=bias)
    with torch.no_grad():
        ours.frozen_codebook.copy_(reference.frozen_codebook)
        ours.codebook_transform.load_state_dict(transform.state_dict())
    z = torch.randn(2, dim, 5, 7)
    z_ours, z_ref = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    out = ours(z_ours)
    values, indices, loss = reference(z_ref)
    assert torch.equal(out.codes[..., 0], indices)
    assert torch.allclose(out.z_q, values, atol=1e-6)
    assert torch.allclose(out.loss, loss, atol=1e-6)
    assert torch.allclose(ours.decode(out.codes), reference.indices_to_codes(indices), atol=1e-6)
    w = torch.randn_like(z)
    ((out.z_q * w).sum() + out.loss).backward()
    ((values * w).sum() + loss).backward()
    assert torch.allclose(z_ours.grad, z_ref.grad, atol=1e-6)
    assert torch.allclose(ours.codebook_transform.weight.grad, transform.weight.grad, atol=1e-5)
    assert not ours.frozen_codebook.requires_grad
    assert sorted(n for n, _ in ours.named_parameters()) == sorted(
        f"codebook_transform.{n}" for n, _ in transform.named_parameters()
    )


# -- IBQ against its equations, written out -----------------------------------------------


def _ibq_written_out(z_rows, codebook, beta=0.25, entropy_weight=0.05, gamma=1.0, temperature=0.01):
    logits = z_rows @ codebook.t()
    logits.retain_grad()
    soft = torch.softmax(logits, dim=1)
    hard = F.one_hot(soft.argmax(dim=1), codebook.shape[0]).to(soft.dtype)
    index = hard - soft.detach() + soft
    z_q = index @ codebook
    z_hat = hard @ codebook
    loss = (
        ((z_q - z_rows) ** 2).mean()
        + ((z_hat.detach() - z_rows) ** 2).mean()
        + beta * ((z_hat - z_rows.detach()) ** 2).mean()
    )
    if entropy_weight:
        p = torch.softmax(logits / temperature, dim=1)
        sample = -(p * torch.log_softmax(logits / temperature, dim=1)).sum(dim=1).mean()
        avg = p.mean(dim=0)
        batch = -(avg * avg.log()).sum()
        loss = loss + entropy_weight * (sample - gamma * batch)
    return logits, hard.argmax(dim=1), z_q, loss


@pytest.mark.parametrize("entropy_weight", [0.0, 0.05])
def test_ibq_matches_its_equations_values_and_gradients(entropy_weight):
    torch.manual_seed(0)
    dim, size = 4, 32
    q = create("ibq", dim=dim, codebook_size=size, entropy_weight=entropy_weight)
    with torch.no_grad():
        q.codebook.mul_(0.5)  # softer assignments, so many codes get a sizeable share
    z = torch.randn(2, dim, 4, 5)
    z_ours = z.clone().requires_grad_(True)
    out = q(z_ours)

    rows = z.permute(0, 2, 3, 1).reshape(-1, dim).clone().requires_grad_(True)
    book = q.codebook.detach().clone().requires_grad_(True)
    logits, codes, z_q, loss = _ibq_written_out(rows, book, entropy_weight=entropy_weight)
    assert torch.equal(out.codes.view(-1), codes)
    assert torch.allclose(out.z_q.permute(0, 2, 3, 1).reshape(-1, dim), z_q, atol=1e-6)
    assert torch.allclose(out.loss, loss, rtol=1e-5, atol=1e-6)

    w = torch.randn_like(z)
    ((out.z_q * w).sum() + out.loss).backward()
    w_rows = w.permute(0, 2, 3, 1).reshape(-1, dim)
    ((z_q * w_rows).sum() + loss).backward()
    assert torch.allclose(z_ours.grad.permute(0, 2, 3, 1).reshape(-1, dim), rows.grad, atol=1e-5)
    assert torch.allclose(q.codebook.grad, book.grad, atol=1e-5)
    # the decoder's gradient reaches the logits of every code, so every code learns
    assert (logits.grad.abs() > 0).all()
    assert (q.codebook.grad.abs().sum(dim=1) > 0).all()


def test_ibq_decoder_gradient_flows_only_through_the_softmax():
    """Without the losses, z receives exactly d(w . soft C)/dz: no straight-through."""
    torch.manual_seed(0)
    q = create("ibq", dim=3, codebook_size=8, entropy_weight=0.0)
    z = torch.randn(1, 3, 2, 2, requires_grad=True)
    w = torch.randn(1, 3, 2, 2)
    (q(z).z_q * w).sum().backward()
    rows = z.detach().permute(0, 2, 3, 1).reshape(-1, 3).requires_grad_(True)
    soft = torch.softmax(rows @ q.codebook.detach().t(), dim=1)
    ((soft @ q.codebook.detach()) * w.permute(0, 2, 3, 1).reshape(-1, 3)).sum().backward()
    assert torch.allclose(z.grad.permute(0, 2, 3, 1).reshape(-1, 3), rows.grad, atol=1e-6)
    assert not torch.allclose(rows.grad, w.permute(0, 2, 3, 1).reshape(-1, 3))


def test_ibq_spherical_init_puts_every_code_within_reach():
    """Only hull vertices win an argmax of dot products: at D = 4 most N(0, 1) codes never do."""
    torch.manual_seed(0)
    z = torch.randn(50, 4, 20, 20)
    normal = create("ibq", dim=4, codebook_size=256)
    spherical = create("ibq", dim=4, codebook_size=256, init="spherical")
    assert torch.allclose(spherical.codebook.norm(dim=1), torch.ones(256))
    assert normal.encode(z).unique().numel() < 128
    assert spherical.encode(z).unique().numel() == 256


def test_smoke_recipe_builds_the_newer_quantizers_at_4_bits():
    # cpu-default's ~10 bits: tests/test_train.py::test_cpu_default_quantizers_share_the_rate
    recipe = load_recipe("smoke")
    for name in ("lfq", "bsq", "simvq", "ibq"):
        assert create(name, **recipe.quantizer_options(name)).bits_per_position == 4.0, name
