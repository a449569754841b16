"""Forecaster.load / predict / backtest against the training loop's own evaluation, the guard's
baselines against evaluate_baselines, and the record rebuilt for an older workdir."""

from __future__ import annotations

import json
import shutil
import warnings

import jax
import numpy as np
import pytest

from eala_jax.forecast import BaselineWarning, Forecaster
from eala_jax.train.evaluate import evaluate_split as _evaluate
from eala_jax.train.loop import _Run
from tests.forecast.conftest import CONFIG


@pytest.fixture(scope="module")
def loop_predictions(trained):
    """The loop's own predictions of the best checkpoint on the val and test windows."""
    workdir, _ = trained
    run = _Run.build(CONFIG, workdir)
    try:
        best = run.checkpoints.restore_best(run.initial_state)
        state = run.dp.put_state(jax.tree.map(np.asarray, best))
        out = {
            name: _evaluate(run, state, run.splits[name], keep_predictions=True)[1]
            for name in ("val", "test")
        }
    finally:
        run.close()
    return run, out


@pytest.fixture(scope="module")
def forecaster(trained):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        return Forecaster.load(trained[0])


@pytest.mark.parametrize("split", ["val", "test"])
def test_backtest_equals_the_loops_predictions(forecaster, loop_predictions, split):
    run, predictions = loop_predictions
    source = run.splits[split]
    bt = forecaster.backtest(run.series, source.first_target, source.first_target + len(source))
    expected = predictions[split]
    assert bt.pred.shape == expected.pred.shape == (len(source), 12, 6)
    assert np.max(np.abs(bt.pred - expected.pred)) <= 1e-5
    # At the loop's batch size (the default) the z-scores are NumPy's bit for bit, and so is all
    # that follows on one device.
    np.testing.assert_array_equal(bt.pred, expected.pred)
    odd = forecaster.backtest(
        run.series, source.first_target, source.first_target + len(source), batch_size=17
    )
    assert np.max(np.abs(odd.pred - expected.pred)) <= 1e-5
    np.testing.assert_array_equal(bt.mask, expected.mask)
    np.testing.assert_array_equal(bt.target, expected.target)


def test_predict_equals_backtest_and_names_the_times(forecaster, loop_predictions):
    run, predictions = loop_predictions
    series, test = run.series, run.splits.test
    step = np.timedelta64(series.step_minutes, "m")
    rows = [0, 7, 40]
    starts = [test.target_start(r) for r in rows]
    history = np.stack([series.values[s - 20 : s] for s in starts])  # longer than in_steps (12)
    first = np.array([series.start_time + (s - 20) * step for s in starts])
    batched = forecaster.predict(history, start_time=first)
    np.testing.assert_allclose(batched.forecast, predictions["test"].pred[rows], atol=1e-5)
    single = forecaster.predict(history[1], start_time=first[1])
    assert single.forecast.shape == (12, 6)
    np.testing.assert_allclose(single.forecast, batched.forecast[1], atol=1e-6)
    expected_times = series.start_time + (starts[1] + np.arange(12)) * step
    np.testing.assert_array_equal(single.times, expected_times)
    # The same call with each row's timestamps, and with the columns in another order.
    times = first[1] + np.arange(20) * step
    np.testing.assert_array_equal(
        forecaster.predict(history[1], times=times).forecast, single.forecast
    )
    order = np.array([3, 0, 5, 1, 2, 4])
    shuffled = forecaster.predict(
        history[1][:, order],
        start_time=first[1],
        node_ids=[forecaster.node_ids[i] for i in order],
    )
    np.testing.assert_array_equal(shuffled.forecast, single.forecast)


def test_missing_inputs_are_masked_as_in_training(forecaster, loop_predictions):
    """A window with NaN inputs forecasts as the loop does for the same window (0 in z-units)."""
    run, _ = loop_predictions
    series = run.series
    values = series.values.copy()
    values[300:305, 2] = np.nan
    values[296:308, 4] = np.nan  # a node with no input at all in the window
    holed = type(series)(**{**series.__dict__, "values": values})
    bt = forecaster.backtest(holed, 308, 309)
    step = np.timedelta64(series.step_minutes, "m")
    out = forecaster.predict(values[296:308], start_time=series.start_time + 296 * step)
    np.testing.assert_allclose(out.forecast, bt.pred[0], atol=1e-6)
    assert np.isfinite(out.forecast).all()


def test_fallback_baselines_score_as_the_run_reported(forecaster, trained, loop_predictions):
    """The baselines the guard serves, forecast window by window through predict, score on
    validation exactly what the run's table says (the same baselines, not look-alikes)."""
    workdir, results = trained
    run, _ = loop_predictions
    series, val = run.series, run.splits.val
    step = np.timedelta64(series.step_minutes, "m")
    starts = np.array([val.target_start(i) for i in range(len(val))])
    length = 300  # > the seasonal naive's period (a day: 288 steps)
    history = np.stack([series.values[s - length : s] for s in starts])
    first = series.start_time + (starts - length) * step
    baselines = forecaster.baselines(history, first.astype("datetime64[m]"))
    target = np.stack([series.values[s : s + 12] for s in starts])
    mask = ~np.isnan(target)
    for name in ("last_value", "historical_average", "seasonal_naive"):
        err = np.where(mask, np.abs(baselines[name] - np.nan_to_num(target)), 0.0)
        mae = err.sum((0, 2)) / mask.sum((0, 2))
        np.testing.assert_allclose(mae, results["val"][name]["mae"], rtol=1e-5, err_msg=name)
    served = forecaster.guard.served("mae")
    assert served != ["model"] * 12  # the tiny run loses somewhere, so the fallback is exercised
    out = forecaster.predict(history[:5], start_time=first[:5], fallback=True)
    plain = forecaster.predict(history[:5], start_time=first[:5])
    for h, name in enumerate(served):
        expected = plain.forecast[:, h] if name == "model" else baselines[name][:5, h]
        np.testing.assert_allclose(out.forecast[:, h], expected, atol=1e-6)
        assert np.isnan(out.lower[0.8][:, h]).all() == (name != "model")
    assert out.served == tuple(served)


def test_load_warns_per_metric_where_a_baseline_won(trained):
    with pytest.warns(BaselineWarning, match="validation MAE: .* better at step"):
        Forecaster.load(trained[0])


def test_an_older_workdir_is_rebuilt_from_its_data(trained, forecaster, tmp_path):
    """A workdir from before the forecast record: the record is rebuilt from the data its config
    names on first load, equal to the one the run wrote."""
    old = tmp_path / "old"
    shutil.copytree(trained[0], old)
    shutil.rmtree(old / "forecast")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        rebuilt = Forecaster.load(old)
    assert (old / "forecast" / "run.json").is_file()
    assert (old / "forecast" / "intervals.npz").is_file()
    written = json.loads((trained[0] / "forecast" / "run.json").read_text())
    assert json.loads((old / "forecast" / "run.json").read_text()) == written
    np.testing.assert_allclose(
        rebuilt.intervals.half_width, forecaster.intervals.half_width, rtol=1e-6
    )
    assert rebuilt.guard.served("rmse") == forecaster.guard.served("rmse")
