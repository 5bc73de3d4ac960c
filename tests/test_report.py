"""qbench report over synthetic run directories."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from qbench.recipe.config import recipe_from_dict
from qbench.recipe.identity import RunIdentity
from qbench.report.columns import fmt
from qbench.report.publish import write_report
from qbench.report.tables import build_report, render_text
from qbench.rundir import directory as results


def metric(value, status="ok", reason="", protocol=None):
    return {"status": status, "value": value, "reason": reason, "protocol": protocol or {"images": 64}, "extras": {}}


def make_run(root, recipe, quantizer, options, seed, *, status="ok", reason="", psnr=25.0, usage=50.0, rfid=None, grid=True):
    identity = RunIdentity(dataclasses.replace(recipe, seed=seed), quantizer, {"dim": recipe.model.latent_dim, **options})
    directory = results.RunDirectory.create(root, recipe.name, quantizer, seed)
    run_dir = directory.path
    directory.write_config(identity)
    metrics = {"psnr": metric(psnr), "usage": metric(usage), "ssim": metric(0.8)}
    metrics["rfid"] = metric(rfid) if rfid is not None else metric(None, "unavailable", "Inception weights missing")
    record = results.build_record(
        identity, status=status, reason=reason,
        failed_step=7 if status == "failed" else None, metrics=metrics if status == "ok" else {},
        model_info={"bits_per_position": 10.0, "parameters": {"total": 2_000_000}},
        train_info={"steps": 10, "wall_time_s": 60.0},
    )
    directory.write_metrics(record)
    directory.write_log([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}])
    if grid:
        rng = np.random.default_rng(0)
        originals = rng.integers(0, 256, (4, 3, 8, 8), dtype=np.uint8)
        directory.write_recon_grid(originals, np.clip(originals.astype(int) + seed, 0, 255))
    return run_dir


@pytest.fixture
def recipes():
    return recipe_from_dict({"name": "a"}), recipe_from_dict({"name": "b", "train": {"steps": 7}})


def test_two_recipes_give_two_tables(tmp_path, recipes):
    a, b = recipes
    make_run(tmp_path, a, "gsq", {"dim": 8, "groups": 1}, 0)
    make_run(tmp_path, b, "gsq", {"dim": 8, "groups": 1}, 0)
    report = build_report([tmp_path])
    assert len(report.tables) == 2
    assert {t.runs["recipe"].iloc[0] for t in report.tables} == {"a", "b"}


def test_same_name_different_hash_is_not_mixed(tmp_path):
    make_run(tmp_path, recipe_from_dict({"name": "a"}), "vq", {"dim": 8}, 0)
    make_run(tmp_path, recipe_from_dict({"name": "a", "optim": {"lr": 1e-3}}), "vq", {"dim": 8}, 0)
    assert len(build_report([tmp_path]).tables) == 2


def test_seeds_aggregate_to_mean_and_std(tmp_path, recipes):
    a, _ = recipes
    for seed, psnr in enumerate([24.0, 26.0, 28.0]):
        make_run(tmp_path, a, "vq", {"dim": 8, "codebook_size": 1024}, seed, psnr=psnr)
    frame = build_report([tmp_path]).tables[0].frame
    assert len(frame) == 1
    assert frame.iloc[0]["seeds"] == 3
    half = stats.t.ppf(0.975, 2) * 2.0 / np.sqrt(3)  # the 95% t interval's half-width, s = 2
    assert frame.iloc[0]["PSNR (dB) ↑"] == f"26.0 ± {half:.2f} (n=3)"


def test_failed_run_and_unavailable_metric_are_not_numbers(tmp_path, recipes):
    a, _ = recipes
    make_run(tmp_path, a, "gsq", {"dim": 8}, 0)
    make_run(tmp_path, a, "fsq", {"dim": 8}, 0, status="failed", reason="non-finite loss at step 7")
    frame = build_report([tmp_path]).tables[0].frame
    gsq = frame[frame["quantizer"] == "gsq"].iloc[0]
    fsq = frame[frame["quantizer"] == "fsq"].iloc[0]
    assert gsq["rFID ↓"] == "unavailable"
    assert fsq["status"].startswith("failed: non-finite loss")
    assert fsq["PSNR (dB) ↑"] == "—"


def test_truncated_metrics_json_is_reported_as_broken(tmp_path, recipes):
    a, _ = recipes
    good = make_run(tmp_path, a, "gsq", {"dim": 8}, 0)
    bad = make_run(tmp_path, a, "vq", {"dim": 8}, 0)
    text = (bad / "metrics.json").read_text()
    (bad / "metrics.json").write_text(text[: len(text) // 2])
    report = build_report([tmp_path])
    assert [d for d, _ in report.broken] == [bad]
    assert "not valid JSON" in report.broken[0][1]
    assert list(report.tables[0].runs["run_dir"]) == [str(good)]
    assert "broken run" in render_text(report)


def test_run_without_metrics_is_unfinished_not_broken(tmp_path, recipes):
    a, _ = recipes
    good = make_run(tmp_path, a, "gsq", {"dim": 8}, 0)
    running = make_run(tmp_path, a, "vq", {"dim": 8}, 0)
    (running / "metrics.json").unlink()
    report = build_report([tmp_path])
    assert report.unfinished == [running] and report.broken == []
    assert list(report.tables[0].runs["run_dir"]) == [str(good)]
    assert "unfinished run" in render_text(report)
    write_report(report, tmp_path / "out")
    text = (tmp_path / "out" / "README.md").read_text()
    assert "## Unfinished runs" in text and str(running) in text and "## Broken runs" not in text


def test_written_report_has_csv_markdown_and_plots(tmp_path, recipes):
    a, _ = recipes
    for q in ("gsq", "vq"):
        make_run(tmp_path / "runs", a, q, {"dim": 8}, 0, rfid=3.0)
    report = build_report([tmp_path / "runs"])
    readme = write_report(report, tmp_path / "out")
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert "summary.csv" in names
    assert any(n.endswith("rd-psnr.png") for n in names)
    assert any(n.endswith("rd-rfid.png") for n in names)
    assert any(n.endswith("reconstructions.png") for n in names)
    assert any(n.endswith("curves.png") for n in names)
    text = readme.read_text()
    assert "| gsq |" in text and "PSNR (dB) ↑" in text


def test_metrics_record_is_atomic_json(tmp_path, recipes):
    a, _ = recipes
    run = make_run(tmp_path, a, "gsq", {"dim": 8}, 0)
    record = json.loads((run / "metrics.json").read_text())
    assert record["run"]["recipe_hash"] == a.hash()
    assert record["env"]["torch"]
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_report_cli_writes_files_and_rejects_missing_paths(tmp_path, recipes):
    from conftest import run_cli

    a, _ = recipes
    make_run(tmp_path / "runs", a, "gsq", {"dim": 8}, 0)
    intro = tmp_path / "intro.md"
    intro.write_text("# Published comparison\n\nRegenerate with: qbench run\n")
    result = run_cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--intro", str(intro))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "README.md").read_text().startswith("# Published comparison")
    missing = run_cli("report", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such results directory" in missing.stderr


# ---- records as the platform writes them (plugins, sweep, display fields), written without training ----


def entry(value, *, hib=True, unit="", heading="", fmt="", status="ok"):
    return {"status": status, "value": value, "reason": "" if status == "ok" else "weights missing",
            "protocol": {"images": 64}, "extras": {}, "higher_is_better": hib, "unit": unit,
            "heading": heading, "format": fmt}


def write_run(root, quantizer, options, seed, metrics, *, bits=10.0, recipe_hash="r0", config=None,
              sweep=None, plugins=None, status="ok", reason=""):
    run_dir = root / f"{quantizer}-{config or 'c'}-seed{seed}-{len(list(root.glob('*'))) if root.exists() else 0}"
    run_dir.mkdir(parents=True)
    run = {"quantizer": quantizer, "options": options, "recipe": "r", "recipe_hash": recipe_hash,
           "config_hash": config or f"{quantizer}-{recipe_hash}-{json.dumps(options, sort_keys=True)}",
           "seed": seed, "status": status, "reason": reason, "failed_step": None, "finished_at": "",
           "plugins": plugins or {"quantizer": {"name": quantizer, "plugin": "builtins", "distribution": "qbench", "version": "0.1.0"}}}
    if sweep:
        run["sweep"] = sweep
    record = {"schema": 1, "run": run, "metrics": metrics if status == "ok" else {},
              "model": {"bits_per_position": bits, "parameters": {"total": 1_000_000}}, "train": {"wall_time_s": 30.0}}
    (run_dir / "metrics.json").write_text(json.dumps(record))
    return run_dir


def psnr_metrics(psnr, **more):
    return {"psnr": entry(psnr, unit="dB", heading="PSNR (dB)"), "rfid": entry(None, hib=False, status="unavailable"), **more}


def test_third_party_metric_and_throughput_become_columns(tmp_path):
    for seed in range(2):
        metrics = psnr_metrics(24.0 + seed, sharpness=entry(0.5 + seed / 10, heading="sharpness (a.u.)", fmt=".3f"),
                               throughput=entry(100.0 + seed, unit="img/s", heading="throughput (img/s)"))
        write_run(tmp_path / "runs", "gsq", {"dim": 8, "codebook_size": 256}, seed, metrics)
    report = build_report([tmp_path / "runs"])
    assert [c.key for c in report.metrics] == ["rfid", "psnr", "throughput", "sharpness"]
    readme = write_report(report, tmp_path / "out").read_text()
    header = next(line for line in readme.splitlines() if line.startswith("| quantizer"))
    assert header.index("PSNR (dB) ↑") < header.index("throughput (img/s) ↑") < header.index("sharpness (a.u.) ↑")
    half = stats.t.ppf(0.975, 1) * np.std([0.5, 0.6], ddof=1) / np.sqrt(2)
    assert f"0.550 ± {half:.3f} (n=2)" in readme  # the metric's own format
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert sorted(summary["sharpness"]) == pytest.approx([0.5, 0.6])
    assert "throughput" in summary.columns


def test_summary_csv_has_each_configurations_mean_and_t_interval(tmp_path):
    values = [23.1, 24.7, 23.9]
    for seed, psnr in enumerate(values):
        write_run(tmp_path / "runs", "vq", {"dim": 8}, seed, psnr_metrics(psnr))
    write_run(tmp_path / "runs", "fsq", {"dim": 8}, 0, psnr_metrics(22.0))
    write_report(build_report([tmp_path / "runs"]), tmp_path / "out")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    vq = summary[summary["quantizer"] == "vq"]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert vq["psnr_mean"].tolist() == pytest.approx([np.mean(values)] * 3)
    assert vq["psnr_ci_low"].tolist() == pytest.approx([low] * 3)
    assert vq["psnr_ci_high"].tolist() == pytest.approx([high] * 3)
    assert vq["psnr_n"].tolist() == [3, 3, 3]
    fsq = summary[summary["quantizer"] == "fsq"].iloc[0]
    assert fsq["psnr_n"] == 1 and np.isnan(fsq["psnr_ci_low"])  # one seed: no interval


def test_plugin_version_shows_when_one_configuration_differs_in_it(tmp_path):
    def plugins(version):
        return {"quantizer": {"name": "gsq", "plugin": "builtins", "distribution": "qbench", "version": version}}

    for config, version in (("old", "0.1.0"), ("new", "0.2.0")):
        write_run(tmp_path / "runs", "gsq", {"dim": 8}, 0, psnr_metrics(24.0), config=config, plugins=plugins(version))
    write_run(tmp_path / "runs", "vq", {"dim": 8}, 0, psnr_metrics(23.0))
    frame = build_report([tmp_path / "runs"]).tables[0].frame
    assert sorted(frame["quantizer"]) == ["gsq [qbench 0.1.0]", "gsq [qbench 0.2.0]", "vq"]


def ladder_runs(root, *, seeds=3, rungs=(8, 10, 12, 14), gain=0.5):
    """gsq and vq on a four-rung ladder, at two latent widths (recipe points with their own hashes)."""
    rng = np.random.default_rng(0)
    truth = {}
    for dim in (4, 8):
        for q, offset in (("vq", 0.0), ("gsq", gain)):
            for rate in rungs:
                size = 2 ** (rate // (2 if q == "gsq" else 1))
                options = {"dim": dim, "codebook_size": size} | ({"groups": 2} if q == "gsq" else {})
                point = {"model.latent_dim": dim, f"quantizers.{q}.codebook_size": size, "rate": rate}
                for seed in range(seeds):
                    psnr = 14 + rate + 2 * np.log(rate) + offset + rng.normal(0, 0.1)
                    truth[(q, dim, rate, seed)] = psnr
                    write_run(root, q, options, seed, psnr_metrics(psnr), bits=float(rate), recipe_hash=f"d{dim}",
                              sweep={"name": "ladder", "file": "ladder.toml", "point": point})
    return truth


def test_sweep_runs_make_one_table_with_swept_columns(tmp_path):
    ladder_runs(tmp_path / "runs", seeds=2)
    write_run(tmp_path / "runs", "fsq", {"dim": 4}, 0, psnr_metrics(22.0))  # outside the sweep
    report = build_report([tmp_path / "runs"])
    sweeps = [t for t in report.tables if t.sweep]
    assert len(sweeps) == 1 and len(report.tables) == 2
    frame = sweeps[0].frame
    assert list(frame.columns[:4]) == ["quantizer", "rate", "model.latent_dim", "codebook_size"]
    assert len(frame) == 2 * 2 * 4 and set(frame["seeds"]) == {2}
    assert set(frame["quantizer"]) == {"gsq (groups=2)", "vq"}  # swept options are columns, not labels
    gsq = frame[(frame["quantizer"] == "gsq (groups=2)") & (frame["model.latent_dim"] == 8)]
    assert gsq["rate"].tolist() == [8, 10, 12, 14] and gsq["codebook_size"].tolist() == [16, 32, 64, 128]
    write_report(report, tmp_path / "out")
    assert (tmp_path / "out" / "sweep-ladder-rd-psnr.png").exists()


def test_usage_of_a_ladder_is_drawn_along_the_curves(tmp_path, monkeypatch):
    from qbench.report import figures, plots

    ladder_runs(tmp_path / "runs", seeds=2)
    for path in (tmp_path / "runs").rglob("metrics.json"):  # give every run a usage
        record = json.loads(path.read_text())
        record["metrics"]["usage"] = entry(50.0, unit="%", heading="usage (%)")
        path.write_text(json.dumps(record))
    drawn = []
    monkeypatch.setattr(plots, "bars", lambda *a, **k: pytest.fail("a ladder's usage should be lines, not bars"))
    monkeypatch.setattr(plots, "rate_distortion", lambda series, ylabel, path, title, **kw: drawn.append((title, series)))
    report = build_report([tmp_path / "runs"])
    figures.table_figures(report.runs, report.metrics, tmp_path, "t")
    usage = [series for title, series in drawn if title.startswith("codebook usage by rate")]
    assert len(usage) == 1 and all(len(s["bits"]) == 4 for s in usage[0])


def test_sweep_tables_follow_the_order_of_the_paths(tmp_path):
    for name in ("zeta", "alpha"):
        write_run(tmp_path / name, "gsq", {"dim": 4}, 0, psnr_metrics(22.0), recipe_hash=name,
                  sweep={"name": name, "file": f"{name}.toml", "point": {"rate": 10}})
    first = build_report([tmp_path / "zeta", tmp_path / "alpha"])
    assert [t.sweep for t in first.tables] == ["zeta", "alpha"]
    assert [t.sweep for t in build_report([tmp_path / "alpha", tmp_path / "zeta"]).tables] == ["alpha", "zeta"]


def test_baseline_pairs_by_seed_and_rung_as_scipy_does(tmp_path):
    truth = ladder_runs(tmp_path / "runs")
    report = build_report([tmp_path / "runs"], baseline="vq")
    paired = next(s for s in report.sections if "paired" in s.title).frame
    assert len(paired) == 2 * 4  # gsq at each latent width and rung, PSNR only
    row = paired[paired["at"] == "model.latent_dim=8, rate=12"].iloc[0]
    test = [truth[("gsq", 8, 12, s)] for s in range(3)]
    base = [truth[("vq", 8, 12, s)] for s in range(3)]
    expected = stats.ttest_rel(test, base)
    interval = expected.confidence_interval(0.95)
    assert row["Δ mean"] == fmt(np.mean(np.subtract(test, base)))
    assert row["95% CI"] == f"[{fmt(interval.low)}, {fmt(interval.high)}]"
    assert row["p"] == f"{expected.pvalue:.2g}" and row["pairs"] == 3
    assert row["vs"] == "vq"


def test_bd_in_the_report_matches_the_package(tmp_path):
    bjontegaard = pytest.importorskip("bjontegaard")
    truth = ladder_runs(tmp_path / "runs")
    report = build_report([tmp_path / "runs"], baseline="vq", bd_method="pchip")
    bd = next(s for s in report.sections if "Bjøntegaard" in s.title).frame
    assert len(bd) == 2  # gsq against vq at each latent width
    rates = np.array([8, 10, 12, 14], dtype=float)
    mean = {q: [np.mean([truth[(q, 4, r, s)] for s in range(3)]) for r in (8, 10, 12, 14)] for q in ("gsq", "vq")}
    expected = bjontegaard.bd_rate(rates, mean["vq"], rates, mean["gsq"], method="pchip")
    row = bd[bd["quantizer"].str.contains("latent_dim=4")].iloc[0]
    assert row["BD-rate (%), mean curves"] == f"{expected:+.2f}" and expected < 0
    per_seed = [bjontegaard.bd_rate(rates, [truth[("vq", 4, r, s)] for r in rates.astype(int)],
                                    rates, [truth[("gsq", 4, r, s)] for r in rates.astype(int)], method="pchip")
                for s in range(3)]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(per_seed), scale=stats.sem(per_seed))
    assert row["BD-rate 95% CI"] == f"[{low:+.2f}, {high:+.2f}]" and row["seeds"] == 3
    assert row["BD-rate (%), per seed"] == f"{np.mean(per_seed):+.2f}"  # the centre of its own interval


def test_extra_seeds_at_one_rung_do_not_tilt_the_bd_value(tmp_path):
    ladder_runs(tmp_path / "runs")
    before = build_report([tmp_path / "runs"], baseline="vq")
    point = {"model.latent_dim": 4, "quantizers.gsq.codebook_size": 32, "rate": 10}
    for seed in (3, 4, 5):  # seeds only one rung of one curve has, far off its other seeds
        write_run(tmp_path / "runs", "gsq", {"dim": 4, "codebook_size": 32, "groups": 2}, seed, psnr_metrics(40.0),
                  bits=10.0, recipe_hash="d4", sweep={"name": "ladder", "file": "ladder.toml", "point": point})
    after = build_report([tmp_path / "runs"], baseline="vq")
    row = {name: next(s for s in r.sections if "Bjøntegaard" in s.title).frame.set_index("quantizer")
           for name, r in (("before", before), ("after", after))}
    label = next(q for q in row["before"].index if "latent_dim=4" in q)
    assert row["after"].loc[label].equals(row["before"].loc[label])  # value, interval and seeds unchanged
    paired = next(s for s in after.sections if "paired" in s.title).frame
    assert paired[paired["at"] == "model.latent_dim=4, rate=10"].iloc[0]["pairs"] == 3  # vq has seeds 0-2 only


def test_a_bd_value_no_seed_defines_is_said_so(tmp_path):
    ladder_runs(tmp_path / "runs", gain=30.0)  # the curves share no PSNR range: BD-rate is undefined, BD-PSNR is not
    report = build_report([tmp_path / "runs"], baseline="vq")
    row = next(s for s in report.sections if "Bjøntegaard" in s.title).frame.iloc[0]
    assert row["BD-rate 95% CI"] == "—" and row["BD-metric 95% CI"] != "—" and row["seeds"] == 3
    assert "BD-rate is defined for 0 of the 3 seeds" in row["notes"] and "BD-metric is defined" not in row["notes"]


def test_a_configuration_at_one_rate_gets_a_note_not_a_bd_row(tmp_path):
    ladder_runs(tmp_path / "runs", seeds=2)
    write_run(tmp_path / "runs", "fsq", {"dim": 4}, 0, psnr_metrics(22.0), bits=10.0, recipe_hash="d4",
              sweep={"name": "ladder", "file": "ladder.toml", "point": {"model.latent_dim": 4, "rate": 10}})
    report = build_report([tmp_path / "runs"], baseline="vq")
    section = next(s for s in report.sections if "Bjøntegaard" in s.title)
    assert not section.frame["quantizer"].str.startswith("fsq").any()
    assert any("one rate only" in n and "fsq" in n for n in section.notes)


def test_fit_recovers_a_grid_through_the_report(tmp_path):
    from qbench.report.scaling import law

    true = (411.63, 2.8375, 0.1601, 0.1956)
    for dim in (8, 16, 32, 64):
        for log_v in (13, 14, 16, 18):
            y = float(law(np.array([[dim], [2.0**log_v]]), *true)[0])
            write_run(tmp_path / "runs", "gsq", {"dim": dim, "codebook_size": 2**log_v, "groups": 1}, 0,
                      {"rfid": entry(y, hib=False, heading="rFID")}, bits=float(log_v))
    report = build_report([tmp_path / "runs"], fit="auto")
    fit = report.sections[0].fit
    assert fit.estimates["b"] == pytest.approx(true[1], rel=1e-3) and fit.cells == 16
    write_report(report, tmp_path / "out")
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert any("scaling-gsq-G1-V-rfid" in n for n in names)
    text = (tmp_path / "out" / "README.md").read_text()
    assert "scaling fit: rfid" in text
    fit_plots = [n for n in names if n.endswith("-fit-rfid.png")]
    assert len(fit_plots) == 1 and f"]({fit_plots[0]})" in text  # the runs with the fitted law through them


def test_a_staircase_of_d_and_v_is_not_fitted(tmp_path):
    from conftest import run_cli

    # a tuned ladder's staircase: D = 16 at three V, D = 8 at one, 6 runs; D is confounded with V
    for dim, log_v, seeds in ((16, 6, 1), (16, 8, 1), (16, 12, 1), (8, 10, 3)):
        for seed in range(seeds):
            write_run(tmp_path / "runs", "vq", {"dim": dim, "codebook_size": 2**log_v}, seed,
                      psnr_metrics(20.0 + log_v + 0.1 * seed), bits=float(log_v))
    nogrid = run_cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--fit")
    assert nogrid.returncode == 2 and nogrid.stderr.count("\n") == 1 and "no such grid" in nogrid.stderr


def test_bad_baseline_and_fit_without_grid_are_one_line_errors(tmp_path):
    from conftest import run_cli

    write_run(tmp_path / "runs", "gsq", {"dim": 8}, 0, psnr_metrics(24.0))
    unknown = run_cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--baseline", "gqs")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "unknown --baseline 'gqs' (did you mean 'gsq'?)" in unknown.stderr
    nogrid = run_cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--fit")
    assert nogrid.returncode == 2 and nogrid.stderr.count("\n") == 1 and "no such grid" in nogrid.stderr


def test_a_table_shows_only_the_metrics_its_runs_recorded(tmp_path):
    write_run(tmp_path / "runs", "gsq", {"dim": 8}, 0, psnr_metrics(24.0, sharpness=entry(0.5)), recipe_hash="a")
    write_run(tmp_path / "runs", "gsq", {"dim": 8}, 0, psnr_metrics(23.0), recipe_hash="b")
    frames = {t.runs["recipe_hash"].iloc[0]: t.frame for t in build_report([tmp_path / "runs"]).tables}
    assert "sharpness ↑" in frames["a"].columns and "sharpness ↑" not in frames["b"].columns


def test_group_count_sweep_gets_a_plot_against_g(tmp_path):
    for groups in (1, 2, 4):
        for seed in range(2):
            write_run(tmp_path / "runs", "gsq", {"dim": 8, "codebook_size": 256, "groups": groups}, seed,
                      psnr_metrics(22.0 + groups + seed / 10), bits=8.0 * groups)
    write_report(build_report([tmp_path / "runs"]), tmp_path / "out")
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert any(n.endswith("scaling-gsq-G-psnr.png") for n in names)
    assert not any("-V-" in n for n in names)  # one codebook size: nothing to plot against V


def test_codebook_sizes_at_one_width_get_no_plot_against_v(tmp_path):
    for size in (64, 256, 1024):
        write_run(tmp_path / "runs", "gsq", {"dim": 4, "codebook_size": size, "groups": 1}, 0,
                  psnr_metrics(22.0 + size / 1024), bits=float(np.log2(size)))
    write_report(build_report([tmp_path / "runs"]), tmp_path / "out")
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert not any("scaling" in n for n in names)  # the rate-distortion plot already has V on its axis
    assert any(n.endswith("rd-psnr.png") for n in names)


def test_configurations_alike_in_label_and_versions_are_told_apart_by_hash(tmp_path):
    write_run(tmp_path / "runs", "gsq", {"dim": 8}, 0, psnr_metrics(24.0), config="aaaaaaaa1111")
    write_run(tmp_path / "runs", "gsq", {"dim": 8}, 0, psnr_metrics(23.0), config="bbbbbbbb2222")
    frame = build_report([tmp_path / "runs"]).tables[0].frame
    assert sorted(frame["quantizer"]) == ["gsq [config aaaaaaaa]", "gsq [config bbbbbbbb]"]


def test_a_run_repeated_with_the_same_identity_and_seed_counts_once(tmp_path):
    # the same seed-0 point in two studies, and two more seeds in the first
    for study, seeds in (("a", (0, 1, 2)), ("b", (0,))):
        for seed in seeds:
            write_run(tmp_path / study, "gsq", {"dim": 4}, seed, psnr_metrics(20.0 + seed + (0.5 if study == "b" else 0)),
                      config="same")
    report = build_report([tmp_path / "a", tmp_path / "b"])
    runs = report.runs
    assert len(runs) == 4  # summary.csv still lists every run
    assert set(runs["psnr_n"]) == {3}  # ...but its statistics count seed 0 once
    assert runs["psnr_mean"].iloc[0] == pytest.approx(21.0)  # the first found (study a), not their mean
    assert report.tables[0].frame["seeds"].tolist() == [3]


def test_usage_bands_stay_within_0_and_100_and_each_curve_averages_one_seed_set(tmp_path, monkeypatch):
    from qbench.report import figures, plots

    ladder_runs(tmp_path / "runs", seeds=3)
    for path in (tmp_path / "runs").rglob("metrics.json"):  # usage near 100 with a wide spread
        record = json.loads(path.read_text())
        record["metrics"]["usage"] = entry(99.0 + record["run"]["seed"] * 0.9, unit="%", heading="usage (%)")
        path.write_text(json.dumps(record))
    write_run(tmp_path / "runs", "gsq", {"dim": 4, "codebook_size": 32, "groups": 2}, 7, psnr_metrics(30.0),
              bits=10.0, recipe_hash="d4", sweep={"name": "ladder", "file": "ladder.toml", "point": {
                  "model.latent_dim": 4, "quantizers.gsq.codebook_size": 32, "rate": 10}})  # a 4th seed at one rung
    drawn = {}
    monkeypatch.setattr(plots, "rate_distortion", lambda series, ylabel, path, title, **kw: drawn.setdefault(
        title.split(":")[0] + ylabel, series))
    report = build_report([tmp_path / "runs"])
    figures.table_figures(report.runs, report.metrics, tmp_path, "t")
    usage = next(v for k, v in drawn.items() if "usage" in k)
    assert all(np.nanmax(s["high"]) <= 100.0 for s in usage)
    psnr = next(v for k, v in drawn.items() if "PSNR" in k)
    assert all(s["label"].endswith("(n=3, seeds 0-2)") for s in psnr)  # one seed set per curve, said in its label
    d4 = next(s for s in psnr if s["label"].startswith("gsq") and "latent_dim=4" in s["label"])
    at_10 = list(d4["bits"]).index(10.0)
    assert d4["n"][at_10] == 3 and d4["mean"][at_10] < 30.0  # seed 7 (30 dB at one rung only) left out of the curve
@pytest.mark.parametrize("revisions, warning", [
    (["1a2b3c4", "1a2b3c4"], None),
    (["1a2b3c4", "v0.2-3-g5d6e7f8"], "mixes runs of 2 code revisions (1a2b3c4, v0.2-3-g5d6e7f8)"),
    (["1a2b3c4", ""], "mixes runs of 2 code revisions (1a2b3c4, unknown)"),
    (["1a2b3c4-dirty", "1a2b3c4-dirty"], "comes from a modified source tree (1a2b3c4-dirty)"),
])
def test_a_row_that_mixes_revisions_or_dirty_trees_is_warned_about(tmp_path, recipes, monkeypatch, revisions, warning):
    a, _ = recipes
    for seed, revision in enumerate(revisions):
        monkeypatch.setattr(results, "_git_revision", lambda revision=revision: revision)
        make_run(tmp_path, a, "vq", {"dim": 8, "codebook_size": 1024}, seed, grid=False)
    monkeypatch.setattr(results, "_git_revision", lambda: "9f9f9f9")
    make_run(tmp_path, a, "gsq", {"dim": 8, "groups": 1}, 0, grid=False)  # one clean revision: no note
    (table,) = build_report([tmp_path]).tables
    notes = [n for n in table.notes if "revision" in n or "source tree" in n]
    if warning is None:
        assert notes == []
    else:
        assert len(notes) == 1 and notes[0].startswith("warning: row vq") and warning in notes[0], notes
        assert warning in render_text(build_report([tmp_path]))


def test_runs_record_git_describe_of_qbench_only_inside_its_own_checkout(monkeypatch, tmp_path):
    import subprocess

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    subprocess.run(["git", "init", "-q", str(outside)], check=True)
    monkeypatch.setattr(results, "_git", lambda *args: str(outside) if args[0] == "rev-parse" else "abc")
    assert results._git_revision() == ""  # some other repository around an installed qbench: nothing
    here = subprocess.run(["git", "describe", "--dirty", "--always"], capture_output=True, text=True,
                          cwd=results.__file__.rsplit("/", 3)[0])
    monkeypatch.undo()
    if here.returncode == 0:
        assert results._git_revision() == here.stdout.strip()


def test_a_tiny_non_zero_value_never_reads_as_zero():
    assert fmt(1.862645149230957e-07) == "1.86e-07"  # usage (%) of FSQ [1024]*4 on a few images
    assert fmt(0.0250) == "0.0250" and fmt(12.94) == "12.9" and fmt(0.0) == "0"
