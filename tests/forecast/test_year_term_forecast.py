"""A daily run over three years chooses the day-of-year term on validation, and the forecaster
loaded from its workdir reproduces it: the model's profile in the jitted graph and in the export,
and the historical average the guard serves."""

from __future__ import annotations

import json
import warnings

import jax
import numpy as np
import pytest

from eala_jax.data.synthetic import write_series_csv
from eala_jax.forecast import BaselineWarning, Forecaster
from eala_jax.forecast.export import export_forecaster
from eala_jax.train import train_and_evaluate
from eala_jax.train.evaluate import evaluate_split
from eala_jax.train.loop import _Run
from eala_jax.train.runinfo import recompute_run_info
from tests.models.test_year_term import _daily_series
from tests.train.test_recipes_end_to_end import _generic_config


@pytest.fixture(scope="module")
def daily_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("daily")
    write_series_csv(_daily_series(3.2), folder / "data.csv")
    config = _generic_config(folder / "data.csv")
    results = train_and_evaluate(config, folder / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        forecaster = Forecaster.load(folder / "run")
    return config, folder / "run", results, forecaster


def test_the_run_records_the_choice(daily_run):
    _, workdir, results, forecaster = daily_run
    assert results["data_notes"][0].startswith("Recipe daily ")
    table = results["seasonal_table"]
    assert table["day_of_year_term"] is True
    assert table["val_mae"]["weekday+day_of_year"] < 0.99 * table["val_mae"]["weekday"]
    assert any("with a day-of-year term" in note for note in results["data_notes"])
    assert json.loads((workdir / "results.json").read_text())["seasonal_table"] == table
    assert forecaster.spec.year_term and forecaster.year.shape == (366, 4)


def test_backtest_and_export_equal_the_loops_predictions(daily_run):
    config, workdir, _, forecaster = daily_run
    run = _Run.build(config, workdir)
    try:
        best = run.checkpoints.restore_best(run.initial_state)
        state = run.dp.put_state(jax.tree.map(np.asarray, best))
        expected = evaluate_split(run, state, run.splits.test, keep_predictions=True)[1]
    finally:
        run.close()
    test = run.splits.test
    bt = forecaster.backtest(run.series, test.first_target, test.first_target + len(test))
    assert np.max(np.abs(bt.pred - expected.pred)) <= 1e-5
    # The exported artefact closes over the same day-of-year table.
    path, _ = export_forecaster(forecaster, workdir / "model.bin")
    serve = jax.export.deserialize(path.read_bytes())
    starts = test.first_target + np.arange(3)
    history = np.stack([run.series.values[s - 28 : s] for s in starts]).astype(np.float32)
    first = np.datetime64(run.series.start_time, "m") + (starts - 28) * np.timedelta64(1440, "m")
    minutes = first.astype(np.int64).astype(np.int32)
    out = np.asarray(serve.call(history, minutes)[0])
    assert np.max(np.abs(out - expected.pred[:3])) <= 1e-5


def test_the_served_historical_average_scores_as_the_run_reported(daily_run):
    _, workdir, results, forecaster = daily_run
    _, prepared = recompute_run_info(workdir)
    val, values = prepared.splits.val, prepared.series.values
    starts = val.first_target + np.arange(len(val))
    history = np.stack([values[s - 28 : s] for s in starts])
    first = np.datetime64(prepared.series.start_time, "m") + (starts - 28) * np.timedelta64(
        1440, "m"
    )
    average = forecaster.baselines(history, first)["historical_average"]
    target = np.stack([values[s : s + 7] for s in starts])
    mask = ~np.isnan(target)
    mae = np.where(mask, np.abs(average - np.nan_to_num(target)), 0.0).sum((0, 2)) / mask.sum(
        (0, 2)
    )
    np.testing.assert_allclose(mae, results["val"]["historical_average"]["mae"], rtol=1e-5)
