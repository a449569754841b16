"""Check the baseline guard of trained runs where it matters (docs/forecast.md, "The baseline
guard"; issue 22):

    python -m experiments.guard_check --run exchange_rate_h96=runs/guard/exchange_rate_h96 \
        --run hourly_counts=runs/guard/hourly_counts

For each run, every validation and test window is forecast through `Forecaster.predict` (the path
a user takes), without and with ``fallback`` (by MAE and by RMSE), beside the baselines the guard
serves (`Forecaster.baselines`). Per horizon step it reports the guard's choice (made on
validation), and the test MSE / MAE of the unguarded model, the guarded forecast and each baseline.
Two criteria, both reported for every run:

- ``last_value_2pct``: the guarded forecast's test MSE is within 2 % of the last value's at every
  step (where the last value is as good as the best model: exchange_rate);
- ``never_lost_to_historical_average``: on validation, the forecast served at each step is not
  worse than the historical average's, in MAE nor in RMSE (the hourly-count recipe).

It also checks that the model's and baselines' scores computed here equal the run's own tables
(``results.json``), so the guard is checked on the numbers it chose by. ``--refit-guard`` first
adds the validation evidence (`eala_jax.train.evidence`) to the guard of a run that finished
before it was recorded (rewriting ``forecast/guard.json``). Writes
`experiments/results/guard.json` and prints the markdown of docs/results.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from eala_jax.bench.machine import describe, machine_info
from eala_jax.forecast import BaselineWarning, Forecaster
from eala_jax.train.evidence import guard_evidence, window_losses
from eala_jax.train.guard import GUARD_FILE, METRICS
from eala_jax.train.record import interval_steps
from eala_jax.train.runinfo import recompute_run_info

OUT = Path("experiments/results/guard.json")
#: Forecasts compared per step: the unguarded model, the guarded forecast by each metric, and the
#: baselines the guard can serve.
GUARDED = tuple(f"guarded_{m}" for m in METRICS)
LAST_VALUE_TOLERANCE = 0.02


def _scores(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """float64 per-step MAE and MSE over the valid targets of ``[W, T, N]`` windows."""
    err = np.where(mask, pred.astype(np.float64) - target, 0.0)
    count = mask.sum((0, 2))
    return {"mae": np.abs(err).sum((0, 2)) / count, "mse": np.square(err).sum((0, 2)) / count}


def forecast_split(
    forecaster: Forecaster, series: Any, source: Any, *, batch: int
) -> dict[str, dict[str, np.ndarray]]:
    """Per-step scores on the windows of ``source`` of every forecast in (model, guarded by each
    metric, each baseline): ``{name: {"mae": [T], "mse": [T]}}``."""
    fc = forecaster
    starts = source.first_target + np.arange(len(source))
    period = fc.guard.seasonal_period if fc.guard is not None else None
    # Enough rows before each window for the seasonal naive's value a period (or k periods) back.
    reach = fc.in_steps if not period else ((fc.out_steps - 1) // period + 1) * period
    length = min(max(fc.in_steps, reach), int(starts.min()))
    step = np.timedelta64(series.step_minutes, "m")
    origin = np.datetime64(series.start_time, "m")
    parts: dict[str, list[np.ndarray]] = {}
    targets, masks = [], []
    for i in range(0, len(starts), batch):
        chunk = starts[i : i + batch]
        history = np.stack([series.values[s - length : s] for s in chunk])
        first = origin + (chunk - length) * step
        out = {"model": fc.predict(history, start_time=first).forecast}
        for metric in METRICS:
            guarded = fc.predict(history, start_time=first, fallback=True, metric=metric)
            out[f"guarded_{metric}"] = guarded.forecast
        out.update(fc.baselines(history, first))
        for name, pred in out.items():
            parts.setdefault(name, []).append(pred)
        target = np.stack([series.values[s : s + fc.out_steps] for s in chunk])
        masks.append(~np.isnan(target))
        targets.append(np.nan_to_num(target))
    target, mask = np.concatenate(targets), np.concatenate(masks)
    return {name: _scores(np.concatenate(p), target, mask) for name, p in parts.items()}


def _load(workdir: Path) -> Forecaster:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        return Forecaster.load(workdir)


def refit_guard(workdir: Path, *, batch: int = 256) -> None:
    """Rewrites ``workdir``'s ``forecast/guard.json`` with the validation evidence (as a run since
    writes it when it finishes)."""
    forecaster = _load(workdir)
    _, prepared = recompute_run_info(workdir)
    val = prepared.splits.val
    model = forecaster.backtest(
        prepared.series, val.first_target, val.first_target + len(val), batch_size=batch
    ).pred
    losses = window_losses(
        forecaster.info,
        prepared.series,
        val,
        model,
        seasonal_period=forecaster.guard.seasonal_period,
        batch_size=batch,
    )
    guard = dataclasses.replace(forecaster.guard, p_values=guard_evidence(losses))
    guard.save(workdir / "forecast" / GUARD_FILE)


def measure(name: str, workdir: Path, *, batch: int = 256) -> dict[str, Any]:
    """The guard check of ``workdir`` (see the module docstring)."""
    forecaster = _load(workdir)
    if forecaster.guard is None:
        raise ValueError(f"{workdir}: no baseline guard (the run has not finished)")
    _, prepared = recompute_run_info(workdir)
    results = json.loads((workdir / "results.json").read_text())
    scores = {
        split: forecast_split(forecaster, prepared.series, prepared.splits[split], batch=batch)
        for split in ("val", "test")
    }
    # The run's own tables, recomputed through the forecaster: the largest relative difference.
    agreement = max(
        float(np.max(np.abs(scores[split][k][m] / np.asarray(results[split][k][m]) - 1)))
        for split in ("val", "test")
        for k in results[split]
        if k in scores[split]
        for m in ("mae", "mse")
    )
    test, val = scores["test"], scores["val"]
    ratio = {g: test[g]["mse"] / test["last_value"]["mse"] for g in GUARDED}
    lost = {}
    for metric in METRICS:
        served = forecaster.guard.served(metric)
        steps = []
        for h, chosen in enumerate(served):
            for m, key in (("mae", "mae"), ("rmse", "mse")):
                if val[f"guarded_{metric}"][key][h] > val["historical_average"][key][h] * (
                    1 + 1e-6
                ):
                    steps.append({"step": h + 1, "served": chosen, "worse_in": m})
        lost[f"guarded_{metric}"] = steps
    return {
        "name": name,
        "workdir": str(workdir),
        "data": results["data"],
        "in_steps": forecaster.in_steps,
        "out_steps": forecaster.out_steps,
        "best_epoch": results["best_epoch"],
        "steps": results["steps"],
        "test_windows": len(prepared.splits.test),
        "served": {m: _runs(forecaster.guard.served(m)) for m in METRICS},
        "better_on_validation": {m: _runs(forecaster.guard.better(m)) for m in METRICS},
        "shown_better": forecaster.guard.shown_better(),
        "evidence": forecaster.guard.p_values,
        "seasonal_period": forecaster.guard.seasonal_period,
        "table_steps": list(interval_steps(forecaster.out_steps)),
        "val": _at_steps(val, forecaster.out_steps),
        "test": _at_steps(test, forecaster.out_steps),
        "agreement_with_run_tables": agreement,
        "guarded_over_last_value_mse_max": {g: float(r.max()) for g, r in ratio.items()},
        "last_value_2pct": {g: bool(r.max() <= 1 + LAST_VALUE_TOLERANCE) for g, r in ratio.items()},
        "lost_to_historical_average_on_val": lost,
        "never_lost_to_historical_average": {g: not s for g, s in lost.items()},
    }


def _runs(choice: list[str]) -> list[list[Any]]:
    """Per-step choices as runs ``[name, first step, last step]`` (1-based)."""
    runs: list[list[Any]] = []
    for h, name in enumerate(choice, start=1):
        if runs and runs[-1][0] == name and runs[-1][2] == h - 1:
            runs[-1][2] = h
        else:
            runs.append([name, h, h])
    return runs


def served_at(runs: list[list[Any]], step: int) -> str:
    """The choice at 1-based ``step`` of `_runs` output."""
    return next(name for name, first, last in runs if first <= step <= last)


def _at_steps(scores: dict[str, dict[str, np.ndarray]], out_steps: int) -> dict[str, Any]:
    """Per forecast: MAE and MSE at the steps of `interval_steps` and their means over all
    steps (the criteria are computed on every step before this)."""
    steps = np.asarray(interval_steps(out_steps)) - 1
    return {
        name: {
            **{m: v[steps].tolist() for m, v in table.items()},
            **{f"{m}_mean": float(np.mean(v)) for m, v in table.items()},
        }
        for name, table in scores.items()
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """Per run: the guard's choice and the test scores at the steps of `interval_steps`, the mean
    over all steps, and the two criteria."""
    lines = []
    for row in rows:
        test, n = row["test"], row["out_steps"]
        names = ["model", *GUARDED, "last_value", "historical_average"]
        if "seasonal_naive" in test:
            names.append("seasonal_naive")
        lines += [
            f"**{row['name']}** ({row['data']}, input {row['in_steps']}, horizon {n}; best epoch "
            f"{row['best_epoch']}, {row['steps']} steps; {row['test_windows']} test windows). "
            "Test MSE / MAE per horizon step; served: the guard's choice by MAE / by RMSE "
            "(validation).",
            "",
            "| step | served | " + " | ".join(name.replace("_", " ") for name in names) + " |",
            "|---|---|" + "---|" * len(names),
        ]
        for i, h in enumerate(row["table_steps"]):
            served = " / ".join(served_at(row["served"][m], h) for m in METRICS)
            cells = [f"{test[k]['mse'][i]:.4f} / {test[k]['mae'][i]:.4f}" for k in names]
            lines.append(f"| {h} | {served} | " + " | ".join(cells) + " |")
        cells = [f"{test[k]['mse_mean']:.4f} / {test[k]['mae_mean']:.4f}" for k in names]
        counts = " / ".join(
            f"{sum(b - a + 1 for name, a, b in row['served'][m] if name != 'model')} baseline"
            for m in METRICS
        )
        lines.append(f"| mean 1-{n} | {counts} | " + " | ".join(cells) + " |")
        if row.get("evidence"):
            worst = max(p for table in row["evidence"].values() for p in table.values())
            lines += [
                "",
                "Validation "
                + ("shows" if row["shown_better"] else "does not show")
                + " the model better than every baseline over the horizon in MAE and RMSE "
                f"(one-sided block t-test, largest p-value {worst:.2g}, level 0.05).",
            ]
        ratio = row["guarded_over_last_value_mse_max"]
        lost = row["lost_to_historical_average_on_val"]
        lines += [
            "",
            "Guarded test MSE over the last value's, worst step: "
            + ", ".join(f"{g.replace('_', ' ')} {ratio[g]:.4f}" for g in GUARDED)
            + f" (within 2 %: {', '.join(str(v) for v in row['last_value_2pct'].values())}). "
            "Steps where the served forecast lost to the historical average on validation: "
            + ", ".join(f"{g.replace('_', ' ')} {len(lost[g])}" for g in GUARDED)
            + f". Largest difference from the run's own tables: "
            f"{row['agreement_with_run_tables']:.1e} (relative).",
            "",
        ]
    return "\n".join(lines)


def _rounded(value: Any) -> Any:
    """``value`` with every float to 6 significant digits (the per-step tables stay small)."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def dumps(record: dict[str, Any]) -> str:
    """The results file: one line per run (floats to 6 significant digits)."""
    head = {k: v for k, v in record.items() if k != "runs"}
    runs = ",\n  ".join(json.dumps(_rounded(row)) for row in record["runs"])
    return json.dumps(head, indent=1)[:-2] + f',\n "runs": [\n  {runs}\n ]\n}}\n'


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=WORKDIR")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--batch", type=int, default=256, help="windows per forecast call")
    parser.add_argument(
        "--refit-guard",
        action="store_true",
        help="first add the validation evidence to each run's guard (runs finished before it)",
    )
    args = parser.parse_args(argv)
    runs = []
    for item in args.run:
        name, sep, folder = item.partition("=")
        if not sep or not (Path(folder) / "results.json").is_file():
            parser.error(f"--run {item!r}: expected NAME=WORKDIR of a finished run")
        runs.append((name, Path(folder)))
    if args.refit_guard:
        for _, folder in runs:
            refit_guard(folder, batch=args.batch)
    rows = [measure(name, folder, batch=args.batch) for name, folder in runs]
    command = " ".join(["python -m experiments.guard_check", *(argv or sys.argv[1:])])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": describe(machine_info()), "command": command, "runs": rows}
    args.out.write_text(dumps(record))
    print(markdown(rows))


if __name__ == "__main__":
    main()
