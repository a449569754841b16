"""Forecast with a trained run: the next `out_steps` after the end of the data (or at `--at`), with
split-conformal intervals, as a tidy CSV and a plot; or export the run for serving.

    python -m experiments.forecast --workdir runs/synthetic --out forecast.csv --plot forecast.png
    python -m experiments.forecast --workdir runs/mine --out f.csv --data new.csv --time-column time
    python -m experiments.forecast --workdir runs/mine --out f.csv --at 2024-03-01T08:00 --fallback
    python -m experiments.forecast --workdir runs/synthetic --export model.bin  # + model.json

The CSV has one row per (time, node, horizon step): `time` (ISO minute of the forecast step),
`node` (node id), `horizon` (1 = the first step after the history), `forecast` (data units),
`lower_<L>` / `upper_<L>` per level L in percent (split conformal, e.g. `lower_80`, `upper_95`;
empty where a baseline is served), and `served` (`model`, or the baseline that `--fallback` served
at that step). Without `--data`, the data the run was trained on is read again (from the options in
its config). Nothing is written when an input does not fit the run, and an existing output file is
not replaced without `--force`. See docs/forecast.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Command-line option -> load_generic keyword for --data.
DATA_OPTIONS = (
    "step_minutes",
    "start_time",
    "time_column",
    "null_value",
    "transpose",
    "npz_key",
    "h5_key",
    "channel",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.forecast",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workdir", required=True, help="a finished experiments.train workdir")
    parser.add_argument("--out", help="the forecast as a csv (see the columns above)")
    parser.add_argument("--plot", help="a png of the recent history, forecast and intervals")
    parser.add_argument(
        "--nodes", nargs="+", help="node ids to plot (default: the first three)", default=None
    )
    parser.add_argument("--export", help="write a jax.export artefact here, and <name>.json")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.add_argument(
        "--at",
        help="time of the first forecast step (default: the step after the data's last); the "
        "history is the steps before it",
    )
    parser.add_argument(
        "--levels", nargs="+", type=float, default=None, help="interval levels (default 0.8 0.95)"
    )
    parser.add_argument(
        "--fallback",
        action="store_true",
        help="serve the baseline that beat the model on validation, at each step where one did",
    )
    parser.add_argument("--fallback-metric", choices=("mae", "rmse"), default="mae")
    group = parser.add_argument_group("your own file (as experiments.data --dataset generic)")
    group.add_argument("--data", help="a (T, N) file with the run's nodes and step")
    group.add_argument("--step-minutes", type=int)
    group.add_argument("--start-time")
    group.add_argument("--time-column")
    group.add_argument("--null-value", type=float)
    group.add_argument("--transpose", action="store_true", default=None)
    group.add_argument("--npz-key")
    group.add_argument("--h5-key")
    group.add_argument("--channel", type=int)
    return parser.parse_args(argv)


def _check_outputs(args: argparse.Namespace) -> None:
    if not (args.out or args.plot or args.export):
        raise ValueError("nothing to write: give --out FILE.csv, --plot FILE.png or --export FILE")
    from eala_jax.forecast.export import sidecar_path

    paths = [p for p in (args.out, args.plot, args.export) if p]
    if args.export:
        paths.append(str(sidecar_path(args.export)))
    for path in paths:
        if Path(path).exists() and not args.force:
            raise FileExistsError(f"{path} exists; pass --force to replace it")
        if not Path(path).absolute().parent.is_dir():
            raise FileNotFoundError(f"the folder of {path} does not exist")


def load_series(args: argparse.Namespace, forecaster: Any) -> Any:
    """The series to forecast from: ``--data`` (checked against the run's nodes and step, its
    columns put in the run's order) or the run's own data set."""
    from eala_jax.data import load_dataset
    from eala_jax.forecast import ForecastInputError

    info = forecaster.info
    if args.data is None:
        d = info.config.data
        series = load_dataset(d.name, data_dir=d.data_dir, **dict(d.options))
    else:
        options = {k: getattr(args, k) for k in DATA_OPTIONS if getattr(args, k) is not None}
        series = load_dataset("generic", path=args.data, **options)
    if series.step_minutes != info.step_minutes:
        raise ForecastInputError(
            f"{args.data or info.config.data.name}: timestamps {series.step_minutes} min apart, "
            f"but the run's step is {info.step_minutes} min"
        )
    if series.node_ids is not None and info.node_ids is not None:
        have, want = list(series.node_ids), list(info.node_ids)
        if have != want:
            unknown = [c for c in have if c not in set(want)]
            missing = [c for c in want if c not in set(have)]
            if unknown or missing:
                raise ForecastInputError(
                    f"{args.data}: its columns are not the run's nodes: unknown {unknown[:8]}, "
                    f"missing {missing[:8]} (expected the {len(want)} columns {want[:8]}"
                    f"{' ...' if len(want) > 8 else ''})"
                )
            order = [have.index(c) for c in want]
            series = type(series)(
                **{**series.__dict__, "values": series.values[:, order], "node_ids": tuple(want)}
            )
    elif series.num_nodes != info.num_nodes:
        raise ForecastInputError(
            f"{args.data or info.config.data.name}: {series.num_nodes} columns, but the run "
            f"forecasts {info.num_nodes} nodes"
        )
    return series


def history_at(series: Any, forecaster: Any, at: str | None) -> tuple[np.ndarray, np.datetime64]:
    """The rows before ``at`` (the first forecast step; default after the last row) that the
    forecast reads, and the time of the first of them."""
    from eala_jax.forecast import ForecastInputError

    step = np.timedelta64(series.step_minutes, "m")
    if at is None:
        index = series.num_steps
    else:
        try:
            when = np.datetime64(at, "m")
        except ValueError:
            raise ForecastInputError(f"--at {at!r} is not a timestamp") from None
        index, rest = divmod(int((when - series.start_time).astype(np.int64)), series.step_minutes)
        if rest or not 0 <= index <= series.num_steps:
            last = series.start_time + step * series.num_steps
            raise ForecastInputError(
                f"--at {at} is not a step of the data ({series.start_time} .. {last}, every "
                f"{series.step_minutes} min)"
            )
    period = forecaster.guard.seasonal_period if forecaster.guard is not None else None
    length = min(index, max(forecaster.in_steps, period or 0))
    if index < forecaster.in_steps:
        raise ForecastInputError(
            f"--at {at}: only {index} steps of history before it; the model reads "
            f"in_steps={forecaster.in_steps}"
        )
    return series.values[index - length : index], series.start_time + step * (index - length)


def write_csv(path: str, out: Any) -> None:
    """The tidy csv (module docstring), written to a temporary file and renamed."""
    levels = sorted(out.lower)
    from eala_jax.train.intervals import level_name

    header = ["time", "node", "horizon", "forecast"]
    for level in levels:
        header += [f"lower_{level_name(level)}", f"upper_{level_name(level)}"]
    header.append("served")
    target = Path(path).absolute()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for h, when in enumerate(out.times):
                for n, node in enumerate(out.node_ids):
                    row = [str(when), node, h + 1, f"{out.forecast[h, n]:.6g}"]
                    for level in levels:
                        lo, hi = out.lower[level][h, n], out.upper[level][h, n]
                        row += [
                            "" if np.isnan(lo) else f"{lo:.6g}",
                            "" if np.isnan(hi) else f"{hi:.6g}",
                        ]
                    writer.writerow([*row, out.served[h]])
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot(path: str, history: np.ndarray, first: np.datetime64, out: Any, nodes: list[int]) -> None:
    """Recent history, forecast and intervals of ``nodes`` (indices), one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = out.times[1] - out.times[0] if len(out.times) > 1 else np.timedelta64(1, "m")
    recent = history[-3 * len(out.times) :]
    times = first + step * (len(history) - len(recent)) + step * np.arange(len(recent))
    fig, axes = plt.subplots(len(nodes), 1, figsize=(9, 2.4 * len(nodes)), squeeze=False)
    for ax, n in zip(axes[:, 0], nodes, strict=True):
        ax.plot(times, recent[:, n], color="k", lw=1, label="history")
        ax.plot(out.times, out.forecast[:, n], color="C0", lw=1.5, label="forecast")
        for level, alpha in zip(sorted(out.lower, reverse=True), (0.2, 0.35, 0.5), strict=False):
            ax.fill_between(
                out.times,
                out.lower[level][:, n],
                out.upper[level][:, n],
                color="C0",
                alpha=alpha,
                lw=0,
                label=f"{100 * level:g} % interval",
            )
        ax.set_title(f"node {out.node_ids[n]}", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from eala_jax.forecast import BaselineWarning, Forecaster, ForecastInputError, WorkdirError

    try:
        _check_outputs(args)
        if args.levels is not None:
            from eala_jax.train.intervals import check_levels

            check_levels(args.levels, "--levels")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", BaselineWarning)
            forecaster = Forecaster.load(args.workdir, levels=args.levels)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        series = out = None
        if args.out or args.plot:
            series = load_series(args, forecaster)
            history, first = history_at(series, forecaster, args.at)
            nodes = list(range(min(3, forecaster.info.num_nodes)))
            if args.nodes:
                unknown = [n for n in args.nodes if n not in forecaster.node_ids]
                if unknown:
                    raise ForecastInputError(
                        f"--nodes: unknown node ids {unknown}; the run has "
                        f"{list(forecaster.node_ids)[:8]} ..."
                    )
                nodes = [forecaster.node_ids.index(n) for n in args.nodes]
            out = forecaster.predict(
                history, start_time=first, fallback=args.fallback, metric=args.fallback_metric
            )
        if args.out:
            write_csv(args.out, out)
            print(f"wrote {args.out}: {len(out.times)} steps x {len(out.node_ids)} nodes")
        if args.plot:
            plot(args.plot, history, first, out, nodes)
            print(f"wrote {args.plot}")
        if args.export:
            from eala_jax.forecast.export import export_forecaster

            paths = export_forecaster(forecaster, args.export)
            print(f"wrote {paths[0]} and {paths[1]}")
    except (
        ForecastInputError,
        WorkdirError,
        FileExistsError,
        FileNotFoundError,
        KeyError,
        ValueError,
    ) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
