"""``qbench run`` guards: an empty quantizer list, fast configuration errors, one line per checkpoint error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT
from test_reliability import SMOKE, qbench, run_folders


@pytest.mark.parametrize("names", ["", ",", " , "])
def test_an_empty_quantizer_list_is_refused(capsys, tmp_path, names):
    out = tmp_path / "runs"
    status, errors, _ = qbench(capsys, *SMOKE, "--quantizers", names, "--out", str(out))
    assert status == 2 and len(errors) == 1 and "--quantizers needs at least one name" in errors[0], errors
    assert run_folders(out) == []


PROBE = """
import sys
from qbench import cli
status = cli.main(sys.argv[1:])
print("torch imported:", "torch" in sys.modules)
sys.exit(status)
"""


@pytest.mark.parametrize("setting", ["eval.batch_size=0", "optim.betas=[0.9,1.5]", "train.steps=-1"])
def test_a_pure_configuration_error_is_reported_before_torch_is_imported(tmp_path, setting):
    result = subprocess.run([sys.executable, "-c", PROBE, *SMOKE, "--quantizers", "gsq", "--set", setting,
                             "--set", 'eval.metrics=["psnr","bogus"]', "--out", str(tmp_path / "runs")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "torch imported: False" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "unknown metric 'bogus'" in lines[1], lines  # found without torch too


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("content", ["truncated", "malicious", "empty"])
def test_an_unloadable_checkpoint_is_one_error_line_on_resume(capsys, tmp_path, content):
    import pickle

    import torch

    run = tmp_path / "run"
    run.mkdir()
    target = run / "checkpoint.pt"
    if content == "truncated":
        torch.save({"format": "qbench-checkpoint", "model": torch.zeros(1000)}, target)
        target.write_bytes(target.read_bytes()[:300])
    elif content == "malicious":
        torch.save({"format": "qbench-checkpoint", "payload": _Evil()}, target, pickle_module=pickle)
    else:
        target.write_bytes(b"")
    status, errors, out = qbench(capsys, "run", "--resume", str(run), "--no-progress")
    assert status == 2 and len(errors) == 1, errors
    assert errors[0].startswith(f"qbench: error: checkpoint {target} is corrupt or not loadable safely")
    assert "this must never run" not in out
