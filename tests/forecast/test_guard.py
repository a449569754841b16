"""The baseline guard's choice per horizon step, on hand-made validation tables (no training)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eala_jax.train.guard import BaselineGuard


def _guard(**columns: tuple[list[float], list[float]]) -> BaselineGuard:
    """``name=(mae per step, rmse per step)`` -> a guard over those validation tables."""
    tables = {name: {"mae": mae, "rmse": rmse} for name, (mae, rmse) in columns.items()}
    return BaselineGuard.from_tables(tables)


def test_the_model_is_not_served_where_a_baseline_won_the_other_metric():
    """exchange_rate, horizon 96 (runs/guard): at step 16 the model won validation MAE by 1 %
    (0.1559 against 0.1576) and lost RMSE (0.2268 against 0.2252); served there, its test MSE was
    34 % above the last value's. Whichever metric the user names, the last value is served."""
    guard = _guard(
        model=([0.1548, 0.1559, 0.3006], [0.2205, 0.2268, 0.4097]),
        last_value=([0.1534, 0.1576, 0.30066], [0.2186, 0.2252, 0.4068]),
        historical_average=([2.09, 2.10, 2.20], [2.35, 2.36, 2.46]),
    )
    assert guard.served("mae") == ["last_value"] * 3
    assert guard.served("rmse") == ["last_value"] * 3
    # What the warnings and the table say is unchanged: per metric, where a baseline was better.
    assert guard.better("mae") == ["last_value", "model", "model"]
    assert guard.better("rmse") == ["last_value"] * 3


def test_counts_never_serve_a_forecast_that_lost_to_the_historical_average():
    """Hourly counts (issue 22): the model beats the historical average in MAE and loses to it in
    RMSE; the guard serves the historical average there, also when choosing by MAE."""
    guard = _guard(
        model=([0.461, 0.40, 0.50], [1.312, 1.10, 1.30]),
        last_value=([0.70, 0.41, 0.60], [1.60, 1.20, 1.50]),
        historical_average=([0.467, 0.45, 0.49], [1.247, 1.15, 1.20]),
    )
    assert guard.served("mae") == ["historical_average", "model", "historical_average"]
    assert guard.served("rmse") == ["historical_average", "model", "historical_average"]
    ha = guard.scores
    for metric in ("mae", "rmse"):
        for h, name in enumerate(guard.served(metric)):
            for m in ("mae", "rmse"):
                assert ha[m][name][h] <= ha[m]["historical_average"][h] or name == "model"


def test_among_baselines_that_beat_the_model_the_named_metric_chooses():
    guard = _guard(
        model=([1.0], [1.0]),
        last_value=([0.8], [1.1]),  # better in MAE only
        seasonal_naive=([0.9], [0.7]),  # better in both
        historical_average=([0.7], [1.2]),  # best MAE of all, but beats the model in MAE only
    )
    assert guard.served("mae") == ["historical_average"]
    assert guard.served("rmse") == ["seasonal_naive"]


def test_a_model_that_wins_both_metrics_is_served():
    guard = _guard(model=([0.5, 0.6], [0.7, 0.8]), last_value=([0.5, 0.9], [0.9, 0.8]))
    assert guard.served("mae") == ["model", "model"]  # ties are not wins
    with pytest.raises(ValueError, match="fallback metric must be one of"):
        guard.served("mse")


def test_the_record_round_trips(tmp_path):
    guard = _guard(model=([1.0, 0.5], [1.0, 0.7]), last_value=([0.9, 0.6], [1.1, 0.6]))
    guard.save(tmp_path / "guard.json")
    read = BaselineGuard.read(tmp_path / "guard.json")
    assert read.served("mae") == guard.served("mae") == ["last_value", "last_value"]
    np.testing.assert_array_equal(read.scores["rmse"]["model"], [1.0, 0.7])


def test_with_evidence_the_model_is_served_only_where_validation_is_sure():
    """Point estimates favour the model at both steps. Where validation is sure over the horizon
    (every p-value below 0.05) the model is served at both; where it is not, the baseline with the
    lowest validation score in the metric named; a step a baseline won serves it either way."""
    guard = _guard(
        model=([0.50, 0.60, 0.70], [0.70, 0.80, 0.90]),
        last_value=([0.55, 0.62, 0.65], [0.75, 0.85, 0.95]),
        historical_average=([0.60, 0.61, 0.80], [0.72, 0.84, 0.91]),
    )
    assert guard.served("mae") == ["model", "model", "last_value"]
    p_values = {
        "mae": {"last_value": 1e-4, "historical_average": 1e-3},
        "rmse": {"last_value": 1e-4, "historical_average": 0.02},
    }
    sure = dataclasses.replace(guard, p_values=p_values)
    assert sure.shown_better()
    assert sure.served("mae") == ["model", "model", "last_value"]
    p_values["rmse"]["historical_average"] = 0.06
    unsure = dataclasses.replace(guard, p_values=p_values)
    assert not unsure.shown_better()
    assert unsure.served("mae") == ["last_value", "historical_average", "last_value"]
    assert unsure.served("rmse") == ["historical_average", "historical_average", "last_value"]
    assert unsure.better("mae") == ["model", "model", "last_value"]  # what the warnings say


def test_the_evidence_round_trips(tmp_path):
    guard = _guard(model=([1.0], [1.0]), last_value=([1.1], [1.2]))
    unsure = dataclasses.replace(
        guard, p_values={"mae": {"last_value": 0.5}, "rmse": {"last_value": 0.5}}
    )
    unsure.save(tmp_path / "guard.json")
    read = BaselineGuard.read(tmp_path / "guard.json")
    assert read.served("mae") == ["last_value"] and guard.served("mae") == ["model"]
    assert "does not show the model better" in read.markdown()
