"""docs/results.md, section 4: the forecasts of trained runs, their conformal intervals' test
coverage (`experiments/results/coverage.json`, from `python -m experiments.coverage`), the baseline
guard's check (`experiments/results/guard.json`, from `python -m experiments.guard_check`) and the
jitted forecaster's inference cost (`benchmarks/results/inference.json`, from `python -m
benchmarks.inference`)."""

from __future__ import annotations

from typing import Any

from eala_jax.bench.machine import describe
from eala_jax.bench.tables import inference_table
from experiments.coverage import markdown as coverage_table
from experiments.guard_check import markdown as guard_table

__all__ = ["forecast_section"]


def forecast_section(
    coverage: dict[str, Any] | None,
    inference: dict[str, Any] | None,
    guard: dict[str, Any] | None = None,
) -> list:
    """Markdown lines of section 4 (a "not yet run" line for a missing file)."""
    lines = ["## 4. Forecasting with a trained run", ""]
    lines += ["### Prediction intervals", ""]
    if coverage:
        runs = " ".join(f"--run {r['name']}={r['workdir']}" for r in coverage["runs"])
        lines += [
            "Split-conformal intervals from each run's validation residuals (docs/forecast.md), "
            "scored on its test windows: the share of valid targets inside and the mean width "
            "(data units). A test MAE far from the validation one is a shift between the splits "
            "that validation residuals cannot know of. `python -m experiments.coverage "
            f"{runs}` on {coverage['machine']}.",
            "",
            coverage_table(coverage["runs"]),
            "",
        ]
    else:
        lines += ["_not yet run_", ""]
    lines += ["### Baseline guard", ""]
    if guard:
        lines += [
            "Every validation and test window forecast through `Forecaster.predict`, without and "
            "with `fallback` (by MAE and by RMSE), beside the baselines the guard serves "
            '(docs/forecast.md, "The baseline guard"). Targets: on exchange_rate the guarded '
            "forecast's test MSE within 2 % of the last value's at every step; on hourly counts "
            "no step serving a forecast that lost to the historical average on validation. "
            "The runs are short (docs/forecast.md has their training commands); "
            f"`{guard['command']}` on {guard['machine']}.",
            "",
            guard_table(guard["runs"]),
        ]
    else:
        lines += ["_not yet run_", ""]
    lines += ["### Inference cost", ""]
    if inference:
        lines += [
            f"`{inference.get('command', 'python -m benchmarks.inference')}` (the forecaster's "
            "jitted function, full-size model; read ratios: the machine was shared; "
            "compile time apart, median of repeats) on "
            f"{describe(inference['machine'])} ({inference['device']}).",
            "",
            inference_table(inference["rows"]),
            "",
        ]
    else:
        lines += ["_not yet run_", ""]
    return lines
