"""rFID: Frechet distance between Inception features of originals and reconstructions.

The protocol pinned for qbench (docs/metrics.md), following the field's use
of torch-fidelity (Heusel et al. 2017, arXiv 1706.08500; GSQ, arXiv
2412.02632, reports rFID this way):

- features: torch-fidelity's ``inception-v3-compat`` (the TF 2015-12-05
  Inception with its TF1-exact bilinear resize to 299x299 and (x-128)/128),
  2048-d pool features, computed from the *uint8* originals and the *uint8*
  reconstructions with identical preprocessing on both sides, in float32,
  outside autocast;
- statistics: float64 running sums (n, sum f, sum f f^T), so shards add up
  exactly across DDP ranks; covariance with n - 1 as numpy's ``np.cov``;
- distance: torch-fidelity's own ``fid_statistics_to_metric``.

The real set's statistics are cached in ``$TORCH_HOME/qbench_fid_cache`` per
(evaluation set key, number of images, extractor, layer, weights hash), so
later runs on the same validation split only extract reconstruction features.
They are computed once (sharded over the ranks of the first run, summed,
written by rank 0) and, under DDP, read by rank 0 alone and broadcast, so
all ranks of a run either use the cache or compute together.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch

from qbench import ConfigError, atomic, weights
from qbench.metric import EvalBatch, EvalContext, Metric

DEFAULT_EXTRACTOR = "inception-v3-compat"


class FeatureStats:
    """Float64 running sums of feature vectors: the sufficient statistics of FID."""

    def __init__(self) -> None:
        self.n = torch.zeros((), dtype=torch.float64)
        self.sum: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None

    def add(self, features: torch.Tensor) -> None:
        f = features.detach().to(torch.float64).flatten(1)
        if self.sum is None:
            dim = f.shape[1]
            self.sum = torch.zeros(dim, dtype=torch.float64, device=f.device)
            self.outer = torch.zeros(dim, dim, dtype=torch.float64, device=f.device)
        self.n = self.n.to(f.device) + f.shape[0]
        self.sum = self.sum + f.sum(dim=0)
        self.outer = self.outer + f.T @ f

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        if self.sum is None:
            raise ConfigError("rfid: no images were evaluated")
        return {f"{prefix}_n": self.n, f"{prefix}_sum": self.sum, f"{prefix}_outer": self.outer}

    def load(self, state: dict[str, torch.Tensor], prefix: str) -> None:
        self.n, self.sum, self.outer = state[f"{prefix}_n"], state[f"{prefix}_sum"], state[f"{prefix}_outer"]

    def mean_cov(self):
        """numpy float64 mean and covariance (ddof 1), as torch-fidelity's statistics."""
        n = float(self.n)
        if n < 2:
            raise ConfigError(f"rfid needs at least 2 images, got {int(n)}")
        mu = (self.sum / n).cpu()
        sigma = (self.outer.cpu() - n * torch.outer(mu, mu)) / (n - 1)
        return mu.numpy(), sigma.numpy()


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """torch-fidelity's Frechet distance of two Gaussians (float64 numpy inputs)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    out = fid_statistics_to_metric({"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}, verbose=False)
    return float(out[KEY_METRIC_FID])


def cache_dir() -> Path:
    return weights.torch_home() / "qbench_fid_cache"


class ReconstructionFID(Metric):
    """rFID of reconstructions against their originals (see the module docstring).

    ``feature_extractor`` may name any extractor registered with torch-fidelity
    (its name is recorded in the protocol); only ``inception-v3-compat`` gives
    numbers comparable with the literature.
    """

    def __init__(self, feature_extractor: str = DEFAULT_EXTRACTOR, feature_layer: str = "", cache: bool = True):
        from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
        from torch_fidelity.utils import create_feature_extractor

        if feature_extractor not in FEATURE_EXTRACTORS_REGISTRY:
            known = ", ".join(sorted(FEATURE_EXTRACTORS_REGISTRY))
            raise ConfigError(f"rfid: unknown torch-fidelity feature extractor {feature_extractor!r}; known: {known}")
        cls = FEATURE_EXTRACTORS_REGISTRY[feature_extractor]
        self.layer = feature_layer or str(cls.get_default_feature_layer_for_metric("fid"))
        self.extractor_name = feature_extractor
        self.weights_file, self.weights_sha256, self.weights_check = "", "", "random or built in"
        kwargs = {}
        if feature_extractor == DEFAULT_EXTRACTOR:
            # never let torch-fidelity download: hand it the cached file or give up
            path = weights.require("inception", "rfid")
            row = weights.describe("inception")
            self.weights_file, self.weights_sha256, self.weights_check = path.name, row["sha256"], row["check"]
            kwargs["feature_extractor_weights_path"] = str(path)
        try:
            self.extractor = create_feature_extractor(
                feature_extractor, [self.layer], cuda=False, verbose=False, **kwargs
            )
        except Exception as exc:  # a corrupt or truncated file in the cache: name it and the way out
            reason = (str(exc).strip().splitlines() or [""])[0]
            if feature_extractor != DEFAULT_EXTRACTOR:
                raise ConfigError(f"rfid: cannot build {feature_extractor!r}: {type(exc).__name__}: {reason}") from None
            raise ConfigError(
                f"rfid: cannot build {feature_extractor!r} from the weights file {path}: {type(exc).__name__}: "
                f"{reason}; delete it and run `qbench weights fetch inception`, or `qbench weights install FILE` "
                "with a good copy"
            ) from None
        self.use_cache = cache
        self.real = FeatureStats()
        self.fake = FeatureStats()
        self.cached_real: FeatureStats | None = None
        self.context = EvalContext()
        self.image_size: list[int] = []

    # ---- caching of the real set's statistics -------------------------------------------

    def _cache_key(self) -> dict:
        return {
            "eval_set": self.context.dataset_key,
            "num_images": self.context.num_images,
            "extractor": self.extractor_name,
            "layer": self.layer,
            "weights_sha256": self.weights_sha256,
            "protocol_version": 1,
        }

    def _cache_path(self) -> Path | None:
        if not (self.use_cache and self.context.dataset_key and self.context.num_images):
            return None
        blob = json.dumps(self._cache_key(), sort_keys=True).encode()
        return cache_dir() / f"real-{hashlib.sha256(blob).hexdigest()[:16]}.pt"

    def begin(self, context: EvalContext) -> None:
        """Use the cached real statistics when rank 0 has them; every rank then does the same.

        The ranks must agree: a rank using the cache contributes no real
        statistics to the all-reduced state, a rank without it does.  So rank 0
        alone reads the cache (its folder may even be local to its node) and
        hands the statistics, or "none", to the others.
        """
        import torch.distributed as dist

        self.context = context
        ranked = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        stats = self._read_cache() if not ranked or dist.get_rank() == 0 else None
        if ranked:
            box = [stats.tensors("real") if stats is not None else None]
            dist.broadcast_object_list(box, src=0)
            if box[0] is not None:
                stats = FeatureStats()
                stats.load({k: v.cpu() for k, v in box[0].items()}, "real")
        self.cached_real = stats

    def _read_cache(self) -> FeatureStats | None:
        path = self._cache_path()
        if path is None or not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("key") != json.dumps(self._cache_key(), sort_keys=True):
                raise ValueError("key differs")
            stats = FeatureStats()
            stats.load(saved["stats"], "real")
            return stats
        except Exception as exc:  # a broken cache is only a lost shortcut: recompute it
            warnings.warn(f"rfid: ignoring unreadable cache {path}: {exc}", stacklevel=2)
            return None

    def _save_cache(self) -> None:
        path = self._cache_path()
        if path is None or self.cached_real is not None or int(self.real.n) != self.context.num_images:
            return
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return
        stats = {k: v.cpu() for k, v in self.real.tensors("real").items()}
        atomic.torch_save(path, {"key": json.dumps(self._cache_key(), sort_keys=True), "stats": stats})

    # ---- streaming ---------------------------------------------------------------------

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        if next(self.extractor.parameters(), torch.empty(0)).device != images.device:
            self.extractor.to(images.device)
        with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
            (features,) = self.extractor(images)
        return features

    def update(self, batch: EvalBatch) -> None:
        if self.cached_real is None:
            self.real.add(self._features(batch.originals))
        self.fake.add(self._features(batch.reconstructions))
        self.image_size = list(batch.originals.shape[-2:])

    def state(self) -> dict[str, torch.Tensor]:
        state = self.fake.tensors("fake")
        if self.cached_real is None:  # cached real statistics are already totals: never summed
            state.update(self.real.tensors("real"))
        return state

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.fake.load(state, "fake")
        if self.cached_real is None:
            self.real.load(state, "real")

    def compute(self) -> dict:
        real = self.cached_real or self.real
        mu1, sigma1 = real.mean_cov()
        mu2, sigma2 = self.fake.mean_cov()
        value = frechet_distance(mu1, sigma1, mu2, sigma2)
        self._save_cache()
        return {
            "value": value,
            "real_images": int(real.n),
            "reconstructed_images": int(self.fake.n),
            "real_statistics": "cache" if self.cached_real is not None else "computed",
        }

    def protocol(self) -> dict:
        import torch_fidelity

        return {
            "extractor": self.extractor_name,
            "feature_layer": self.layer,
            "weights_file": self.weights_file,
            "weights_sha256": self.weights_sha256,
            "weights_check": self.weights_check,
            "library": f"torch-fidelity {torch_fidelity.__version__}",
            "preprocessing": "uint8 in, extractor's own resize (TF1 bilinear to 299 for Inception), both sides",
            "dtype": "float32, no autocast; float64 statistics",
            "reference_set": "originals of the evaluation set",
            "image_size": self.image_size,
        }
