"""Pretrained weights: found in the torch cache without network, verified, installed."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import urllib.request

import pytest
import torch

import qbench
from qbench import weights


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def random_inception_state_dict(monkeypatch):
    """torch-fidelity's Inception with random values, built without its weights."""
    from torch_fidelity import feature_extractor_inceptionv3 as inc

    with monkeypatch.context() as patch:
        patch.setattr(inc, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        model = inc.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    return model.state_dict()


def test_random_inception_file_in_torch_home_loads_offline_and_reports_mismatch(torch_home, no_network, monkeypatch):
    from qbench_builtins.metrics import ReconstructionFID

    path = torch_home / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    path.parent.mkdir(parents=True)
    saved = random_inception_state_dict(monkeypatch)
    torch.save(saved, path)

    metric = ReconstructionFID()  # would try to download (and fail the no_network guard) if it missed the file
    loaded = metric.extractor.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in ("Conv2d_1a_3x3.conv.weight", "fc.weight", "fc.bias"))
    assert metric.protocol()["weights_check"] == "mismatch"

    rows = {row["name"]: row for row in weights.status()}
    assert rows["inception"]["present"] is True
    assert rows["inception"]["path"] == str(path)
    assert rows["inception"]["check"] == "mismatch"
    assert rows["inception"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rows["alexnet"]["present"] is False and rows["alexnet"]["check"] == "missing"

    from conftest import run_cli

    proc = run_cli("weights", "status", env={"TORCH_HOME": str(torch_home)})
    assert proc.returncode == 0, proc.stderr
    inception_line = next(line for line in proc.stdout.splitlines() if line.startswith("inception"))
    assert "mismatch" in inception_line and rows["inception"]["sha256"][:16] in inception_line


def test_status_lists_every_file_under_torch_home(torch_home):
    rows = weights.status()
    names = [row["name"] for row in rows]
    assert {"inception", "alexnet", "vgg16", "squeezenet", "dinov2"} <= set(names)
    for row in [r for r in rows if r["name"] != "dinov2"]:
        assert row["path"].startswith(str(torch_home / "hub" / "checkpoints"))
        assert row["present"] is False


def test_missing_weights_make_metrics_unavailable_with_instructions(torch_home, no_network):
    from qbench_builtins.metrics import LPIPSMetric, ReconstructionFID

    with pytest.raises(qbench.MetricUnavailable, match="alexnet-owt-7be5be79.pth.*qbench weights install FILE"):
        LPIPSMetric()
    with pytest.raises(qbench.MetricUnavailable, match="vgg16-397923af.pth"):
        LPIPSMetric(net="vgg")
    with pytest.raises(qbench.MetricUnavailable, match="qbench weights fetch inception"):
        ReconstructionFID()


def test_install_rejects_unknown_and_corrupt_files(tmp_path, torch_home):
    stranger = tmp_path / "something.pth"
    stranger.write_bytes(b"not weights")
    with pytest.raises(qbench.ConfigError, match="not a known weights file"):
        weights.install(stranger)
    corrupt = tmp_path / "alexnet-owt-7be5be79.pth"
    corrupt.write_bytes(b"truncated download")
    with pytest.raises(qbench.ConfigError, match="must start with 7be5be79"):
        weights.install(corrupt)
    with pytest.raises(qbench.ConfigError, match="does not exist"):
        weights.install(tmp_path / "absent.pth")
    assert not (torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth").exists()


def test_install_copies_a_verified_file_into_the_cache(tmp_path, torch_home, monkeypatch):
    brought = tmp_path / "downloaded-elsewhere.bin"
    brought.write_bytes(b"pretend alexnet weights")
    prefix = hashlib.sha256(brought.read_bytes()).hexdigest()[:8]
    # pretend the known checksum is this file's, so the success path can be tested offline
    known = weights.catalogue()
    known["alexnet"] = dataclasses.replace(known["alexnet"], sha256_prefix=prefix)
    monkeypatch.setattr(weights, "catalogue", lambda: known)

    target = weights.install(brought)  # identified by its checksum, not its name
    assert target == torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert target.read_bytes() == brought.read_bytes()
    assert weights.describe("alexnet")["check"] == "ok (sha256 prefix)"


def test_catalogue_comes_from_plugins_and_covers_every_lpips_network():
    from qbench.recipe.config import LPIPS_NETS

    known = weights.catalogue()
    assert {"inception", "alexnet", "vgg16", "squeezenet"} <= set(known)
    assert all(spec.origin == "builtins" for spec in known.values())
    assert tuple(weights.LPIPS_NETWORKS) == LPIPS_NETS
    assert set(weights.LPIPS_NETWORKS.values()) <= set(known)


def test_a_plugin_declares_its_own_weights(monkeypatch):
    class Plugin:
        @qbench.hookimpl
        def qbench_register_weights(self):
            return [qbench.WeightsSpec(name="mynet", filename="mynet-0123abcd.pth", url="https://example.org/mynet.pth",
                                       sha256_prefix="0123abcd", used_by="my metric")]

    real = qbench.registries
    monkeypatch.setattr("qbench.platform.plugins.registries", lambda **kw: real(extra_plugins={"mine": Plugin()}, **kw))
    row = weights.describe("mynet")
    assert row["present"] is False and row["used_by"] == "my metric"
    assert "mynet" in [r["name"] for r in weights.status()]


def test_corrupt_cached_lpips_backbone_names_its_file_and_the_fix(torch_home, no_network):
    from qbench_builtins.metrics import LPIPSMetric

    cached = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"a truncated download, not a pickle")
    with pytest.raises(qbench.ConfigError) as caught:
        LPIPSMetric()
    message = str(caught.value)
    assert "\n" not in message
    assert str(cached) in message and "qbench weights fetch alexnet" in message


def test_corrupt_cached_inception_names_its_file_and_the_fix(torch_home, no_network):
    from qbench_builtins.metrics import ReconstructionFID

    cached = torch_home / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"a truncated download, not a pickle" * 10)
    with pytest.raises(qbench.ConfigError) as caught:
        ReconstructionFID()
    message = str(caught.value)
    assert "\n" not in message
    assert str(cached) in message
    assert "qbench weights fetch inception" in message and "qbench weights install FILE" in message


@pytest.mark.parametrize("net", sorted(weights.LPIPS_MIN_IMAGE_SIZE))
def test_lpips_smallest_image_sizes_are_the_librarys(net):
    """The table the up-front check uses, against lpips itself (random backbone weights, same shapes)."""
    import warnings

    lpips = pytest.importorskip("lpips")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()
    smallest = weights.LPIPS_MIN_IMAGE_SIZE[net]
    with torch.no_grad():
        for size in (smallest, smallest + 1, 2 * smallest):
            model(torch.zeros(1, 3, size, size), torch.zeros(1, 3, size, size))
        with pytest.raises(RuntimeError, match="too small"):
            model(torch.zeros(1, 3, smallest - 1, smallest - 1), torch.zeros(1, 3, smallest - 1, smallest - 1))
        model(torch.zeros(1, 3, smallest, 4 * smallest), torch.zeros(1, 3, smallest, 4 * smallest))  # the short side
    assert weights.lpips_size_problem(net, smallest, smallest) == ""
    assert f"at least {smallest}x{smallest}" in weights.lpips_size_problem(net, smallest - 1, 64)
