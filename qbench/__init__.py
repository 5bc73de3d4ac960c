"""qbench: one recipe, one metric protocol, every image-tokenizer quantizer.

The public facade.  Importing ``qbench`` does not import torch; the names
that need it (``Quantizer``, ``nearest_code``, ``Metric``, ...) are imported
on first use.

    import qbench
    vq = qbench.registries().quantizers.create("gsq", dim=16, groups=4, codebook_size=512)

From a notebook, ``qbench.run``, ``qbench.sweep``, ``qbench.load_runs`` and
``qbench.load_tokenizer`` do what the CLI does, with Python values in and
out (docs/python-api.md); what they return is ``qbench.RunOutcome``,
``qbench.SweepOutcome`` and ``qbench.Tokenizer``.

What a plugin may use is everything in ``__all__`` below and the modules in
``PUBLIC_MODULES``; every other module (the training and evaluation engine,
the CLI, reports, ``qbench.api``) is private and may change without notice.  The plugin
author's guide is docs/plugins.md.
"""

from __future__ import annotations

import importlib

import pluggy

from qbench._version import __version__
from qbench.errors import ConfigError, MetricUnavailable, PluginError, QbenchError, RunFailed
from qbench.platform.plugins import Registries, registries
from qbench.search_space import Choice, FloatRange, IntRange, SearchSpace
from qbench.specs import (
    BackboneSpec,
    DatasetSpec,
    LoggerSpec,
    MetricSpec,
    PluginSpec,
    QuantizerOutput,
    QuantizerSpec,
    RecipeSpec,
    WeightsSpec,
)

hookimpl = pluggy.HookimplMarker("qbench")

# the modules a plugin may import; tests/test_public_api.py keeps the plugins on them
PUBLIC_MODULES = (
    "qbench",
    "qbench.atomic",
    "qbench.codebook",
    "qbench.errors",
    "qbench.hookspecs",
    "qbench.logger",
    "qbench.lookup",
    "qbench.metric",
    "qbench.quantizer",
    "qbench.search_space",
    "qbench.specs",
    "qbench.testing",
    "qbench.weights",
)

# name -> public module: re-exported lazily so that ``import qbench`` stays torch-free
_LAZY = {
    **dict.fromkeys(
        ("Quantizer", "codebook_loss", "commitment_loss", "float32_lookup", "from_rows", "require_choice",
         "require_float", "require_int", "straight_through", "to_rows"),
        "qbench.quantizer",
    ),
    "nearest_code": "qbench.lookup",
    **dict.fromkeys(("code_histogram", "perplexity", "usage", "usage_stats"), "qbench.codebook"),
    **dict.fromkeys(("EvalBatch", "EvalContext", "Metric", "PerImageMean"), "qbench.metric"),
    **dict.fromkeys(("atomic", "weights"), "qbench"),
    # the notebook API (docs/python-api.md) and the types it returns
    **dict.fromkeys(("load_runs", "load_tokenizer", "run", "sweep", "RunOutcome", "SweepOutcome"), "qbench.api"),
    "Tokenizer": "qbench.engine.model",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qbench' has no attribute {name!r}")
    if module == "qbench":
        value = importlib.import_module(f"qbench.{name}")
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BackboneSpec",
    "Choice",
    "ConfigError",
    "DatasetSpec",
    "FloatRange",
    "IntRange",
    "LoggerSpec",
    "MetricSpec",
    "MetricUnavailable",
    "PUBLIC_MODULES",
    "PluginError",
    "PluginSpec",
    "QbenchError",
    "QuantizerOutput",
    "QuantizerSpec",
    "RecipeSpec",
    "Registries",
    "RunFailed",
    "SearchSpace",
    "WeightsSpec",
    "__version__",
    "hookimpl",
    "registries",
    *_LAZY,
]
