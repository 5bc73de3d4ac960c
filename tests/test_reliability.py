"""Every user error is found before training: one line per problem, exit 2, no run folder.

The commands are the ones a new user tried (issue: reliability); each is run
through ``qbench.cli.main`` in this process (fast), and the combined case
once as a real ``qbench`` process.
"""

from __future__ import annotations

import os
import stat
import tempfile

import pytest
import torch
from conftest import run_cli

from qbench import cli

SMOKE = ["run", "--recipe", "smoke", "--no-progress"]


def qbench(capsys, *args: str) -> tuple[int, list[str], str]:
    """Exit status, the stderr lines and stdout of ``qbench ARGS`` run in this process."""
    status = cli.main(list(args))
    captured = capsys.readouterr()
    return status, [line for line in captured.err.splitlines() if line.strip()], captured.out


def run_folders(out) -> list:
    return [p for p in out.rglob("*") if p.is_dir()] if out.exists() else []


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """No pretrained weights anywhere: what a fresh offline machine has."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return tmp_path / "torch"


# every configuration error `qbench run` finds before training; tests/test_sweep.py runs each through a
# one-point sweep too, so that the two commands' checks cannot drift apart
RUN_PREFLIGHT_CASES = [
        (["--quantizers", "gsq,vq", "--set", 'eval.metrics=["psnr","bogus"]'], "unknown metric 'bogus'"),
        (["--quantizers", "gsq", "--seed", "-1"], "--seed must be in 0..4294967295"),
        (["--quantizers", "gsq", "--seed", "4294967296"], "--seed must be in 0..4294967295"),
        (["--quantizers", "gsq", "--set", "data.image_size=15"], "not divisible by the downsample factor 2"),
        (["--quantizers", "gsq", "--set", "metrics.lpips.nett=vgg"], "has no option 'nett'"),
        (["--quantizers", "gsq", "--set", "quantizers.gsq.groups=3"], "not divisible by groups 3"),
        *([] if torch.cuda.is_available() else [
            (["--quantizers", "gsq", "--set", "train.device=cuda"], "train.device=cuda, but torch sees no CUDA GPU")]),
        (["--quantizers", "gsq,vq", "--set", "eval.batch_size=0"], "eval.batch_size must be >= 1, got 0"),
        (["--quantizers", "gsq", "--set", "optim.betas=[0.9,1.5]"], "optim.betas must both be in [0, 1)"),
        (["--quantizers", "gsq", "--seed", "18446744073709551615"], "--seed must be in 0..4294967295"),
        (["--quantizers", "gsq", "--seed", "99999999999999999999999"], "--seed must be in 0..4294967295"),
        (["--quantizers", "gsq,gsq"], "--quantizers names gsq more than once"),
        (["--quantizers", "gsq", "--set", "eval.max_images=-1"], "eval.max_images must be >= 0"),
        (["--quantizers", "gsq", "--set", "optim.weight_decay=nan"], "optim.weight_decay must be >= 0"),
]


@pytest.mark.parametrize("args, message", RUN_PREFLIGHT_CASES)
def test_configuration_errors_are_one_line_exit_2_before_any_training(capsys, tmp_path, args, message):
    out = tmp_path / "runs"
    status, errors, _ = qbench(capsys, *SMOKE, *args, "--out", str(out))
    assert status == 2
    assert errors == [errors[0]] and errors[0].startswith("qbench: error: ") and message in errors[0], errors
    assert not out.exists()  # no run folder: nothing was trained


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_cuda_without_a_gpu_is_a_configuration_error(capsys, tmp_path):
    status, errors, _ = qbench(capsys, *SMOKE, "--quantizers", "gsq", "--set", "train.device=cuda",
                               "--out", str(tmp_path / "runs"))
    assert status == 2 and len(errors) == 1
    assert "train.device=cuda, but torch sees no CUDA GPU" in errors[0]
    assert not (tmp_path / "runs").exists()


def test_a_corrupt_inception_file_is_found_before_training(capsys, tmp_path, empty_caches):
    cached = empty_caches / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a torch file" * 100)
    status, errors, _ = qbench(capsys, *SMOKE, "--quantizers", "gsq,vq", "--set", 'eval.metrics=["psnr","rfid"]',
                               "--out", str(tmp_path / "runs"))
    assert status == 2 and len(errors) == 1
    assert errors[0].startswith("qbench: error: metric 'rfid' (builtins): cannot build") and cached.name in errors[0]
    assert not (tmp_path / "runs").exists()


def test_missing_metric_weights_refuse_only_under_strict_metrics(capsys, tmp_path, empty_caches):
    status, errors, _ = qbench(capsys, *SMOKE, "--quantizers", "gsq", "--strict-metrics", "--set",
                               'eval.metrics=["psnr","lpips","rfid"]', "--set", "data.image_size=32",
                               "--out", str(tmp_path / "runs"))
    assert status == 2 and len(errors) == 2  # one line per missing file
    assert "--strict-metrics: lpips" in errors[0] and "--strict-metrics: rfid" in errors[1]
    assert not (tmp_path / "runs").exists()


def test_output_folder_that_is_a_file(capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, message in ((afile, f"--out {afile} is a file, not a folder"),
                         (afile / "sub", f"--out {afile / 'sub'}: {afile} is a file, not a folder")):
        status, errors, _ = qbench(capsys, *SMOKE, "--quantizers", "gsq", "--out", str(out))
        assert status == 2 and errors == [f"qbench: error: {message}"]
    assert afile.read_text() == "x"


def test_output_folder_that_cannot_be_written(capsys, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: make the write itself fail, as a read-only mount does
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        status, errors, _ = qbench(capsys, *SMOKE, "--quantizers", "gsq", "--out", str(locked / "runs"))
    finally:
        locked.chmod(stat.S_IRWXU)
    assert status == 2 and len(errors) == 1
    assert f"--out {locked / 'runs'}: cannot write in {locked} (Permission denied)" in errors[0]
    assert list(locked.iterdir()) == []


def test_every_problem_is_reported_at_once_by_the_real_command(tmp_path):
    """The issue's commands together: one line each, exit 2, no traceback, no run folder."""
    afile = tmp_path / "afile"
    afile.write_text("")
    result = run_cli(*SMOKE, "--quantizers", "gsq,gsq,vq,nosuch", "--set", 'eval.metrics=["psnr","bogus"]',
                     "--set", "eval.batch_size=0", "--set", "optim.betas=[0.9,1.5]", "--seed", "18446744073709551615",
                     "--set", "quantizers.vq.codebook_size=1", "--out", str(afile))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and all(line.startswith("qbench: error: ") for line in lines)
    # every problem found without torch, at once; the plugins' own checks need them built (next attempt)
    expected = ["names gsq more than once", "unknown quantizer 'nosuch'", "eval.batch_size must be >= 1",
                "optim.betas must both be in [0, 1)", "--seed must be in 0..4294967295", "unknown metric 'bogus'",
                f"--out {afile} is a file"]
    for message in expected:
        assert sum(message in line for line in lines) == 1, (message, lines)
    assert len(lines) == len(expected)
    fixed = run_cli(*SMOKE, "--quantizers", "gsq,vq", "--set", "quantizers.vq.codebook_size=1",
                    "--set", 'eval.metrics=["psnr","bogus"]', "--out", str(tmp_path / "runs"))
    lines = fixed.stderr.strip().splitlines()
    assert fixed.returncode == 2 and len(lines) == 2, fixed.stderr
    assert "unknown metric 'bogus'" in lines[0] and "quantizer 'vq' (builtins): codebook_size must be an integer >= 2" in lines[1]


def test_argparse_errors_are_one_line_with_a_pointer_to_help(capsys):
    status, errors, _ = qbench(capsys, "run", "--seed", "x")
    assert status == 2
    assert errors == ["qbench: error: argument --seed: invalid int value: 'x' (see: qbench run --help)"]
    status, errors, _ = qbench(capsys, "weights", "fetch", "--nosuch")
    assert status == 2 and len(errors) == 1 and "(see: qbench weights fetch --help)" in errors[0]


def test_resume_takes_no_flags_that_would_change_the_run(capsys, tmp_path):
    status, errors, _ = qbench(capsys, "run", "--resume", str(tmp_path), "--set", "train.steps=12",
                               "--quantizers", "vq", "--seed", "5")
    assert status == 2 and len(errors) == 1
    assert "--resume continues a run with its own recipe, quantizer, seed and folder; it takes none of " \
           "--quantizers, --set, --seed" in errors[0]


def test_weights_install_on_a_folder_says_it_is_a_folder(capsys, tmp_path):
    status, errors, _ = qbench(capsys, "weights", "install", str(tmp_path))
    assert status == 2 and len(errors) == 1
    assert f"{tmp_path} is a folder; give the weights file itself" in errors[0]


def test_weights_fetch_without_network_is_one_line_per_file(capsys, tmp_path, monkeypatch, empty_caches):
    for proxy in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # nothing listens there: refused at once, as offline
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    status, errors, _ = qbench(capsys, "weights", "fetch", "alexnet", "inception")
    assert status == 2 and len(errors) == 2, errors
    assert errors[0].startswith("qbench: error: cannot download alexnet from https://download.pytorch.org/")
    assert errors[1].startswith("qbench: error: cannot download inception from https://github.com/")
    assert all("qbench weights install FILE" in line for line in errors)
    assert not any(empty_caches.rglob("*.pth"))  # nothing half-downloaded under the real name
