"""Test coverage of the split-conformal intervals of trained runs (docs/forecast.md).

    python -m experiments.coverage --run los_loop=runs/ref/los_loop_elinformer_seed0 \
        --run sz_taxi=runs/ref/sz_taxi_elinformer_seed0 --run etth1_h96=runs/ref/etth1_h96 \
        --run synthetic=runs/synthetic

For each run: its intervals (stored when the run finished, or fitted on the validation split on
first load), the forecaster's rolling forecasts over the test windows, and per level the share of
valid test targets inside (mean over all, lowest and highest horizon step) and the mean width,
beside the validation and test MAE (a test MAE well above the validation one is a shift the
intervals cannot know of). Writes `experiments/results/coverage.json` and prints the markdown
table of docs/results.md ("Prediction intervals").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from eala_jax.bench.machine import describe, machine_info
from eala_jax.forecast import Forecaster
from eala_jax.train.intervals import coverage
from eala_jax.train.runinfo import recompute_run_info

OUT = Path("experiments/results/coverage.json")


def measure(name: str, workdir: Path) -> dict:
    """Coverage of `workdir`'s intervals on its test windows."""
    forecaster = Forecaster.load(workdir, warn=False)
    _, prepared = recompute_run_info(workdir)
    test = prepared.splits.test
    backtest = forecaster.backtest(
        prepared.series, test.first_target, test.first_target + len(test)
    )
    results = json.loads((workdir / "results.json").read_text())
    return {
        "name": name,
        "workdir": str(workdir),
        "data": results["data"],
        "out_steps": forecaster.out_steps,
        "test_windows": len(test),
        "val_mae": results["val"]["model"]["mae_mean"],
        "test_mae": results["test"]["model"]["mae_mean"],
        "coverage": coverage(forecaster.intervals, backtest.pred, backtest.target, backtest.mask),
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| run | level | test coverage (all steps) | lowest / highest step | mean width | "
        "val / test MAE |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for level, c in row["coverage"].items():
            steps = np.asarray(c["coverage"])
            lines.append(
                f"| {row['name']} (h{row['out_steps']}) | {level} % | "
                f"{100 * c['coverage_mean']:.1f} % | {100 * steps.min():.1f} / "
                f"{100 * steps.max():.1f} % | {c['mean_width_mean']:.3f} | "
                f"{row['val_mae']:.3f} / {row['test_mae']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=WORKDIR")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    runs = []
    for item in args.run:
        name, sep, folder = item.partition("=")
        if not sep or not Path(folder).is_dir():
            parser.error(f"--run {item!r}: expected NAME=WORKDIR with an existing workdir")
        runs.append((name, Path(folder)))
    rows = [measure(name, folder) for name, folder in runs]
    args.out.write_text(
        json.dumps({"machine": describe(machine_info()), "runs": rows}, indent=1) + "\n"
    )
    print(markdown(rows))


if __name__ == "__main__":
    main()
