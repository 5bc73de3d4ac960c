"""Frozen spec objects that plugins return from their hooks.

A spec names its factory as a ``"module:attr"`` string so that listing
plugins never imports torch: the factory is imported only by
``Registry.create``.  ``origin`` (the plugin), ``distribution`` and ``version`` are stamped by
the host when the spec is registered; plugins leave them empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class PluginSpec:
    """What every registered thing has in common."""

    name: str
    factory: str
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    paper: str = ""
    origin: str = ""
    version: str = ""
    distribution: str = ""

    kind = "plugin"

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", _frozen(self.defaults))
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"{type(self).__name__} needs a non-empty name")
        module, sep, attr = self.factory.partition(":")
        if not (module and sep and attr):
            raise ValueError(
                f"{self.kind} {self.name!r}: factory must be 'module:attr', got {self.factory!r}"
            )


@dataclass(frozen=True)
class QuantizerSpec(PluginSpec):
    """A quantizer: ``factory(dim=D, **options) -> nn.Module`` (docs/plugins.md section 2).

    ``search_space`` names a torch-free function ``space(rate, dims) -> qbench.SearchSpace``
    as ``"module:attr"``: the options ``qbench tune`` may vary and the layouts that keep
    the rate (``qbench.search_space``); empty: only the shared recipe knobs are tuned.
    """

    search_space: str = ""

    kind = "quantizer"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.search_space:
            module, sep, attr = str(self.search_space).partition(":")
            if not (module and sep and attr):
                raise ValueError(f"quantizer {self.name!r}: search_space must be 'module:attr', "
                                 f"got {self.search_space!r}")


@dataclass(frozen=True)
class BackboneSpec(PluginSpec):
    """An encoder/decoder pair: ``factory(latent_dim=D, **options) -> nn.Module``."""

    kind = "backbone"


@dataclass(frozen=True)
class MetricSpec(PluginSpec):
    """A streaming metric: ``factory(**options) -> Metric``.

    ``higher_is_better`` is ``None`` for descriptive numbers (bits, rates)
    that are neither better nor worse.  ``heading`` (e.g. "PSNR (dB)") and
    ``format`` (a format spec such as ".2f"; empty: three significant
    digits) are how report tables show it; every result records them.
    """

    higher_is_better: bool | None = None
    unit: str = ""
    heading: str = ""
    format: str = ""

    kind = "metric"


@dataclass(frozen=True)
class DatasetSpec(PluginSpec):
    """A dataset: ``factory(split=..., image_size=..., **options) -> Dataset``.

    Items are uint8 tensors of shape (3, H, W).
    """

    kind = "dataset"


@dataclass(frozen=True)
class RecipeSpec(PluginSpec):
    """A named recipe shipped by a plugin: ``factory`` is ``"package:file.toml"``.

    The TOML file is read with ``importlib.resources`` from the package, so a
    recipe ships inside the plugin's wheel like any package data.
    """

    kind = "recipe"


@dataclass(frozen=True)
class WeightsSpec(PluginSpec):
    """A pretrained file that a plugin's metric or loss needs, in torch hub's checkpoint cache.

    ``factory`` names the function that downloads it when the user asks
    (``qbench weights fetch``), called as ``fetch(spec)``; the default one
    fetches ``url`` through torch hub, checking the sha256 prefix in the
    file name.  ``sha256_prefix`` is "" when nothing is known.
    """

    factory: str = "qbench.weights:fetch_url"
    filename: str = ""
    url: str = ""
    sha256_prefix: str = ""
    used_by: str = ""

    kind = "weights"


@dataclass(frozen=True)
class LoggerSpec(PluginSpec):
    """An experiment tracker: ``factory(**options) -> qbench.logger.Logger``.

    ``requires`` names the top-level modules the logger imports; they are
    looked up (not imported) before training, and a missing one is a user
    error that quotes ``install``, e.g. ``"pip install 'qbench[tensorboard]'"``.
    """

    requires: tuple[str, ...] = ()
    install: str = ""

    kind = "logger"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "requires", tuple(self.requires))


class QuantizerOutput(NamedTuple):
    """What ``quantizer.forward(z)`` returns.

    z_q:   same shape as ``z``; straight-through gradient to ``z``.
    codes: int64 (B, h, w, T), T tokens per position.
    loss:  scalar tensor (zero where the method has none).
    stats: dict of detached scalars (usage, perplexity, ...).
    """

    z_q: Any
    codes: Any
    loss: Any
    stats: dict
