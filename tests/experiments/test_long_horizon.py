"""experiments.long_horizon: each row's config is the base config with exactly the row's changes,
the published table is well formed, and the docs section is built from a results file."""

import json

import pytest

from eala_jax.ops import EalaOptions, SoftmaxOptions
from eala_jax.train import load_config_file, validate_config
from experiments import long_horizon as lh


@pytest.mark.parametrize("variant", sorted(lh.VARIANTS))
def test_row_config_changes_only_the_row(variant):
    base = load_config_file(lh.CONFIG)
    config = lh.row_config("exchange_rate", 96, 720, variant, 2, ["train.max_epochs=1"])
    validate_config(config)
    assert (config.data.name, config.data.in_steps, config.data.out_steps) == (
        "exchange_rate",
        96,
        720,
    )
    assert config.train.seed == 2 and config.train.max_epochs == 1
    assert dict(config.data.options) == {"per_node_zscore": True}
    patched = "no_patch" not in variant
    assert (config.model.patch_len, config.model.patch_stride) == (
        (base.model.patch_len, base.model.patch_stride) if patched else (1, 1)
    )
    softmax = "softmax" in variant
    assert config.model.temporal_attention == (SoftmaxOptions() if softmax else EalaOptions())
    assert config.model.spatial_attention == base.model.spatial_attention
    norm = {"last_norm": "last"}.get(variant, "last_std" if "last_std" in variant else "mean_std")
    assert base.model.instance_norm == "mean_std" and config.model.instance_norm == norm
    wd = 1e-2 if variant.endswith("_wd") else base.train.weight_decay
    assert config.train.weight_decay == wd


def test_unknown_row_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        lh.row_config("etth1", 96, 96, "fast", 0, [])
    with pytest.raises(ValueError, match="unknown dataset 'ettm1'"):
        lh.row_config("ettm1", 96, 96, "eala", 0, [])


def test_published_numbers_have_one_value_per_horizon():
    for model, entries in lh.PUBLISHED.items():
        if model == "sources":
            continue
        for (dataset, in_steps), entry in entries.items():
            assert dataset in lh.DATASETS and in_steps == 336
            assert len(entry["mse"]) == len(entry["mae"]) == len(lh.HORIZONS)
            assert len(entry["test_batch"]) == len(lh.HORIZONS)
            assert all(0 < v < 2 for v in entry["mse"] + entry["mae"])
            assert all(isinstance(b, int) and b >= 1 for b in entry["test_batch"])


def test_published_windows_are_whole_test_batches_from_the_start():
    # ETTh2 input 336: 2,545 test windows at horizon 336, 2,689 at 192 (2,881 - horizon).
    assert lh.published_windows(2545, 128) == 2432 and lh.published_windows(2689, 128) == 2688
    assert lh.published_windows(2545, 32) == 2528 and lh.published_windows(96, 128) == 0
    with pytest.raises(ValueError, match="test_batch must be >= 1"):
        lh.published_windows(2545, 0)


def test_markdown_rows_come_from_the_results_file():
    row = {
        "dataset": "etth2",
        "in_steps": 336,
        "horizon": 192,
        "variant": "eala",
        "seeds": {"0": {}, "1": {}},
        "mse": [0.3456, 0.01],
        "mae": [0.4321, 0.02],
        "baselines": {
            "last_value": {"mse": 0.6543, "mae": 0.5},
            "seasonal_naive": {"mse": 0.9, "mae": 0.4, "period": "day"},
            "historical_average": {"mse": 1.2345, "mae": 0.8},
        },
    }
    timing = [
        {"dataset": "etth1", "in_steps": 720, "horizon": 96, "variant": v, "batch": 8,
         "status": "ok", "median_s": s, "peak_bytes": 2**20}
        for v, s in (("no_patch", 0.5), ("no_patch_softmax_temporal", 2.0))
    ]  # fmt: skip
    machine = dict(device="cpu", backend="cpu", device_count=1, cpu="test cpu", cores=2, jax="0")
    data = {"machine": machine, "rows": {"k": row}, "step_time": timing}
    text = "\n".join(lh.markdown(data))
    line = next(x for x in text.splitlines() if x.startswith("| etth2 | 336 | 192 | eala† |"))
    assert f"- † trained with: {lh.EARLIER_CONFIG}." in text  # a row from before "config"
    assert f"Rows marked † measured with: {lh.EARLIER_CONFIG} (not the current config)." in text
    assert "| etth1 | 720 | 96 | no_patch† | 8 | 500 |" in text  # timed before "config"
    assert "0.346 ± 0.010" in line and "0.432 ± 0.020" in line
    assert "| 0.654 / 0.500 | 0.900 / 0.400 (day) | 1.23" in line
    assert line.endswith("| not seasonal_naive MAE |")  # MAE 0.432 is not below 0.400
    assert "0.383\\*" in line and "0.339\\*" in line  # DLinear and PatchTST/42 at horizon 192
    row["config"] = lh.config_summary(lh.row_config("etth2", 336, 192, "eala", 0, []))
    text = "\n".join(lh.markdown(data))
    for t in timing:
        t["config"] = lh.config_summary(lh.load_config_file(lh.CONFIG))
    text = "\n".join(lh.markdown(data))
    assert "| etth2 | 336 | 192 | eala |" in text and "trained with:" not in text
    assert "Measured with" not in text
    assert (  # issue 12's bars: MSE 0.346 is 2 % above PatchTST's 0.339; MAE above seasonal naive
        "MSE within 5 % of the best published or better (on the test windows it scored; on every "
        "window at etth2 h192) at 1 of 1. Below every baseline's MSE and MAE at 0 of 1; not at "
        "etth2 h192 (not seasonal_naive MAE)." in text
    )
    row["mse"][0] = 0.357  # 5.3 % above 0.339: outside the bar, though the table rounds to +5 %
    text = "\n".join(lh.markdown(data))
    assert "| – | +5 % (all windows) |" in text and "at 0 of 1; not at etth2 h192 +5.3 %." in text
    # With our MSE on the windows PatchTST/42 scored, the gap is taken there.
    row["published_windows"] = {
        "PatchTST/42": {"windows": 2688, "of": 2689, "mse": [0.3400, 0.002], "mae": [0.4, 0.0]},
        "DLinear": {"windows": 2688, "of": 2689, "mse": [0.3401, 0.002], "mae": [0.4, 0.0]},
    }
    text = "\n".join(lh.markdown(data))
    assert "| 0.340 ± 0.002 (2688 / 2689) | +0 % |" in text
    assert "better (on the test windows it scored) at 1 of 1." in text
    ratio_line = next(x for x in text.splitlines() if "| 720 | 96 | no_patch |" in x)
    assert ratio_line.endswith("| 4.00 |")


def _table(mse, mae, **extra):
    return {"rmse_mean": mse**0.5, "mae_mean": mae, **extra}


def test_row_reads_every_baseline_from_a_finished_run(tmp_path):
    """A finished run's results.json is reused: the model's and each baseline's MSE (from RMSE) and
    MAE, and the seasonal naive's period, go to the row."""
    run_dir = tmp_path / lh.row_key("etth1", 336, 96, "eala") / "seed0"
    run_dir.mkdir(parents=True)
    test = {
        "model": _table(0.25, 0.3),
        "last_value": _table(1.0, 0.7),
        "seasonal_naive": _table(0.81, 0.6, period="day"),
        "historical_average": _table(0.64, 0.65),
    }
    result = {"test": test, "epochs": 5, "best_epoch": 3, "stop_reason": "patience"}
    result |= {"time_per_epoch_s": 1.0, "num_parameters": 10}
    (run_dir / "results.json").write_text(json.dumps(result))
    row = lh.run_row("etth1", 336, 96, "eala", [0], tmp_path, [])
    assert row["mse"][0] == pytest.approx(0.25) and row["mae"][0] == pytest.approx(0.3)
    seasonal = row["baselines"]["seasonal_naive"]
    assert (seasonal["mse"], seasonal["mae"]) == pytest.approx((0.81, 0.6))
    assert seasonal["period"] == "day"
    assert set(row["baselines"]) == set(lh.BASELINES)
    assert row["config"] == lh.config_summary(lh.row_config("etth1", 336, 96, "eala", 0, []))
    assert lh.beaten_cell(row) == "all"
    row["baselines"]["historical_average"]["mse"] = 0.2
    assert lh.beaten_cell(row) == "not historical_average MSE"
    del row["baselines"]["last_value"]
    assert lh.beaten_cell(row) == "–"


def test_row_scores_the_windows_each_published_number_scored(tmp_path):
    """With a run's per-window test errors the row carries, per published model, our mean MSE /
    MAE over the first windows that model's evaluation kept (whole test batches), here with the
    last windows far worse than the rest, as at the end of ETTh2's test split."""
    import numpy as np

    from eala_jax.train import TEST_WINDOWS_FILE

    total = 2545  # ETTh2, input 336, horizon 336: PatchTST/42 (batch 128) kept 2432, DLinear 2528
    rng = np.random.default_rng(0)
    count = np.full(total, 336 * 7)
    sq_err = rng.uniform(0.2, 0.4, total) * count
    sq_err[2432:] *= 5.0
    abs_err = np.sqrt(sq_err / count) * count
    for seed, scale in ((0, 1.0), (1, 1.1)):
        run_dir = tmp_path / lh.row_key("etth2", 336, 336, "eala") / f"seed{seed}"
        run_dir.mkdir(parents=True)
        np.savez(run_dir / TEST_WINDOWS_FILE, sq_err=scale * sq_err, abs_err=abs_err, count=count)
        test = {"model": _table(0.3, 0.4), "last_value": _table(1.0, 0.7)}
        test |= {"seasonal_naive": _table(0.81, 0.6), "historical_average": _table(0.64, 0.65)}
        result = {"test": test, "epochs": 5, "best_epoch": 3, "stop_reason": "patience"}
        result |= {"time_per_epoch_s": 1.0, "num_parameters": 10}
        (run_dir / "results.json").write_text(json.dumps(result))
    row = lh.run_row("etth2", 336, 336, "eala", [0, 1], tmp_path, [])
    windows = row["published_windows"]
    assert (windows["PatchTST/42"]["windows"], windows["DLinear"]["windows"]) == (2432, 2528)
    expected = [s * sq_err[:2432].sum() / count[:2432].sum() for s in (1.0, 1.1)]
    assert windows["PatchTST/42"]["mse"] == pytest.approx([np.mean(expected), np.std(expected)])
    assert windows["PatchTST/42"]["mae"][0] == pytest.approx(
        abs_err[:2432].sum() / count[:2432].sum()
    )
    assert windows["DLinear"]["mse"][0] > windows["PatchTST/42"]["mse"][0]  # keeps 96 bad windows
    gap, on_its_windows = lh.published_gap(row)  # PatchTST/42's 0.331 is the best published
    assert on_its_windows and gap == pytest.approx(windows["PatchTST/42"]["mse"][0] / 0.331 - 1)


def test_a_finished_run_of_another_config_is_not_reused(tmp_path):
    """A run folder whose config.json differs from the row's config (e.g. trained before the
    config changed) is an error, not a row of the current config."""
    from eala_jax.train import IncompatibleWorkdirError, config_to_dict

    run_dir = tmp_path / lh.row_key("etth1", 336, 96, "eala") / "seed0"
    run_dir.mkdir(parents=True)
    other = lh.row_config("etth1", 336, 96, "head_only", 0, [])
    (run_dir / "config.json").write_text(json.dumps(config_to_dict(other)))
    (run_dir / "results.json").write_text("{}")
    with pytest.raises(IncompatibleWorkdirError, match="linear_path: saved False vs now True"):
        lh.run_row("etth1", 336, 96, "eala", [0], tmp_path, [])


def test_config_summary_names_the_head_options_only_when_set():
    """The `head_only` variant is the config the rows before the linear path were trained with:
    its summary is the one they stored (no head options named)."""
    before = lh.config_summary(lh.row_config("etth1", 336, 96, "head_only", 0, []))
    assert before == (
        "2 temporal + 0 spatial layers, dropout 0.1; up to 10 epochs x 100 steps of batch 16, "
        "patience 3, lr 0.001 (x0.3 at epoch 7)"
    )
    now = lh.config_summary(lh.row_config("etth1", 336, 96, "eala", 0, []))
    assert now.endswith("; linear path; head dropout 0.3")
    changed = lh.row_config("etth1", 336, 96, "head_only", 0, ["model.head_dropout=0.2"])
    assert lh.config_summary(changed).endswith("(x0.3 at epoch 7); head dropout 0.2")
