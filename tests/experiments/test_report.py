"""experiments.report and experiments.compare: targets judged from result rows, summaries over
seeds."""

import json

import numpy as np
import pytest

from experiments import compare, report


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
        report._targets(_rows(eala_883=0.4, eala_8600=0.1, linear_883=0.4), matmul=1e11)
    )
    missed = _verdicts(
        report._targets(_rows(eala_883=1.0, eala_8600=1.0, linear_883=0.5), matmul=1e11)
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
        report.collect_runs([str(tmp_path)])


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
    text = "\n".join(report.reference_section(report.collect_runs([str(tmp_path)])))
    assert (
        "| x_eala (seed 3) |" in text
        and "4 / 9 (early_stopping)" in text
        and "| last value |" in text
    )
    assert f"{np.linspace(2, 4, 12)[2]:.3f} / " in text  # horizon 3 is the third entry
