"""experiments.report and its section modules (report_cost, report_reference) and
experiments.compare: targets judged from result rows, seed summaries, reference-run verdicts."""

import json

import numpy as np
import pytest

from experiments import compare, report, report_cost, report_reference


def _row(keys, batch, method, mode, median_s, peak_bytes=1e9, fraction=0.1, shape="spatial"):
    return dict(
        shape=shape,
        keys=keys,
        batch=batch,
        method=method,
        mode=mode,
        status="ok",
        median_s=median_s,
        peak_bytes=peak_bytes,
        fraction_of_matmul=fraction,
    )


def _rows(eala_883, eala_8600, linear_883):
    sized = "spatial (softmax-sized batch)"
    return [
        _row(883, 192, "softmax", "forward+backward", 10.0),
        _row(883, 192, "eala", "forward+backward", eala_883),
        _row(883, 192, "linear", "forward+backward", linear_883),
        _row(8600, 2, "softmax", "forward+backward", 30.0, peak_bytes=9e9, shape=sized),
        _row(8600, 2, "eala", "forward+backward", eala_8600, peak_bytes=1e8, shape=sized),
        _row(8600, 2, "linear", "forward+backward", eala_8600, shape=sized),
        dict(
            shape="spatial",
            keys=8600,
            batch=192,
            method="eala",
            mode="forward",
            status="does not fit",
            peak_bytes=2e10,
        ),
    ]


def _verdicts(lines):
    return {
        line.split(" | ")[0].lstrip("| "): line.rstrip(" |").split(" | ")[-1] for line in lines[2:]
    }


def test_targets_met_and_missed_follow_the_measured_ratios():
    met = _verdicts(
        report_cost._targets(_rows(eala_883=0.4, eala_8600=0.1, linear_883=0.4), matmul=1e11)
    )
    missed = _verdicts(
        report_cost._targets(_rows(eala_883=1.0, eala_8600=1.0, linear_883=0.5), matmul=1e11)
    )
    speed_883 = next(k for k in met if "S = 883 (batch 192)" in k)
    speed_8600 = next(k for k in met if "150×" in k)
    memory = next(k for k in met if "less peak memory" in k)
    linear_883 = next(k for k in met if "linear attention at S = 883" in k)
    assert "batch 2" in speed_8600  # the softmax-sized batch is read from the rows
    assert (met[speed_883], met[speed_8600], met[memory], met[linear_883]) == (
        "yes",
    ) * 4  # 25×, 300×, 90×, 1.0×
    assert (missed[speed_883], missed[speed_8600], missed[linear_883]) == (
        "no",
    ) * 3  # 10×, 30×, 2.0×
    # A point that did not run is reported as such, never as met.
    flops = next(k for k in met if "S = 8600, batch 192" in k and "forward at" in k)
    assert met[flops] == "—"


def _result(mae_mean, mae_by_horizon):
    table = {
        "mae": mae_by_horizon,
        "rmse": [m * 2 for m in mae_by_horizon],
        "mape": [m * 3 for m in mae_by_horizon],
        "mae_mean": mae_mean,
        "rmse_mean": mae_mean * 2,
        "mape_mean": mae_mean * 3,
    }
    return {"test": {"model": table, "last_value": table}, "time_per_epoch_s": 1.0, "epochs": 4}


def test_compare_summary_is_mean_and_population_std_over_seeds():
    rng = np.random.default_rng(0)
    runs = [rng.uniform(2, 5, 12).tolist() for _ in range(3)]
    summary = compare.summarise({"eala": [_result(float(np.mean(r)), r) for r in runs]})
    per_seed = np.array(runs)
    mean_mae, std_mae = summary["eala"]["mae@6"]
    assert mean_mae == pytest.approx(per_seed[:, 5].mean()) and std_mae == pytest.approx(
        per_seed[:, 5].std()
    )
    assert summary["eala"]["mae@mean"][0] == pytest.approx(per_seed.mean())
    assert summary["eala"]["seeds"] == 3 and "last_value" in summary


def test_accuracy_section_renders_every_variant(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "FIGURES", tmp_path)
    data = {
        "dataset": "toy",
        "seeds": [0, 1],
        "overrides": ["train.max_epochs=2"],
        "variants": {
            "eala": {
                "seeds": 2,
                "mae@3": [1.0, 0.1],
                "mae@6": [2.0, 0.1],
                "mae@12": [3.0, 0.2],
                "mae@mean": [2.0, 0.1],
                "rmse@mean": [4.0, 0.2],
                "mape@mean": [9.0, 1.0],
                "time_per_epoch_s": 1.5,
            }
        },
    }
    path = tmp_path / "accuracy_toy.json"
    path.write_text(json.dumps(data))
    text = "\n".join(report.accuracy_section(path))
    assert "| eala | 2 | 1.000 ± 0.100 | 2.000 ± 0.100 | 3.000 ± 0.200 | 2.000 ± 0.100 |" in text
    assert "--set train.max_epochs=2" in text and (tmp_path / "accuracy_toy.png").is_file()


def test_collect_runs_names_a_workdir_without_results(tmp_path):
    with pytest.raises(SystemExit, match=str(tmp_path / "results.json")):
        report_reference.collect_runs([str(tmp_path)])


def test_reference_section_lists_runs_and_baselines_per_data_set(tmp_path):
    result = _result(3.0, list(np.linspace(2, 4, 12)))
    keep = dict(
        name="x_eala",
        data="x",
        temporal_attention="eala",
        spatial_attention="eala",
        epochs=9,
        best_epoch=4,
        stop_reason="early_stopping",
        time_per_epoch_s=2.0,
        first_val_mae=5.0,
        best_val_mae=3.0,
    )
    (tmp_path / "results.json").write_text(json.dumps({**result, **keep}))
    (tmp_path / "config.json").write_text(json.dumps({"train": {"seed": 3}}))
    text = "\n".join(
        report_reference.reference_section(report_reference.collect_runs([str(tmp_path)]))
    )
    assert (
        "| x_eala (seed 3) |" in text
        and "4 / 9 (early_stopping)" in text
        and "| last value |" in text
    )
    assert f"{np.linspace(2, 4, 12)[2]:.3f} / " in text  # horizon 3 is the third entry


def _table(mae, rmse=None, **extra):
    """A test table with MAE `mae` (12 horizons) and RMSE `rmse` (default 2 × MAE)."""
    mae = np.asarray(mae, dtype=float)
    rmse = mae * 2 if rmse is None else np.asarray(rmse, dtype=float)
    return {
        "mae": mae.tolist(),
        "rmse": rmse.tolist(),
        "mape": (mae * 3).tolist(),
        "mae_mean": float(mae.mean()),
        "rmse_mean": float(rmse.mean()),
        "mape_mean": float(mae.mean() * 3),
        **extra,
    }


def _run(seed, model, baselines, name="x_elinformer", **extra):
    return dict(
        name=name,
        data="x",
        seed=seed,
        epochs=9,
        best_epoch=4,
        stop_reason="early_stopping",
        time_per_epoch_s=2.0,
        workdir=f"runs/ref/{name}_seed{seed}",
        command=f"python -m experiments.train --workdir runs/ref/{name}_seed{seed}",
        test={"model": model, **baselines},
        **extra,
    )


MACHINE = dict(device="cpu", backend="cpu", device_count=1, cpu="test", cores=2, jax="0")


def _baselines(level=5.0):
    flat = np.full(12, level)
    return {
        "last_value": _table(np.linspace(1.0, level, 12)),
        "seasonal_naive": _table(flat - 1, period="day", period_steps=96),
        "historical_average": _table(flat),
    }


def test_seed_summary_is_mean_and_population_std_at_reported_horizons():
    rng = np.random.default_rng(1)
    maes = rng.uniform(1, 3, (3, 12))
    runs = [_run(k, _table(m), {}) for k, m in enumerate(maes)]
    summary = report_reference.seed_summary(runs)
    assert summary["mae@12"] == pytest.approx((maes[:, 11].mean(), maes[:, 11].std()))
    assert summary["rmse@3"] == pytest.approx(((2 * maes[:, 2]).mean(), (2 * maes[:, 2]).std()))
    assert summary["mae@mean"] == pytest.approx((maes.mean(), maes.mean(axis=1).std()))
    with pytest.raises(ValueError, match="runs is empty"):
        report_reference.seed_summary([])


def test_losses_name_each_baseline_metric_and_horizon_not_beaten():
    baselines = _baselines()
    good = report_reference.seed_summary([_run(0, _table(np.full(12, 0.5)), baselines)])
    assert report_reference.losses({k: v[0] for k, v in good.items()}, baselines) == []
    # RMSE at h12 ties the seasonal naive (a tie is no win); everything else is beaten.
    mae = np.full(12, 0.5)
    rmse = mae * 2
    rmse[11] = 8.0
    bad = report_reference.seed_summary([_run(0, _table(mae, rmse), baselines)])
    lost = report_reference.losses({k: v[0] for k, v in bad.items()}, baselines)
    assert lost == [("seasonal_naive", "rmse", 12, 8.0, 8.0)]  # RMSE 8 < 10 of the others


def test_reference_section_aggregates_seeds_and_computes_the_verdict():
    baselines = _baselines()
    # Two seeds of a config that beats every baseline, one of a config whose mean loses.
    runs = [
        _run(0, _table(np.full(12, 0.5)), baselines),
        _run(1, _table(np.full(12, 0.7)), baselines),
        _run(0, _table(np.full(12, 0.5), np.full(12, 9.0)), baselines, name="x_softmax"),
    ]
    text = "\n".join(report_reference.reference_section({"machine": MACHINE, "runs": runs}))
    assert "| **x_elinformer mean ± std (seeds 0, 1)** | 0.600 ± 0.100 / 1.200 ± 0.200" in text
    assert "| seasonal naive (period day, 96 steps) |" in text
    assert "`python -m experiments.train --workdir runs/ref/x_elinformer_seed1`" in text
    assert (
        "**x_elinformer, mean of 2 seeds: beats every baseline (last value, seasonal naive, "
        "historical average) at every reported horizon" in text
    )
    assert "So does every seed on its own." in text
    verdict = next(line for line in text.splitlines() if line.startswith("**x_softmax"))
    assert "does not beat every baseline" in verdict
    # RMSE 9.0 against the seasonal naive's 8.0 at h12: +1.000, +12.5 %.
    assert "seasonal naive in RMSE at h12 (9.000 against 8.000, +1.000, +12.5 %)" in verdict
    assert "historical average in RMSE" not in verdict  # 9.0 < 10.0 everywhere


def test_reference_verdicts_for_the_summary_are_those_of_the_section():
    baselines = _baselines()
    runs = [
        _run(0, _table(np.full(12, 0.5)), baselines),
        _run(1, _table(np.full(12, 0.7)), baselines),
        _run(0, _table(np.full(12, 0.5), np.full(12, 9.0)), baselines, name="x_softmax"),
    ]
    configs, best = report_reference.reference_verdicts({"machine": MACHINE, "runs": runs})["x"]
    assert [(name, seeds) for name, seeds, _, _ in configs] == [
        ("x_elinformer", 2),
        ("x_softmax", 1),
    ]
    assert configs[0][2] == pytest.approx(0.6) and configs[0][3] == []
    assert ("seasonal_naive", "rmse", 12, 9.0, 8.0) in configs[1][3]
    assert {metric for _, metric, _, _, _ in configs[1][3]} == {"rmse"}  # its MAE beats them all
    assert best == "last value 3.000"  # linspace(1, 5) has mean 3, below 4 and 5


def test_verdict_names_a_losing_seed_and_absent_baselines():
    baselines = _baselines()
    del baselines["seasonal_naive"]
    runs = [
        _run(0, _table(np.full(12, 0.5)), baselines),
        _run(1, _table(np.full(12, 0.5), np.full(12, 4.0)), baselines),
    ]
    text = "\n".join(report_reference.reference_section({"machine": MACHINE, "runs": runs}))
    verdict = next(line for line in text.splitlines() if line.startswith("**x_elinformer"))
    # The mean (RMSE 2.5) beats last value's 3.455 at h3; seed 1 alone (4.0) does not.
    assert verdict.startswith("**x_elinformer, mean of 2 seeds: beats every baseline")
    assert (
        "Seeds on their own: seed 1 loses to last value in RMSE at h3 (4.000 against 3.455"
        in verdict
    )
    assert "Not checked (absent from the results): seasonal naive." in verdict


def test_baselines_that_differ_between_runs_are_reported():
    runs = [_run(0, _table(np.full(12, 0.5)), _baselines())]
    runs.append(_run(1, _table(np.full(12, 0.5)), {"last_value": _table(np.full(12, 4.0))}))
    tables, source, notes = report_reference.dataset_baselines(runs)
    assert (
        set(tables) == set(report_reference.BASELINES) and source == "runs/ref/x_elinformer_seed0"
    )
    assert len(notes) == 1 and "seed 1) has a different last value" in notes[0]


def test_merge_keeps_runs_not_collected_again():
    old = {"machine": {}, "runs": [_run(0, {}, {}), _run(0, {}, {}, name="x_softmax")]}
    new = {"machine": {"cpu": "new"}, "runs": [_run(0, {}, {}), _run(1, {}, {})]}
    merged = report_reference.merge_runs(old, new)
    assert [(r["name"], r["seed"], r.get("kept", False)) for r in merged["runs"]] == [
        ("x_elinformer", 0, False),
        ("x_elinformer", 1, False),
        ("x_softmax", 0, True),
    ]
    assert merged["machine"] == {"cpu": "new"} and report_reference.merge_runs(None, new) is new


def test_train_command_reproduces_the_config_of_a_run():
    from eala_jax.train import apply_overrides, config_to_dict, load_config_file

    path = "experiments/configs/sz_taxi_elinformer.py"
    config = config_to_dict(
        apply_overrides(
            load_config_file(path), ["train.seed=2", "progress_bar=false", "train.milestones=[4,5]"]
        )
    )
    command = report_reference.train_command("runs/ref/a", config)
    assert command == (
        f"python -m experiments.train --config {path} --workdir runs/ref/a --set train.seed=2 "
        "--set 'train.milestones=[4,5]' --set progress_bar=false"
    )
    # A run renamed with --set name=... (no config file of its name) is found from the file that
    # gives it back with the fewest overrides, with the name among them.
    renamed = report_reference.train_command("runs/ref/a", {**config, "name": "sz_taxi_linear"})
    assert renamed == command.replace(
        "--set train.seed=2", "--set train.seed=2 --set name=sz_taxi_linear"
    )
    # No file's overrides give back a config with a field no config has.
    assert report_reference.train_command("runs/ref/a", {**config, "no_such_field": 1}) is None
