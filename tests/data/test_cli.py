"""python -m experiments.data: describe present sets, report absent ones with where to put them."""

import dataclasses

import numpy as np
import pytest

from eala_jax.data import make_forecast_splits, make_synthetic_series
from eala_jax.models import evaluate_baselines
from experiments.data import main
from tests.data.fixtures import write_pems_npz


def test_describe_synthetic(capsys):
    assert main(["--dataset", "synthetic", "--describe"]) == 0
    out = capsys.readouterr().out
    assert "nodes 20, steps 4032 (5 min, 288 a day)" in out
    assert "windows train 2799, val 392, test 796" in out  # 7:1:2 of 4032 steps, 12 in / 12 out
    assert "scaler (training steps only): mean" in out and "missing:" in out


def test_baselines_of_a_small_synthetic_file(tmp_path, capsys):
    series = make_synthetic_series(num_nodes=4, num_days=3)
    np.save(tmp_path / "s.npy", np.nan_to_num(series.values))  # missing written back as zeros
    common = ["--dataset", "generic", "--path", str(tmp_path / "s.npy"), "--null-value", "0"]
    args = [*common, "--step-minutes", "5", "--start-time", "2024-01-01T00:00", "--baselines"]
    assert main(args) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if "MAE" in line]
    splits = make_forecast_splits(series)
    for split_name, name, _, mae, _, rmse, _, mape, *_ in lines:  # the seasonal naive's period
        want = evaluate_baselines(splits, split_name, scaler=splits.scaler)[name]
        assert float(mae) == pytest.approx(want["mae_mean"], abs=1e-6)
        assert float(rmse) == pytest.approx(want["rmse_mean"], abs=1e-6)
        assert float(mape) == pytest.approx(want["mape_mean"], abs=1e-6)
    assert [(line[0], line[1]) for line in lines] == [
        (split_name, name)
        for split_name in ("val", "test")
        for name in ("last_value", "historical_average", "seasonal_naive")
    ]
    assert lines[2][-1] == "day)"  # "(period: day)": three days at 5 min, a week is too long


def test_absent_and_corrupt_sets_are_reported(tmp_path, capsys):
    assert main(["--dataset", "pems08", "--describe", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pems08: absent." in out and "PEMS08.npz" in out and "data_dir" in out
    (tmp_path / "pems08").mkdir()
    np.savez(tmp_path / "pems08" / "PEMS08.npz", data=np.ones((10, 170, 3)))
    assert main(["--dataset", "pems08", "--describe", "--data-dir", str(tmp_path)]) == 1
    assert "pems08: ERROR" in capsys.readouterr().out


def test_describe_full_size_pems08_fixture(tmp_path, capsys):
    write_pems_npz(tmp_path / "pems08" / "PEMS08.npz", num_steps=17856, num_nodes=170)
    assert main(["--dataset", "pems08", "--describe", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "nodes 170, steps 17856" in out and "split 6:2:2" in out


def test_describe_a_file_of_ones_own(tmp_path, capsys):
    """--dataset generic with the loader's options: a user checks a file before training."""
    rng = np.random.default_rng(8)
    counts = rng.poisson(3.0, size=(500, 6)).astype(np.float64) + 1.0
    counts[rng.random(counts.shape) < 0.8] = 0.0
    np.save(tmp_path / "counts.npy", counts)
    common = ["--dataset", "generic", "--path", str(tmp_path / "counts.npy"), "--describe"]
    calendar = ["--step-minutes", "60", "--start-time", "2024-01-01T00:00"]
    zeros = int((counts == 0).sum())
    assert main([*common, *calendar]) == 0
    out = capsys.readouterr().out
    assert "nodes 6, steps 500 (60 min, 24 a day), 2024-01-01T00:00" in out
    assert "0 of 3000 values (0.00 %) treated as missing" in out
    assert f"{zeros} zeros kept as readings" in out
    train = counts[:350]  # 7:1:2 of 500 steps
    assert f"mean {train.mean():.4f}, std {train.std():.4f}" in out
    assert main([*common, *calendar, "--null-value", "0"]) == 0
    out = capsys.readouterr().out
    assert f"{zeros} of 3000 values ({100 * zeros / 3000:.2f} %) treated as missing" in out
    assert "equal to the missing-value marker 0 (null_value=0.0 set by the caller)" in out
    assert f"mean {train[train != 0].mean():.4f}" in out


def test_describe_refuses_an_ambiguous_file_and_names_transpose(tmp_path, capsys):
    by_sensor = np.random.default_rng(9).uniform(1.0, 9.0, size=(10, 300))
    np.save(tmp_path / "nt.npy", by_sensor)
    args = ["--dataset", "generic", "--path", str(tmp_path / "nt.npy"), "--describe"]
    args += ["--step-minutes", "5", "--start-time", "2024-01-01"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "generic: ERROR" in out and "more sensors than steps" in out
    assert "transpose=True" in out
    assert main([*args, "--transpose"]) == 0
    assert "nodes 10, steps 300 (5 min" in capsys.readouterr().out
    assert main([*args, "--no-transpose"]) == 0
    assert "nodes 300, steps 10 (5 min" in capsys.readouterr().out


def test_describe_reports_dead_sensors_and_empty_files(tmp_path, capsys):
    values = np.random.default_rng(10).uniform(1.0, 9.0, size=(400, 4))
    values[:, 2] = np.nan
    np.save(tmp_path / "dead.npy", values)
    np.save(tmp_path / "empty.npy", np.full((400, 4), np.nan))
    base = [
        "--dataset",
        "generic",
        "--describe",
        "--step-minutes",
        "5",
        "--start-time",
        "2024-01-01",
    ]
    assert main([*base, "--path", str(tmp_path / "dead.npy")]) == 0
    out = capsys.readouterr().out
    assert "WARNING generic: 1 of 4 sensors have no valid value at all: index 2" in out
    assert "1 of 4 sensors never valid: index 2" in out
    assert main([*base, "--path", str(tmp_path / "empty.npy")]) == 1
    assert "generic: ERROR" in capsys.readouterr().out


def test_file_options_need_the_right_dataset(capsys):
    with pytest.raises(SystemExit):
        main(["--dataset", "generic", "--describe"])
    assert "--dataset generic needs --path FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--dataset", "etth1", "--step-minutes", "5"])
    assert "--step-minutes applies to --dataset generic" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--path", "x.npy"])
    assert "--path needs one --dataset" in capsys.readouterr().err


def test_a_named_file_that_does_not_exist_is_an_error_naming_it(tmp_path, capsys):
    """Issue 21, item 8: a --path that does not exist was reported as 'absent' with exit 0."""
    missing = tmp_path / "missing.npz"
    args = ["--dataset", "generic", "--path", str(missing), "--describe"]
    assert main([*args, "--step-minutes", "5", "--start-time", "2024-01-01T00:00"]) == 1
    assert f"generic: ERROR --path {missing}: no such file" in capsys.readouterr().out
    graph = ["--dataset", "pems08", "--data-dir", str(tmp_path), "--graph-path", str(missing)]
    assert main([*graph, "--describe"]) == 1
    assert f"pems08: ERROR --graph-path {missing}: no such file" in capsys.readouterr().out


def test_an_array_without_step_and_start_names_the_flags(tmp_path, capsys):
    """Issue 21, item 9a: the error named load_dataset's keywords (step_minutes=, start_time=),
    not the flags of this command."""
    np.save(tmp_path / "a.npy", np.random.default_rng(3).uniform(1.0, 9.0, size=(200, 4)))
    args = ["--dataset", "generic", "--path", str(tmp_path / "a.npy"), "--describe"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "has no timestamps" in out and "give --step-minutes and --start-time" in out
    assert "step_minutes=" not in out and "start_time=" not in out
    assert main([*args, "--step-minutes", "60"]) == 1  # only the one still missing
    out = capsys.readouterr().out
    assert "give --start-time (e.g. --start-time 2024-01-01T00:00)" in out
    assert "--step-minutes" not in out


def daily_file(path, *, num_days=730, num_nodes=6, dead=(1, 4)):
    """A daily (T, N) array whose sensors `dead` stop reporting before the test split."""
    rng = np.random.default_rng(21)
    values = rng.uniform(1.0, 9.0, size=(num_days, num_nodes))
    values[int(0.75 * num_days) :, list(dead)] = np.nan  # inside val, through the whole test
    np.save(path, values)
    return path


def test_describe_counts_windows_by_the_recipe_training_picks(tmp_path, capsys):
    """Issue 21, item 9b: --describe counted 12 in / 12 out whatever the data, so its windows
    differed from the training log's; it now uses (and names) the recipe training picks."""
    from eala_jax.train import DataConfig, prepare_data
    from eala_jax.train.prepare import data_line as _data_line
    from tests.train.train_helpers import tiny_config

    path = daily_file(tmp_path / "daily.npy")
    options = {"path": str(path), "step_minutes": 1440, "start_time": "2020-01-01T00:00"}
    flags = ["--step-minutes", "1440", "--start-time", "2020-01-01T00:00"]
    assert main(["--dataset", "generic", "--path", str(path), *flags, "--describe"]) == 0
    out = capsys.readouterr().out
    config = tiny_config()
    data = DataConfig(name="generic", recipe="auto", options=tuple(options.items()))
    prepared = prepare_data(dataclasses.replace(config, data=data))
    splits = prepared.splits
    counts = (len(splits.train), len(splits.val), len(splits.test))
    assert (prepared.config.data.in_steps, prepared.config.data.out_steps) == (28, 7)
    assert "28 in / 7 out (recipe daily, which training picks: 1-day steps)" in out
    assert f"windows train {counts[0]}, val {counts[1]}, test {counts[2]}" in out
    assert f"windows train {counts[0]}, val {counts[1]}, test {counts[2]}" in _data_line(
        prepared.config, prepared.series, splits
    )
    # Given lengths are used, and the recipe's are named beside them.
    assert (
        main(
            ["--dataset", "generic", "--path", str(path), *flags, "--describe"]
            + ["--in-steps", "12", "--out-steps", "12"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "12 in / 12 out (--in-steps / --out-steps; the recipe training picks, daily" in out


def test_training_log_names_the_sensors_without_a_test_target(tmp_path, capsys):
    """Issue 21, item 9d: --describe listed the sensors with no valid test target, the training
    log did not."""
    from eala_jax.train import DataConfig, prepare_data
    from eala_jax.train.prepare import data_line as _data_line
    from tests.train.train_helpers import tiny_config

    path = daily_file(tmp_path / "daily.npy")
    options = {"path": str(path), "step_minutes": 1440, "start_time": "2020-01-01T00:00"}
    data = DataConfig(name="generic", recipe="auto", options=tuple(options.items()))
    prepared = prepare_data(dataclasses.replace(tiny_config(), data=data))
    line = _data_line(prepared.config, prepared.series, prepared.splits)
    assert "Sensors with no valid target in a split (left out of its metrics): " in line
    assert "test 2 of 6 (index 1, index 4)" in line
    flags = ["--step-minutes", "1440", "--start-time", "2020-01-01T00:00"]
    assert main(["--dataset", "generic", "--path", str(path), *flags, "--describe"]) == 0
    assert "test 2 (index 1, index 4)" in capsys.readouterr().out
