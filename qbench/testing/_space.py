"""``check_search_space``: a quantizer's declared search space (``qbench.search_space``), as assertions.

For each rate given it loads the plugin's declaration and checks that:

- the declaration has a valid shape (ranges with low < high, positive log
  ranges, choices of two or more distinct values, layouts that set the same
  options, widths among the ``dims`` given);
- every ranged option and every option a layout sets is a constructor option
  of the quantizer, and both ends of each range pass its type checks;
- every layout builds and has the declared rate (``bits_per_position`` within
  ``RATE_TOLERANCE`` of the rate);
- ``samples`` configurations drawn from the whole space (seeded) build and
  have the declared rate.

A quantizer that declares no space passes (only the shared recipe knobs are
tuned for it).
"""

from __future__ import annotations

import inspect
import math
import random
from typing import Any

from qbench.platform.plugins import Registries, given_or_built
from qbench.platform.registry import load_factory
from qbench.search_space import LATENT_DIM, RATE_TOLERANCE, Choice, FloatRange, IntRange
from qbench.tuning.space import declared_space

RATES = (6.0, 8.0, 10.0, 12.0)
DIMS = (4, 8, 16)


def _draw(rng: random.Random, tunable) -> Any:
    if isinstance(tunable, FloatRange):
        if tunable.log:
            return math.exp(rng.uniform(math.log(tunable.low), math.log(tunable.high)))
        return rng.uniform(tunable.low, tunable.high)
    if isinstance(tunable, IntRange):
        return rng.randrange(tunable.low, tunable.high + 1, tunable.step)
    assert isinstance(tunable, Choice)
    return rng.choice(tunable.values)


def check_search_space(name: str, *, rates: tuple[float, ...] = RATES, dims: tuple[int, ...] = DIMS,
                       samples: int = 6, seed: int = 0, regs: Registries | None = None) -> int:
    """Check ``name``'s declared space at every rate; the number of configurations built."""
    regs = given_or_built(regs)
    spec = regs.quantizers.get(name)
    if not spec.search_space:
        return 0
    factory = load_factory(spec)
    params = inspect.signature(factory).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    rng = random.Random(seed)
    built = 0
    for rate in rates:
        space = declared_space(spec, rate, tuple(dims))  # shape problems raise PluginError here
        names = set(space.options) | {k for layout in space.layouts for k in layout}
        for option in sorted(names):
            assert open_ended or option in params, (
                f"{name} at {rate:g} bits: {option!r} is not a constructor option (options: {', '.join(params)})")
        for option, tunable in space.options.items():
            ends = list(tunable.values) if isinstance(tunable, Choice) else [tunable.low, tunable.high]
            for value in ends:
                regs.quantizers.options(name, **{option: value})  # a type the constructor refuses raises
        layouts = [dict(layout) for layout in space.layouts] or [{}]
        configurations = [(layout, {}) for layout in layouts]
        configurations += [(rng.choice(layouts), {k: _draw(rng, t) for k, t in space.options.items()})
                           for _ in range(samples)]
        for layout, drawn in configurations:
            options = {**spec.defaults, **layout, **drawn}
            options.setdefault(LATENT_DIM, dims[0])
            quantizer = regs.quantizers.create(name, **options)
            bits = float(quantizer.bits_per_position)
            assert abs(bits - rate) <= RATE_TOLERANCE, (
                f"{name} at {rate:g} bits: {options} builds with {bits:.3f} bits per position")
            built += 1
    return built
