"""qbench: one recipe, one metric protocol, every image-tokenizer quantizer.

The public facade.  Importing ``qbench`` does not import torch; modules that
need it (``qbench.codebook``, ``qbench.train``, ...) are imported on use.

    import qbench
    vq = qbench.registries().quantizers.create("gsq", dim=16, groups=4, codebook_size=512)

Plugins use ``qbench.hookimpl`` and the spec classes below.
"""

from __future__ import annotations

import pluggy

from .errors import ConfigError, MetricUnavailable, PluginError, QbenchError, RunFailed
from .plugins import Registries, registries
from .specs import BackboneSpec, DatasetSpec, MetricSpec, PluginSpec, QuantizerOutput, QuantizerSpec, RecipeSpec

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("qbench")

__all__ = [
    "BackboneSpec",
    "ConfigError",
    "DatasetSpec",
    "MetricUnavailable",
    "MetricSpec",
    "PluginError",
    "PluginSpec",
    "QbenchError",
    "QuantizerOutput",
    "QuantizerSpec",
    "RecipeSpec",
    "Registries",
    "RunFailed",
    "hookimpl",
    "registries",
    "__version__",
]
