"""What a finished run records for forecasting (`write_record`, called by `results.write_results`
on process 0): the run record (`runinfo`), split-conformal intervals fitted on the loop's own
validation predictions of the best model, their test coverage and width per horizon on its test
predictions, and the baseline guard (`guard`) with its validation evidence (`evidence`), all under
``<workdir>/forecast/``; it returns the entries results.json gains and a markdown section. NumPy on
the host (one pass of the baselines over the validation windows); no model is run again.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np

from eala_jax.train.evaluate import Predictions
from eala_jax.train.evidence import guard_evidence, window_losses
from eala_jax.train.guard import GUARD_FILE, BaselineGuard
from eala_jax.train.intervals import DEFAULT_LEVELS, INTERVALS_FILE, conformal_intervals, coverage
from eala_jax.train.runinfo import run_info_from_data, save_run_info

__all__ = ["interval_steps", "write_record"]


def interval_steps(out_steps: int) -> tuple[int, ...]:
    """Horizon steps shown in the tables: 1, 3, 6, 12, 24, 48, 96, ... up to ``out_steps``, and
    ``out_steps``."""
    steps = [h for h in (1, 3, 6, 12, 24, 48, 96, 192, 336, 720) if h <= out_steps]
    return tuple(dict.fromkeys([*steps, out_steps]))


def write_record(
    run: Any, results: dict[str, Any], val: Predictions, test: Predictions
) -> tuple[dict[str, Any], str]:
    """Writes the forecast record, intervals and guard of the finished ``run`` (the loop's `_Run`;
    ``results``: its results with the validation and test tables; ``val`` / ``test``: the best
    model's predictions of every window of those splits, data units) and returns (entries for
    results.json, a markdown section).

    A failure here does not lose the run's results: it is printed as a warning and recorded
    (``forecast_error``); `eala_jax.forecast.Forecaster.load` rebuilds the record from the data.
    """
    try:
        return _write_record(run, results, val, test)
    except Exception as err:  # the run's own results must still be written
        message = f"{type(err).__name__}: {err}"
        print(
            f"warning: the forecast record was not written ({message}); "
            "eala_jax.forecast.Forecaster.load rebuilds it from the data",
            file=sys.stderr,
        )
        return {"forecast_error": message}, f"Forecast record not written: {message}\n"


def _write_record(
    run: Any, results: dict[str, Any], val: Predictions, test: Predictions
) -> tuple[dict[str, Any], str]:
    info = run_info_from_data(run.config, run.series, run.splits, run.average)
    folder = save_run_info(info, run.workdir)
    guard = BaselineGuard.from_tables(results["val"])
    # How sure validation is that the model beats each baseline over the horizon (the guard
    # serves the model only where it is sure).
    losses = window_losses(
        info,
        run.series,
        run.splits.val,
        val.pred,
        seasonal_period=guard.seasonal_period,
        batch_size=run.config.train.eval_batch_size,
    )
    guard = dataclasses.replace(guard, p_values=guard_evidence(losses))
    guard.save(folder / GUARD_FILE)
    intervals = conformal_intervals(*val, levels=DEFAULT_LEVELS)
    intervals.save(folder / INTERVALS_FILE)
    test_coverage = coverage(intervals, *test)
    served = guard.served("mae")
    guarded = {
        metric: [
            float(np.asarray(results["test"][name][metric])[h]) for h, name in enumerate(served)
        ]
        for metric in ("mae", "rmse")
    }
    extra = {
        "intervals": {
            "method": "split conformal, |residual| quantile per step (per node, pooled below "
            "50 validation targets)",
            "levels": list(intervals.levels),
            "pooled_share": [float(p.mean()) for p in intervals.pooled],
            "test": test_coverage,
        },
        "guard": {**guard.to_json(), "guarded_test_by_mae": guarded},
    }
    return extra, _markdown(test_coverage, guard, guarded, info.out_steps)


def _markdown(
    test_coverage: dict[str, Any], guard: BaselineGuard, guarded: dict[str, list[float]], n: int
) -> str:
    levels = list(test_coverage)
    head = "| horizon | " + " | ".join(f"coverage {k} % | width {k} %" for k in levels) + " |"
    lines = [
        "## Prediction intervals (test)",
        "",
        "Split-conformal intervals from the validation residuals of the best model "
        "(docs/forecast.md): share of the valid test targets inside, and mean width (data units).",
        "",
        head,
        "|---|" + "---|---|" * len(levels),
    ]
    for h in interval_steps(n):
        cells = [
            f"{100 * test_coverage[k]['coverage'][h - 1]:.1f} | "
            f"{test_coverage[k]['mean_width'][h - 1]:.3f}"
            for k in levels
        ]
        lines.append(f"| {h} | " + " | ".join(cells) + " |")
    cells = [
        f"{100 * test_coverage[k]['coverage_mean']:.1f} | {test_coverage[k]['mean_width_mean']:.3f}"
        for k in levels
    ]
    lines.append(f"| mean 1-{n} | " + " | ".join(cells) + " |")
    served = guard.served("mae")
    lines += ["", "## Baseline guard (validation)", "", guard.markdown()]
    if any(s != "model" for s in served):
        lines += [
            "",
            "`experiments.forecast --fallback` serves the baseline there (by MAE; test MAE of the "
            f"guarded forecast, mean over steps: {np.mean(guarded['mae']):.3f}).",
        ]
    return "\n".join(lines) + "\n"
