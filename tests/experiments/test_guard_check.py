"""experiments.guard_check on the shared tiny run: every window through Forecaster.predict with
and without the fallback reproduces the run's own tables, and the guarded scores are those of the
forecasts the guard chose on validation."""

from __future__ import annotations

import json

import numpy as np

from experiments import guard_check
from tests.forecast.conftest import trained  # noqa: F401  (the shared tiny run)


def test_guard_check_of_a_tiny_run(trained, tmp_path, capsys):  # noqa: F811
    workdir, results = trained
    out = tmp_path / "guard.json"
    guard_check.main(["--run", f"tiny={workdir}", "--out", str(out), "--batch", "64"])
    record = json.loads(out.read_text())
    (row,) = record["runs"]
    assert record["command"].startswith("python -m experiments.guard_check --run tiny=")
    # The model's and the baselines' scores computed through the forecaster are the run's own.
    assert row["agreement_with_run_tables"] < 1e-4
    assert set(row["evidence"]) == {"mae", "rmse"}  # the run's hook wrote the evidence
    assert isinstance(row["shown_better"], bool)
    steps = np.asarray(row["table_steps"]) - 1
    assert row["table_steps"] == [1, 3, 6, 12]
    for name in ("model", "last_value", "historical_average"):
        want = np.asarray(results["test"][name]["mae"])
        np.testing.assert_allclose(row["test"][name]["mae"], want[steps], 1e-5)
        np.testing.assert_allclose(row["test"][name]["mae_mean"], want.mean(), 1e-5)
    # The guarded forecast scores, at each step, what the forecast it served scores there.
    for metric in ("mae", "rmse"):
        served = row["served"][metric]
        assert any(name != "model" for name, _, _ in served)  # the tiny run loses somewhere
        for split in ("val", "test"):
            for i, h in enumerate(row["table_steps"]):
                name = guard_check.served_at(served, h)
                got = row[split][f"guarded_{metric}"]["mse"][i]
                np.testing.assert_allclose(got, row[split][name]["mse"][i], rtol=1e-6)
    # The criteria follow from the scores.
    ratio = row["guarded_over_last_value_mse_max"]["guarded_mae"]
    assert row["last_value_2pct"]["guarded_mae"] == bool(ratio <= 1.02)
    test = row["test"]
    at_steps = zip(test["guarded_mae"]["mse"], test["last_value"]["mse"], strict=True)
    assert ratio >= max(g / v for g, v in at_steps) * (1 - 1e-5)  # the worst step of all
    lost = row["lost_to_historical_average_on_val"]["guarded_mae"]
    assert row["never_lost_to_historical_average"]["guarded_mae"] == (not lost)
    assert "**tiny**" in capsys.readouterr().out
