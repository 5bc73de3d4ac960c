"""``check_metric``: conformance checks for metric plugins.

    from qbench.testing import check_metric
    def test_my_metric():
        check_metric("mymetric", some_option=1)

Checks, on small random uint8 batches from a tiny stand-in tokenizer:
the spec declares ``higher_is_better`` (a bool, or None for descriptive
numbers) and a ``unit`` string; ``update``/``compute`` work and give a finite
float ``value``; ``state()`` holds tensors; and the state is reducible:
summing the states of two instances that each saw half of the data equals
one instance that saw all of it (what DDP evaluation relies on).
"""

from __future__ import annotations

import math

import torch

from qbench.metric import EvalBatch, EvalContext, Metric, merge_states
from qbench.platform.plugins import Registries, given_or_built
from qbench.testing import _renamed_keyword


class _StandInQuantizer:
    codebook_size = 16
    tokens_per_position = 2
    bits_per_position = 8.0
    codebook_shared = True


class _StandInTokenizer(torch.nn.Module):
    """Not a model: enough of the tokenizer contract for metrics to read."""

    def __init__(self) -> None:
        super().__init__()
        self.quantizer = _StandInQuantizer()


def _batches(seed: int, count: int, size: int, tokenizer) -> list[EvalBatch]:
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        originals = torch.randint(0, 256, (3, 3, size, size), generator=gen, dtype=torch.uint8)
        noise = torch.randint(-20, 21, originals.shape, generator=gen)
        reconstructions = (originals.long() + noise).clamp(0, 255).to(torch.uint8)
        codes = torch.randint(0, 16, (3, size // 4, size // 4, 2), generator=gen)
        batches.append(
            EvalBatch(originals, reconstructions, codes, tokenizer, encode_seconds=0.01, decode_seconds=0.02)
        )
    return batches


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-8) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def check_metric(name: str, *, regs: Registries | None = None, image_size: int = 32, **options) -> dict:
    """Run the conformance checks for metric ``name``; returns the computed dict."""
    regs = given_or_built(_renamed_keyword(regs, options))
    spec = regs.metrics.get(name)
    assert spec.higher_is_better in (True, False, None), f"{name}: higher_is_better must be bool or None"
    assert isinstance(spec.unit, str), f"{name}: unit must be a string"

    tokenizer = _StandInTokenizer()
    batches = _batches(0, 4, image_size, tokenizer)
    context = EvalContext(num_images=sum(b.batch_size for b in batches), tokenizer=tokenizer)

    def fresh() -> Metric:
        metric = regs.metrics.create(name, **options)
        assert isinstance(metric, Metric), f"{name}: factory must return a qbench.metric.Metric"
        metric.begin(context)
        return metric

    whole = fresh()
    for batch in batches:
        whole.update(batch)
    state = whole.state()
    assert state and all(torch.is_tensor(v) for v in state.values()), f"{name}: state() must hold tensors"
    expected = whole.compute()
    value = expected.get("value")
    assert isinstance(value, float) and math.isfinite(value), f"{name}: compute()['value'] must be a finite float"
    assert isinstance(whole.protocol(), dict), f"{name}: protocol() must return a dict"

    halves = [fresh(), fresh()]
    for i, batch in enumerate(batches):
        halves[i % 2].update(batch)
    merged = fresh()
    merged.load_state(merge_states([halves[0].state(), halves[1].state()]))
    got = merged.compute()
    # throughput-like metrics depend only on summed counts and seconds: also exact
    for key, want in expected.items():
        assert _close(got.get(key), want), f"{name}: {key} from merged halves {got.get(key)!r} != {want!r}"
    return expected
