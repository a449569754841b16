"""What a finished training run adds for forecasting (`at_finish`, called by the training loop's
`_finish` on process 0): the forecast record (`runinfo`), split-conformal intervals from the
validation residuals of the best model, their test coverage and width per horizon, and the
baseline guard (`guard`, with the validation evidence of `evidence`), all under
``<workdir>/forecast/``; it returns the rows the run's results gain. Costs two single-device
passes over the validation windows and one over the test windows.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np

from eala_jax.forecast.evidence import guard_evidence, window_losses
from eala_jax.forecast.forecaster import Forecaster, _restore_model
from eala_jax.forecast.guard import GUARD_FILE, BaselineGuard
from eala_jax.forecast.intervals import DEFAULT_LEVELS, INTERVALS_FILE, coverage
from eala_jax.forecast.runinfo import run_info_from_data, save_run_info

__all__ = ["at_finish", "interval_steps"]


def interval_steps(out_steps: int) -> tuple[int, ...]:
    """Horizon steps shown in the tables: 1, 3, 6, 12, 24, 48, 96, ... up to ``out_steps``, and
    ``out_steps``."""
    steps = [h for h in (1, 3, 6, 12, 24, 48, 96, 192, 336, 720) if h <= out_steps]
    return tuple(dict.fromkeys([*steps, out_steps]))


def at_finish(run: Any, results: dict[str, Any], best: Any) -> tuple[dict[str, Any], str]:
    """Writes the forecast record, intervals and guard of the finished ``run`` (the loop's
    `_Run`; ``best``: its best checkpoint's host state, ``results``: its results with the
    validation and test tables) and returns (entries for results.json, a markdown section).

    Process 0 only, one device, no collective. A failure here does not lose the run's results:
    it is printed as a warning and recorded (``forecast_error``); `Forecaster.load` rebuilds the
    record from the data later.
    """
    try:
        return _at_finish(run, results, best)
    except Exception as err:  # the run's own results must still be written
        message = f"{type(err).__name__}: {err}"
        print(
            f"warning: the forecast record was not written ({message}); "
            "eala_jax.forecast.Forecaster.load rebuilds it from the data",
            file=sys.stderr,
        )
        return {"forecast_error": message}, f"Forecast record not written: {message}\n"


def _at_finish(run: Any, results: dict[str, Any], best: Any) -> tuple[dict[str, Any], str]:
    workdir = run.workdir
    info = run_info_from_data(run.config, run.series, run.splits, run.average)
    folder = save_run_info(info, workdir)
    guard = BaselineGuard.from_tables(results["val"])
    graphdef, params = _restore_model(workdir, info, best)
    forecaster = Forecaster(info, graphdef, params, guard=guard, workdir=workdir)
    # How sure validation is that the model beats each baseline, per step (the guard serves the
    # model only where it is sure).
    losses = window_losses(
        forecaster, run.series, run.splits.val, batch_size=run.config.train.eval_batch_size
    )
    guard = forecaster.guard = dataclasses.replace(guard, p_values=guard_evidence(losses))
    guard.save(folder / GUARD_FILE)
    batch = None  # the run's eval_batch_size
    intervals = forecaster.fit_intervals(run.series, run.splits, DEFAULT_LEVELS, batch_size=batch)
    intervals.save(folder / INTERVALS_FILE)
    test = run.splits.test
    bt = forecaster.backtest(
        run.series, test.first_target, test.first_target + len(test), batch_size=batch
    )
    test_coverage = coverage(intervals, bt.pred, bt.target, bt.mask)
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
