"""Input that does not fit the run: a clear ForecastInputError / WorkdirError naming what was
expected, raised before the model runs."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from eala_jax.forecast import BaselineWarning, Forecaster, ForecastInputError, WorkdirError

START = np.datetime64("2024-01-01T00:00", "m")


@pytest.fixture(scope="module")
def forecaster(trained):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        return Forecaster.load(trained[0])


def _history(steps=12, nodes=6):
    return np.random.default_rng(0).normal(50, 5, (steps, nodes)).astype(np.float32)


def test_history_shorter_than_in_steps(forecaster):
    with pytest.raises(ForecastInputError, match="has 11 steps .* in_steps=12"):
        forecaster.predict(_history(11), start_time=START)


def test_wrong_number_of_nodes(forecaster):
    with pytest.raises(ForecastInputError, match="5 columns but the run forecasts 6 nodes"):
        forecaster.predict(_history(12, 5), start_time=START)


def test_unknown_node_ids(forecaster):
    ids = [*forecaster.node_ids[:5], "sensor_x"]
    with pytest.raises(ForecastInputError, match="unknown node ids 'sensor_x'"):
        forecaster.predict(_history(), start_time=START, node_ids=ids)


def test_repeated_node_ids(forecaster):
    ids = [*forecaster.node_ids[:5], forecaster.node_ids[0]]
    with pytest.raises(ForecastInputError, match="each of the run's 6 nodes once; missing"):
        forecaster.predict(_history(), start_time=START, node_ids=ids)


def test_all_missing_history(forecaster):
    history = _history(20)
    history[-12:] = np.nan
    with pytest.raises(ForecastInputError, match="last 12 steps are all missing"):
        forecaster.predict(history, start_time=START)


def test_timestamps_that_do_not_follow_the_step(forecaster):
    times = START + np.arange(12) * np.timedelta64(5, "m")
    times[7:] += np.timedelta64(5, "m")  # a skipped step
    with pytest.raises(ForecastInputError, match="do not follow the run's step of 5 min"):
        forecaster.predict(_history(), times=times)


def test_a_start_off_the_grid_and_no_start(forecaster):
    with pytest.raises(ForecastInputError, match="not on the run's 5-min grid"):
        forecaster.predict(_history(), start_time="2024-01-01T00:03")
    with pytest.raises(ForecastInputError, match="give start_time="):
        forecaster.predict(_history())
    with pytest.raises(ForecastInputError, match="not a timestamp"):
        forecaster.predict(_history(), start_time="yesterday")


def test_a_workdir_with_no_best_checkpoint(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained[0], workdir)
    shutil.rmtree(workdir / "best")
    with pytest.raises(WorkdirError, match="holds no best checkpoint"):
        Forecaster.load(workdir)
    assert not (workdir / "best").exists()  # nothing created while refusing
    with pytest.raises(WorkdirError, match="holds no config.json"):
        Forecaster.load(tmp_path)


def test_a_workdir_from_another_version(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained[0], workdir)
    record = workdir / "forecast" / "run.json"
    saved = json.loads(record.read_text())
    record.write_text(json.dumps({**saved, "format_version": 99}))
    with pytest.raises(WorkdirError, match="format version 99; this eala_jax reads version 1"):
        Forecaster.load(workdir)
    record.write_text(json.dumps(saved))
    config = json.loads((workdir / "config.json").read_text())
    config["model"]["future_option"] = 1
    (workdir / "config.json").write_text(json.dumps(config))
    with pytest.raises(WorkdirError, match="does not fit this version .*future_option"):
        Forecaster.load(workdir)


def test_backtest_outside_the_series(forecaster, trained):
    from eala_jax.data import load_dataset

    series = load_dataset("synthetic", num_days=3, num_nodes=6)
    with pytest.raises(ForecastInputError, match=r"must lie in \[12, 853\]"):
        forecaster.backtest(series, 5, 20)
    with pytest.raises(ForecastInputError, match="has 4 nodes at 5-min steps"):
        forecaster.backtest(load_dataset("synthetic", num_days=3, num_nodes=4), 20, 30)
