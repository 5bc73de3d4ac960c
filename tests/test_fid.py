"""rFID: the streaming code path against torch-fidelity and a scipy reference, offline.

A small random-weight feature extractor registered with torch-fidelity stands
in for Inception (whose weights are absent here), so these tests check the
plumbing and the Frechet arithmetic, not Inception itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

import qbench
from qbench.metric import EvalBatch, EvalContext, merge_states
from qbench_builtins.metrics.fid import ReconstructionFID, frechet_distance

EXTRACTOR = "qbench-test-random"


class RandomFeatures(FeatureExtractorBase):
    """Fixed random convolution + pooling: 24-d features of uint8 images."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        gen = torch.Generator().manual_seed(1234)
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen) * 0.3)
            self.conv.bias.copy_(torch.randn(6, generator=gen) * 0.1)

    @staticmethod
    def get_provided_features_list():
        return ("feat",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "feat"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 16, 16, dtype=torch.uint8)

    def forward(self, x):
        assert x.dtype == torch.uint8
        h = torch.relu(self.conv((x.float() - 128) / 128))
        return (torch.nn.functional.adaptive_avg_pool2d(h, 2).flatten(1),)


if EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(EXTRACTOR, RandomFeatures)


class ImageSet(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def image_pairs(n=96, size=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    originals = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)
    # reconstructions: a blurred, noisier copy, so the two distributions differ
    blurred = torch.nn.functional.avg_pool2d(originals.float(), 3, stride=1, padding=1)
    noise = torch.randn(blurred.shape, generator=gen) * 12
    reconstructions = (blurred + noise).round().clamp(0, 255).to(torch.uint8)
    return originals, reconstructions


def streamed_fid(originals, reconstructions, batch=32, **kwargs):
    metric = ReconstructionFID(feature_extractor=EXTRACTOR, **kwargs)
    metric.begin(EvalContext(num_images=len(originals)))
    for i in range(0, len(originals), batch):
        sl = slice(i, i + batch)
        metric.update(EvalBatch(originals[sl], reconstructions[sl], torch.zeros(1, 1, 1, 1, dtype=torch.long)))
    return metric


def test_streamed_rfid_equals_torch_fidelity_calculate_metrics():
    originals, reconstructions = image_pairs()
    ours = streamed_fid(originals, reconstructions).compute()["value"]
    theirs = torch_fidelity.calculate_metrics(
        input1=ImageSet(originals),
        input2=ImageSet(reconstructions),
        fid=True,
        feature_extractor=EXTRACTOR,
        cuda=False,
        save_cpu_ram=True,
        verbose=False,
        batch_size=40,
    )[torch_fidelity.KEY_METRIC_FID]
    assert ours > 0.01  # the two sets differ: a vacuous 0 == 0 would prove nothing
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_frechet_distance_matches_float64_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 12))
    b = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    reference = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-8)


def test_streamed_statistics_equal_numpy_mean_and_cov():
    originals, reconstructions = image_pairs(n=40)
    metric = streamed_fid(originals, reconstructions, batch=7)
    features = metric.extractor(originals)[0].double().numpy()
    mu, sigma = metric.real.mean_cov()
    np.testing.assert_allclose(mu, features.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False), rtol=1e-8, atol=1e-12)


def test_identical_sets_give_zero_and_split_states_add_up():
    originals, reconstructions = image_pairs(n=48)
    same = streamed_fid(originals, originals).compute()["value"]
    assert abs(same) < 1e-6
    whole = streamed_fid(originals, reconstructions)
    halves = [streamed_fid(originals[:20], reconstructions[:20]), streamed_fid(originals[20:], reconstructions[20:])]
    merged = ReconstructionFID(feature_extractor=EXTRACTOR)
    merged.load_state(merge_states([h.state() for h in halves]))
    assert merged.compute()["value"] == pytest.approx(whole.compute()["value"], rel=1e-9)


def test_real_statistics_are_cached_per_evaluation_set(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    originals, reconstructions = image_pairs(n=32)

    def run(key, recon):
        metric = ReconstructionFID(feature_extractor=EXTRACTOR)
        metric.begin(EvalContext(dataset_key=key, num_images=len(originals)))
        for i in range(0, 32, 16):
            batch_originals = originals[i : i + 16] if metric.cached_real is None else torch.zeros_like(originals[:16])
            metric.update(EvalBatch(batch_originals, recon[i : i + 16], torch.zeros(1, 1, 1, 1, dtype=torch.long)))
        return metric.compute()

    first = run("photos/val/16", reconstructions)
    assert first["real_statistics"] == "computed"
    assert len(list((tmp_path / "qbench_fid_cache").glob("real-*.pt"))) == 1
    # second run: originals are replaced by zeros, so only the cache can give the same value
    second = run("photos/val/16", reconstructions)
    assert second["real_statistics"] == "cache"
    assert second["value"] == pytest.approx(first["value"], rel=1e-12)
    other = run("photos/val/32", reconstructions)  # another evaluation set: no reuse
    assert other["real_statistics"] == "computed"


def test_default_rfid_is_unavailable_without_inception_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(qbench.MetricUnavailable, match="weights-inception-2015-12-05-6726825d.pth.*weights fetch"):
        ReconstructionFID()


def test_rfid_conformance_with_random_extractor():
    from qbench.testing import check_metric

    out = check_metric("rfid", feature_extractor=EXTRACTOR)
    assert out["value"] > 0


RANKED_CACHE = """
import os, sys
import torch
sys.path.insert(0, sys.argv[1])
import test_fid  # registers the random extractor
from qbench.engine import distributed
from qbench.metric import EvalContext
from qbench_builtins.metrics.fid import ReconstructionFID

torch.set_num_threads(1)
distributed.init(torch.device("cpu"))
rank = distributed.rank()
os.environ["TORCH_HOME"] = sys.argv[2 + rank]  # rank 0's cache folder has the statistics, rank 1's is empty
metric = ReconstructionFID(feature_extractor=test_fid.EXTRACTOR)
metric.begin(EvalContext(dataset_key="photos/val/16", num_images=32))
real = metric.cached_real
torch.save({"sum": None if real is None else real.sum}, os.path.join(sys.argv[4], f"rank{rank}.pt"))
distributed.shutdown()
"""


def test_every_rank_uses_the_cached_real_statistics_that_rank_0_finds(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    from pathlib import Path

    cached, empty = tmp_path / "cached", tmp_path / "empty"
    monkeypatch.setenv("TORCH_HOME", str(cached))
    originals, reconstructions = image_pairs(n=32)
    first = ReconstructionFID(feature_extractor=EXTRACTOR)
    first.begin(EvalContext(dataset_key="photos/val/16", num_images=32))
    first.update(EvalBatch(originals, reconstructions, torch.zeros(1, 1, 1, 1, dtype=torch.long)))
    assert first.compute()["real_statistics"] == "computed"
    script = tmp_path / "ranked_cache.py"
    script.write_text(RANKED_CACHE)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(Path(__file__).parent), str(cached), str(empty), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):  # rank 1 saw no cache file itself, and still uses rank 0's statistics
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)["sum"]
        assert got is not None and torch.equal(got, first.real.sum.cpu()), rank
