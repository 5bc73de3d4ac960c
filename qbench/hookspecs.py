"""The hook specifications: the whole contract between qbench and a plugin.

A plugin is a module (or object) with one or more functions decorated by
``qbench.hookimpl`` and named like the specs below.  Each returns an iterable
of spec objects from ``qbench.specs``.  Register a third-party plugin through
the ``qbench`` entry-point group::

    [project.entry-points.qbench]
    my_quantizers = "my_package.hooks"
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from qbench.specs import BackboneSpec, DatasetSpec, LoggerSpec, MetricSpec, QuantizerSpec, RecipeSpec, WeightsSpec

PROJECT = "qbench"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def qbench_register_quantizers() -> Iterable[QuantizerSpec]:
    """Return the quantizers this plugin provides."""


@hookspec
def qbench_register_backbones() -> Iterable[BackboneSpec]:
    """Return the encoder/decoder backbones this plugin provides."""


@hookspec
def qbench_register_metrics() -> Iterable[MetricSpec]:
    """Return the evaluation metrics this plugin provides."""


@hookspec
def qbench_register_datasets() -> Iterable[DatasetSpec]:
    """Return the datasets this plugin provides."""


@hookspec
def qbench_register_recipes() -> Iterable[RecipeSpec]:
    """Return the named recipes this plugin ships (TOML files inside its package)."""


@hookspec
def qbench_register_weights() -> Iterable[WeightsSpec]:
    """Return the pretrained files this plugin's metrics and losses need (for ``qbench weights``)."""


@hookspec
def qbench_register_loggers() -> Iterable[LoggerSpec]:
    """Return the experiment trackers (TensorBoard, W&B, ...) this plugin provides."""
