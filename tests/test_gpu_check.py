"""benchmarks/gpu/check_gpu.py runs right the first time: its CPU dry run and its no-GPU message."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu" / "check_gpu.py"


def test_cpu_smoke_runs_the_whole_check_and_prints_one_table(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--quantizers", "gsq,fsq", "--work",
                             str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("quantizer "))
    rows = {line.split()[0]: line.split() for line in lines[header + 2:header + 4]}
    assert set(rows) == {"gsq", "fsq"}
    for cells in rows.values():
        assert cells[1] == "ok" and cells[3] == "2"  # status, steps
        assert cells[6] == "yes"  # the codes under bf16 autocast equal the float32 codes
    assert "imagenet128-vae, bf16" in result.stdout and "verdict: OK" in result.stdout
    assert len(list((tmp_path / "runs" / "imagenet128-vae").iterdir())) == 2
    assert "LPIPS loss: off in --cpu-smoke" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_without_a_gpu_it_says_how_to_dry_run(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--work", str(tmp_path)], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "check_gpu: no CUDA GPU is visible to torch; run with --cpu-smoke to dry-run this script on CPU"]
    assert not any(tmp_path.iterdir())  # nothing generated
