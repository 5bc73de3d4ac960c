"""``check_quantizer``: the quantizer contract of docs/plugins.md section 2, as assertions.

A plugin author calls it from their own tests with a registered name (or a
module instance) and small options; it raises ``AssertionError`` naming the
first broken rule.  Checked:

- properties: ``codebook_size`` >= 2, ``tokens_per_position`` >= 1,
  ``codebook_shared`` a bool, ``bits_per_position`` a float (T * log2 V, or less
  for implicit codebooks such as FSQ's, never more);
- ``forward`` returns ``QuantizerOutput``: ``z_q`` with the shape and dtype of
  ``z``, int64 ``codes`` (B, h, w, T) in [0, V), a finite scalar ``loss``, and
  ``stats`` (may be empty) whose entries are detached scalars.  Usage and
  perplexity are not the plugin's job: the host computes them from the codes
  and ``codebook_size`` (:func:`qbench.codebook.host_code_stats`) and ignores
  a plugin's own ``usage`` / ``perplexity`` entries (a fraction, as 0.1
  asked, passes);
- ``encode(z)`` equals the forward codes and ``decode(encode(z))`` equals
  ``forward(z).z_q`` in value (in eval mode, so EMA updates cannot interfere);
- the straight-through gradient reaches ``z`` and every trainable parameter
  receives a finite, non-zero gradient from the output plus the loss (which
  parameter learns from which term is method-specific and tested there);
- an eval-mode forward leaves every parameter and buffer unchanged;
- two runs from the same seed give identical outputs, codes and updated state;
- a ``state_dict`` round trip reproduces the codes;
- under CPU bf16 autocast the codes stay valid and ``z_q`` finite.

A quantizer with ``continuous = True`` (a ceiling such as the built-in
``identity``) is checked for what it promises instead: no tokens, an
infinite rate, (B, h, w, 0) codes, a finite loss and a gradient reaching ``z``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch

from qbench.platform.plugins import Registries, given_or_built
from qbench.specs import QuantizerOutput
from qbench.testing import _renamed_keyword

DEFAULT_DIM = 8
SEED = 0  # every check starts from torch.manual_seed(SEED)


def _factory(name_or_module, regs: Registries, options) -> Callable[[], torch.nn.Module]:
    if isinstance(name_or_module, torch.nn.Module):
        template = name_or_module
        if options:
            raise TypeError("check_quantizer: options apply to a registered name, not a module instance")
        return lambda: copy.deepcopy(template)
    regs = given_or_built(regs)
    options = dict(options)
    options.setdefault("dim", DEFAULT_DIM)
    return lambda: regs.quantizers.create(name_or_module, **options)


def _assert_close(actual, expected, what, atol=1e-5, rtol=1e-5):
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.allclose(actual.double(), expected.double(), atol=atol, rtol=rtol), (
        f"{what}: max difference {(actual.double() - expected.double()).abs().max().item():.3g}"
    )


def _check_properties(module) -> None:
    v, t = module.codebook_size, module.tokens_per_position
    assert isinstance(v, int) and v >= 2, f"codebook_size must be an int >= 2, got {v!r}"
    assert isinstance(t, int) and t >= 1, f"tokens_per_position must be an int >= 1, got {t!r}"
    assert isinstance(module.codebook_shared, bool), "codebook_shared must be a bool"
    bits = module.bits_per_position
    assert isinstance(bits, float), f"bits_per_position must be a float, got {type(bits).__name__}"
    assert 0 < bits <= t * math.log2(v) + 1e-9, f"bits_per_position {bits} exceeds T * log2 V"


def _check_output(module, out, z) -> None:
    assert isinstance(out, QuantizerOutput), f"forward must return QuantizerOutput, got {type(out).__name__}"
    b, _, h, w = z.shape
    t, v = module.tokens_per_position, module.codebook_size
    assert out.z_q.shape == z.shape, f"z_q shape {tuple(out.z_q.shape)} != z shape {tuple(z.shape)}"
    assert out.z_q.dtype == z.dtype, f"z_q dtype {out.z_q.dtype} != z dtype {z.dtype}"
    assert torch.isfinite(out.z_q).all(), "z_q has non-finite values"
    codes = out.codes
    assert codes.dtype == torch.int64, f"codes must be int64, got {codes.dtype}"
    assert codes.shape == (b, h, w, t), f"codes shape {tuple(codes.shape)} != {(b, h, w, t)}"
    assert int(codes.min()) >= 0 and int(codes.max()) < v, f"codes outside [0, {v})"
    assert torch.is_tensor(out.loss) and out.loss.dim() == 0, "loss must be a 0-d tensor"
    assert torch.isfinite(out.loss), "loss is not finite"
    for key, got in (out.stats or {}).items():
        if torch.is_tensor(got):
            assert not got.requires_grad and got.numel() == 1, f"stats[{key!r}] must be a detached scalar tensor"
        else:
            assert isinstance(got, (int, float)), f"stats[{key!r}] must be a number or a scalar tensor"


def _check_continuous(module, z) -> None:
    """A ceiling (``continuous = True``): the latent passes through with its gradient, no codes, no rate."""
    assert module.tokens_per_position == 0, "a continuous quantizer has no tokens per position"
    assert module.bits_per_position == math.inf, "a continuous quantizer has an infinite rate"
    b, _, h, w = z.shape
    z = z.detach().clone().requires_grad_(True)
    out = module.train()(z)
    assert isinstance(out, QuantizerOutput), f"forward must return QuantizerOutput, got {type(out).__name__}"
    assert out.codes.dtype == torch.int64 and out.codes.shape == (b, h, w, 0), "codes must be (B, h, w, 0) int64"
    assert torch.is_tensor(out.loss) and out.loss.dim() == 0 and torch.isfinite(out.loss), "loss: finite 0-d"
    assert out.z_q.shape == z.shape and out.z_q.dtype == z.dtype, "z_q must have the shape and dtype of z"
    out.z_q.sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0, "no gradient reaches z"
    assert torch.equal(module.encode(z.detach()), out.codes), "encode(z) differs from forward(z).codes"


def _state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _check_gradients(module, z) -> None:
    params = {n: p for n, p in module.named_parameters() if p.requires_grad}
    z = z.detach().clone().requires_grad_(True)
    out = module(z)
    weights = torch.randn_like(out.z_q)
    ((out.z_q * weights).sum() + out.loss).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all(), "no finite gradient reaches z"
    assert z.grad.abs().sum() > 0, "the straight-through gradient to z is zero"
    for name, p in params.items():
        assert p.grad is not None, f"parameter {name!r} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"parameter {name!r} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"parameter {name!r} gets a zero gradient"


def check_quantizer(name_or_module, *, regs: Registries | None = None, batch=2, height=4, width=4, **options) -> None:
    """Assert that a quantizer honours the qbench contract (see module docstring).

    ``name_or_module``: a registered quantizer name (created with ``options``;
    ``dim`` defaults to 8) or an ``nn.Module`` (deep-copied, never modified).
    """
    regs = _renamed_keyword(regs, options)
    make = _factory(name_or_module, regs, options)
    seed = SEED
    torch.manual_seed(seed)
    module = make()
    dim = getattr(module, "dim", options.get("dim", DEFAULT_DIM))
    z = torch.randn(batch, dim, height, width)
    if getattr(module, "continuous", False):
        _check_continuous(module, z)
        return
    _check_properties(module)

    # training-mode forward: output contract
    module.train()
    _check_output(module, module(z), z)

    # eval mode: no state change; encode/decode agree with forward
    module.eval()
    before = _state(module)
    out = module(z)
    _check_output(module, out, z)
    for key, value in _state(module).items():
        assert torch.equal(value, before[key]), f"an eval-mode forward changed {key!r}"
    codes = module.encode(z)
    assert torch.equal(codes, out.codes), "encode(z) differs from forward(z).codes"
    _assert_close(module.decode(codes), out.z_q, "decode(encode(z)) vs forward(z).z_q")

    # a state_dict round trip reproduces the codes (checkpoints)
    torch.manual_seed(seed + 1)
    clone = make()
    clone.load_state_dict(module.state_dict())
    clone.eval()
    assert torch.equal(clone.encode(z), codes), "state_dict round trip changed the codes"

    # gradients
    module.train()
    _check_gradients(copy.deepcopy(module), z)

    # determinism: same seed, same everything (including training-mode updates)
    runs = []
    for _ in range(2):
        torch.manual_seed(seed)
        m = make().train()
        first = m(z)
        second = m(z)
        runs.append((first.z_q.detach(), first.codes, second.codes, _state(m)))
    (a_zq, a_c1, a_c2, a_state), (b_zq, b_c1, b_c2, b_state) = runs
    assert torch.equal(a_zq, b_zq) and torch.equal(a_c1, b_c1) and torch.equal(a_c2, b_c2), (
        "two seeded runs differ"
    )
    for key in a_state:
        assert torch.equal(a_state[key], b_state[key]), f"two seeded runs leave different {key!r}"

    # bf16 autocast on CPU: lookups stay float32, codes valid
    m = make().eval()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = m(z)
    assert torch.isfinite(out.z_q.float()).all(), "z_q not finite under autocast"
    assert out.codes.dtype == torch.int64 and int(out.codes.min()) >= 0
    assert int(out.codes.max()) < m.codebook_size, "codes outside the codebook under autocast"


__all__ = ["check_quantizer"]
