"""Usage and perplexity are computed by the host from the codes and ``codebook_size``.

Every quantizer gets the same computation, in the training log and at
evaluation; a plugin's own ``usage`` / ``perplexity`` stats are ignored.
Implicit codebooks far too large for a dense histogram (FSQ [1024]*4 = 2^40
codes, BSQ at 36 bits) are counted sparsely, with the same result.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from conftest import make_distribution, run_cli

import qbench
from qbench.codebook import host_code_stats, nonzero_counts, usage_stats
from qbench.metric import EvalBatch
from qbench.testing import check_quantizer


def brute_force(codes: torch.Tensor, size: int, shared: bool) -> dict[str, float]:
    """Usage and perplexity by counting Python tuples (no torch histogram at all)."""
    rows = [tuple(r) for r in codes.reshape(-1, codes.shape[-1]).tolist()]
    columns = [[r[t] for r in rows] for t in range(codes.shape[-1])]
    hists = [Counter(c for col in columns for c in col)] if shared else [Counter(col) for col in columns]

    def ppl(counter):
        total = sum(counter.values())
        return math.exp(-sum(n / total * math.log(n / total) for n in counter.values()))

    return {"usage": sum(100.0 * len(h) / size for h in hists) / len(hists),
            "perplexity": sum(ppl(h) for h in hists) / len(hists)}


@pytest.mark.parametrize("shared", [True, False])
def test_sparse_and_dense_counting_agree_with_brute_force(shared):
    torch.manual_seed(0)
    codes = torch.randint(0, 37, (3, 4, 5, 3))
    dense = usage_stats(codes, 37, shared=shared)
    sparse = usage_stats(codes, 37, shared=shared, dense_limit=0)
    expected = brute_force(codes, 37, shared)
    assert dense.keys() == sparse.keys()
    for key in dense:
        assert float(dense[key]) == pytest.approx(float(sparse[key]), rel=1e-6)
    assert float(sparse["usage"]) == pytest.approx(expected["usage"], rel=1e-6)
    assert float(sparse["perplexity"]) == pytest.approx(expected["perplexity"], rel=1e-6)
    assert sorted(torch.cat(nonzero_counts(codes, 37, shared, dense_limit=0)).tolist()) == sorted(
        torch.cat(nonzero_counts(codes, 37, shared)).tolist())


def test_fsq_with_2_to_the_40_codes_gets_usage_without_a_dense_histogram():
    from qbench_builtins.fsq import FiniteScalarQuantizer

    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer(dim=4, levels=[1024] * 4)
    assert fsq.codebook_size == 2**40
    out = fsq(torch.randn(2, 4, 8, 8))
    stats = host_code_stats(fsq, out.codes)
    expected = brute_force(out.codes, 2**40, shared=True)
    assert stats["usage"] == pytest.approx(expected["usage"], rel=1e-6) and stats["usage"] > 0
    assert stats["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-6)


def test_bsq_at_36_bits_gets_usage_without_a_dense_histogram():
    from qbench_builtins.bsq import BinarySphericalQuantizer

    torch.manual_seed(0)
    bsq = BinarySphericalQuantizer(dim=36, bits=36, entropy_group_size=9)
    out = bsq(torch.randn(2, 36, 4, 4))
    stats = host_code_stats(bsq, out.codes)
    expected = brute_force(out.codes, 2**36, shared=bool(bsq.codebook_shared))
    assert stats["usage"] == pytest.approx(expected["usage"], rel=1e-6)
    assert stats["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-6)


def test_a_quantizer_without_tokens_or_codebook_has_no_usage():
    nothing = SimpleNamespace(codebook_size=None, tokens_per_position=0)
    assert host_code_stats(nothing, torch.zeros(2, 4, 4, 0, dtype=torch.int64)) == {}
    assert usage_stats(torch.zeros(2, 4, 4, 0, dtype=torch.int64), 16) == {}


def _batch(codes, quantizer):
    images = torch.zeros(codes.shape[0], 3, 4, 4, dtype=torch.uint8)
    return EvalBatch(images, images.clone(), codes, tokenizer=SimpleNamespace(quantizer=quantizer))


@pytest.mark.parametrize("shared", [True, False])
def test_evaluation_usage_is_the_same_counted_sparsely_and_split_over_ranks(monkeypatch, shared):
    from qbench_builtins.metrics import codes as code_metrics

    torch.manual_seed(1)
    quantizer = SimpleNamespace(codebook_size=50, tokens_per_position=2, codebook_shared=shared)
    batches = [torch.randint(0, 50, (2, 3, 3, 2)) for _ in range(3)]
    results = {}
    for limit in (10**9, 0):
        monkeypatch.setattr(code_metrics, "DENSE_LIMIT", limit)
        for cls in (code_metrics.CodebookUsage, code_metrics.Perplexity):
            whole, shards = cls(), [cls(), cls()]
            for i, codes in enumerate(batches):
                whole.update(_batch(codes, quantizer))
                shards[i % 2].update(_batch(codes, quantizer))
            assert whole.sparse == (limit == 0)
            if whole.sparse:  # what reduce_states does with keyed states under DDP
                shards[0].merge_gathered([s.state() for s in shards])
            else:
                shards[0].load_state({"hist": shards[0].hist + shards[1].hist})
            assert shards[0].compute()["value"] == pytest.approx(whole.compute()["value"], rel=1e-9)
            results[(limit, cls.__name__)] = whole.compute()
    expected = brute_force(torch.cat(batches), 50, shared)
    for (_, name), result in results.items():
        key = "usage" if name == "CodebookUsage" else "perplexity"
        assert result["value"] == pytest.approx(expected[key], rel=1e-9)


HOOKS = """
import qbench

@qbench.hookimpl
def qbench_register_quantizers():
    return [qbench.QuantizerSpec(name=n, factory=f"old_plugin.quantizer:{c}", paper="none")
            for n, c in (("nousage", "NoUsage"), ("fraction", "Fraction"))]
"""

QUANTIZER = """
import qbench
from qbench_builtins.gsq import GroupedSphericalQuantizer


class NoUsage(GroupedSphericalQuantizer):
    def forward(self, z):
        out = super().forward(z)
        return qbench.QuantizerOutput(out.z_q, out.codes, out.loss, {})


class Fraction(GroupedSphericalQuantizer):
    def forward(self, z):  # qbench 0.1 asked for usage as a fraction
        out = super().forward(z)
        return qbench.QuantizerOutput(out.z_q, out.codes, out.loss, {"usage": out.stats["usage"] / 100})
"""


def test_plugins_reporting_no_usage_or_a_fraction_get_the_hosts_usage_everywhere(site, tmp_path):
    make_distribution(site, "old-plugin", "0.1", {"old": "old_plugin.hooks"},
                      {"old_plugin/__init__.py": "", "old_plugin/hooks.py": HOOKS, "old_plugin/quantizer.py": QUANTIZER})
    out = tmp_path / "runs"
    result = run_cli("run", "--recipe", "smoke", "--quantizers", "gsq,nousage,fraction", "--no-progress",
                     "--set", 'eval.metrics=["psnr","usage","perplexity"]', "--set", "quantizers.nousage.codebook_size=16",
                     "--set", "quantizers.fraction.codebook_size=16", "--out", str(out))
    assert result.returncode == 0, result.stderr
    logs, scores = {}, {}
    for folder in (out / "smoke").iterdir():
        name = folder.name.split("-seed")[0]
        logs[name] = [(row["usage"], row["perplexity"]) for row in csv.DictReader((folder / "log.csv").open())]
        metrics = json.loads((folder / "metrics.json").read_text())["metrics"]
        scores[name] = (metrics["usage"]["value"], metrics["perplexity"]["value"])
    # the same model trained from the same seed: the host's numbers must not depend on the plugin's stats
    assert logs["gsq"] and all(float(u) > 1 for u, _ in logs["gsq"])
    assert logs["nousage"] == logs["gsq"] == logs["fraction"]
    assert scores["nousage"] == scores["gsq"] == scores["fraction"]
    table = [line for line in result.stdout.splitlines() if line.startswith(("| gsq", "| nousage", "| fraction"))]
    assert len(table) == 3 and len({line.split("|")[4] for line in table}) == 1, table


def test_the_conformance_kit_ignores_a_plugins_own_usage():
    from qbench_builtins.gsq import GroupedSphericalQuantizer

    class Fraction(GroupedSphericalQuantizer):
        def forward(self, z):
            out = super().forward(z)
            return qbench.QuantizerOutput(out.z_q, out.codes, out.loss, {"usage": out.stats["usage"] / 100})

    check_quantizer(Fraction(8, codebook_size=16))


def test_fsq_with_levels_1024_x4_trains_and_reports_usage(capsys, tmp_path):
    from qbench import cli

    out = tmp_path / "runs"
    status = cli.main(["run", "--recipe", "smoke", "--quantizers", "fsq", "--no-progress", "--out", str(out),
                       "--set", "quantizers.fsq.levels=[1024,1024,1024,1024]",
                       "--set", 'eval.metrics=["psnr","usage","perplexity","bits"]'])
    printed = capsys.readouterr().out
    assert status == 0
    (folder,) = (out / "smoke").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())["metrics"]
    assert metrics["bits"]["value"] == 40.0
    usage, perplexity = metrics["usage"], metrics["perplexity"]
    assert usage["status"] == "ok" and 0 < usage["value"] < 1e-3
    # every code distinct or not, perplexity counts at most the positions seen, usage their share of 2^40
    assert 1 <= perplexity["value"] <= usage["value"] / 100 * 2**40 + 1e-6
    rows = list(csv.DictReader((folder / "log.csv").open()))
    assert rows and all(0 < float(r["usage"]) < 1e-3 for r in rows)
    (line,) = [line for line in printed.splitlines() if line.startswith("| fsq")]
    assert "e-0" in line  # the table shows the tiny usage, not 0.0000
