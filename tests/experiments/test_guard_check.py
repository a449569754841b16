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
    for name in ("model", "last_value", "historical_average"):
        np.testing.assert_allclose(row["test"][name]["mae"], results["test"][name]["mae"], 1e-5)
    # The guarded forecast scores, at each step, what the forecast it served scores there.
    for metric in ("mae", "rmse"):
        served = row["served"][metric]
        assert any(s != "model" for s in served)  # the tiny run loses somewhere
        for split in ("val", "test"):
            got = np.asarray(row[split][f"guarded_{metric}"]["mse"])
            want = [row[split][name]["mse"][h] for h, name in enumerate(served)]
            np.testing.assert_allclose(got, want, rtol=1e-6)
    # The criteria follow from the scores.
    test = row["test"]
    ratio = np.asarray(test["guarded_mae"]["mse"]) / np.asarray(test["last_value"]["mse"])
    assert row["guarded_over_last_value_mse_max"]["guarded_mae"] == ratio.max()
    assert row["last_value_2pct"]["guarded_mae"] == bool(ratio.max() <= 1.02)
    lost = row["lost_to_historical_average_on_val"]["guarded_mae"]
    assert row["never_lost_to_historical_average"]["guarded_mae"] == (not lost)
    assert "**tiny**" in capsys.readouterr().out
