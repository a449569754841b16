"""What a finished run writes (process 0): `results.json`, `results.md` (a table per method and
split, the rows `table_horizons` picks), the per-window test errors (`TEST_WINDOWS_FILE`), the
forecast record with its intervals and baseline guard (`record`), and the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from eala_jax.metrics import format_horizon_table
from eala_jax.train import plots
from eala_jax.train.config import Config
from eala_jax.train.evaluate import Predictions
from eala_jax.train.record import write_record

__all__ = [
    "HORIZONS",
    "TEST_WINDOWS_FILE",
    "jsonable",
    "table_horizons",
    "tables_markdown",
    "write_results",
]

HORIZONS = (3, 6, 12)
#: Written beside results.json: `metrics.window_sums` of the best model over every test window,
#: in window order (score any subset with `metrics.subset_scores`).
TEST_WINDOWS_FILE = "test_windows.npz"


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def tables_markdown(title: str, tables: dict[str, dict[str, Any]]) -> str:
    """One table per method; the seasonal naive's heading names its period (picked on val)."""
    parts = [f"## {title}"]
    for name, result in tables.items():
        period = f" (period: {result['period']})" if "period" in result else ""
        table = format_horizon_table(result, horizons=table_horizons(result))
        parts.append(f"\n### {name}{period}\n\n{table}")
    return "\n".join(parts) + "\n"


def table_horizons(result: dict[str, Any]) -> tuple[int, ...]:
    """The rows of a results table: `HORIZONS` within the forecast, and always its last step."""
    n = len(np.asarray(result["mae"]))
    return (*(h for h in HORIZONS if h < n), n)


def write_results(
    workdir: Path,
    config: Config,
    results: dict[str, Any],
    *,
    val: Predictions,
    test: Predictions,
    test_windows: dict[str, np.ndarray],
    run: Any,
) -> None:
    """Writes the finished run's files into `workdir` (process 0 only) and adds the forecast
    record's entries to `results`. `val` / `test`: the best model's predictions of every window
    of those splits; `run`: the loop's run, for the forecast record (`record.write_record`)."""
    forecast_results, forecast_markdown = write_record(run, results, val, test)  # intervals, guard
    results.update(forecast_results)
    # Per-window test errors: the score of any subset of the test windows (e.g. a published
    # evaluation that dropped the last incomplete batch) without running the model again.
    np.savez(workdir / TEST_WINDOWS_FILE, **test_windows)
    (workdir / "results.json").write_text(json.dumps(jsonable(results), indent=2) + "\n")
    title = (
        f"{config.name}: {config.data.name}, temporal={results['temporal_attention']}, "
        f"spatial={results['spatial_attention']}, best epoch {results['best_epoch']} of "
        f"{results['epochs']} ({results['stop_reason']}), "
        f"{results['time_per_epoch_s'] or 0:.1f} s/epoch"
    )
    markdown = (
        f"# {title}\n\n"
        + tables_markdown("Test", results["test"])
        + "\n"
        + tables_markdown("Validation", results["val"])
        + "\n"
        + forecast_markdown
    )
    (workdir / "results.md").write_text(markdown)
    print(markdown)
    history = results["history"]
    if config.plots and history:
        baselines = {k: float(v["mae_mean"]) for k, v in results["val"].items() if k != "model"}
        plots.plot_learning_curve(history, workdir / "learning_curve.png", baselines=baselines)
        plots.plot_predictions(
            *test,
            workdir / "predictions.png",
            sensors=config.train.plot_sensors,
            horizon=config.train.plot_horizon,
        )
