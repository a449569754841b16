"""Describe the data sets: what is present, its size, splits, missing values and scaler statistics.

    python -m experiments.data --dataset los_loop --describe
    python -m experiments.data --dataset los_loop --baselines    # last value / historical average
    python -m experiments.data --dataset los_loop --loader-timing  # grain reader threads vs none
    python -m experiments.data --dataset all --describe [--data-dir DIR] [--in-steps 24]
    python -m experiments.data --dataset generic --path mine.npz --step-minutes 5 \\
        --start-time 2024-01-01T00:00 [--null-value 0] [--transpose] --describe   # your own file
    python -m experiments.data --dataset pems08 --build-tfds ~/tensorflow_datasets  # ArrayRecord
    python -m experiments.data --write-synthetic-counts counts.csv  # hourly counts as a user's csv
    python -m experiments.data --dataset pems08 --data-dir ~/data --url URL [--graph-url URL]

Windows are counted with the look-back and horizon of the recipe training picks for the data
(`eala_jax.train.recipes.pick_recipe`, what `data.recipe="auto"` uses; named in the output) unless
--in-steps / --out-steps are given.

A set whose files are absent is reported as absent, with where to put them (see docs/data.md).
Exit status 1 if a file named with --path / --graph-path does not exist, a present set fails to
load (corrupt file, checksum or shape mismatch, a file whose orientation is ambiguous, no valid
value, an array without --step-minutes / --start-time) or a download fails.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eala_jax.data import (
    DATASETS,
    KNOWN_NAMES,
    MissingOptionsError,
    SpatioTemporalSeries,
    load_dataset,
    make_forecast_splits,
    make_loader,
)
from eala_jax.data.registry import ENV_DATA_DIR, resolve_data_dir
from eala_jax.data.series import Split
from eala_jax.data.synthetic import make_synthetic_counts, write_series_csv
from eala_jax.data.windows import split_boundaries
from eala_jax.models.baselines import evaluate_baselines
from eala_jax.train.recipes import pick_recipe

ALL = ("synthetic", *DATASETS)
# Command-line option -> load_dataset keyword, for a user's own file (--dataset generic); the
# first four also apply to the file-based sets.
FILE_OPTIONS = {
    "path": "path",
    "graph_path": "graph_path",
    "null_value": "null_value",
    "channel": "channel",
    "step_minutes": "step_minutes",
    "start_time": "start_time",
    "npz_key": "npz_key",
    "h5_key": "h5_key",
    "time_column": "time_column",
    "csv_header": "csv_header",
    "transpose": "transpose",
    "series_name": "series_name",
}
NAMED_SET_OPTIONS = ("path", "graph_path", "null_value", "channel")


def window_lengths(
    series: SpatioTemporalSeries,
    *,
    in_steps: int | None = None,
    out_steps: int | None = None,
    split: Split | None = None,
) -> tuple[int, int, str]:
    """(in_steps, out_steps, where they come from): those given, else those of the recipe that
    training with ``data.recipe="auto"`` picks for ``series`` (``pick_recipe`` on the training
    steps of ``split``, default the set's)."""
    fractions = series.default_split if split is None else split
    recipe, why = pick_recipe(series, split_boundaries(series.num_steps, fractions)[0])
    if in_steps is None and out_steps is None:
        return (
            recipe.in_steps,
            recipe.out_steps,
            f"recipe {recipe.name}, which training picks: {why}",
        )
    return (
        recipe.in_steps if in_steps is None else in_steps,
        recipe.out_steps if out_steps is None else out_steps,
        f"--in-steps / --out-steps; the recipe training picks, {recipe.name}, has "
        f"{recipe.in_steps} in / {recipe.out_steps} out",
    )


def describe(
    series: SpatioTemporalSeries,
    *,
    in_steps: int,
    out_steps: int,
    split: Split | None = None,
    windows_from: str = "",
) -> str:
    """Multi-line description: nodes, steps, calendar, graph, what is missing and why, split
    windows (``windows_from``: where ``in_steps`` / ``out_steps`` come from, shown beside them),
    sensors without a valid target in a split, scaler."""
    end = series.start_time + np.timedelta64(series.step_minutes * (series.num_steps - 1), "m")
    lines = [
        f"{series.name}",
        f"  nodes {series.num_nodes}, steps {series.num_steps} ({series.step_minutes} min, "
        f"{series.steps_per_day} a day), {series.start_time} .. {end}",
    ]
    if series.adjacency is None:
        lines.append("  graph: none")
    else:
        lines.append(
            f"  graph: {series.adjacency.shape[0]} x {series.adjacency.shape[1]}, "
            f"{int(np.count_nonzero(series.adjacency))} non-zero entries"
        )
    lines.append(f"  missing: {series.missing_summary()}")
    try:
        splits = make_forecast_splits(series, in_steps=in_steps, out_steps=out_steps, split=split)
    except ValueError as err:
        lines.append(f"  splits: not possible ({err})")
        return "\n".join(lines)
    b1, b2, end_step = splits.boundaries
    fractions = series.default_split if split is None else split
    ratio = ":".join(f"{10 * f:g}" for f in fractions)
    lines.append(
        f"  split {ratio} (steps [0, {b1}) / [{b1}, {b2}) / [{b2}, {end_step})), {in_steps} in / "
        f"{out_steps} out{f' ({windows_from})' if windows_from else ''}: windows train "
        f"{len(splits.train)}, val {len(splits.val)}, test {len(splits.test)}"
    )
    dead = []
    for name in ("train", "val", "test"):
        nodes = splits[name].nodes_without_target()
        if len(nodes):
            dead.append(f"{name} {len(nodes)} ({series.describe_nodes(nodes, limit=5)})")
    if dead:
        lines.append(f"  sensors with no valid target in a split: {'; '.join(dead)}")
    lines.append(
        f"  scaler (training steps only): mean {splits.scaler.mean:.4f}, std "
        f"{splits.scaler.std:.4f}"
    )
    lines.append(f"  source: {series.source}")
    return "\n".join(lines)


def baselines(
    series: SpatioTemporalSeries, *, in_steps: int, out_steps: int, split: Split | None = None
) -> str:
    """Lines of last-value, historical-average and seasonal-naive metrics (data units) on the val
    and test windows, as ``evaluate_baselines`` computes them (historical average fitted on
    training, seasonal period picked on validation)."""
    splits = make_forecast_splits(series, in_steps=in_steps, out_steps=out_steps, split=split)
    lines = [f"  baselines ({in_steps} in / {out_steps} out; mean over horizons):"]
    for split_name in ("val", "test"):
        results = evaluate_baselines(splits, split_name, scaler=splits.scaler)
        for name, r in results.items():
            period = f"  (period: {r['period']})" if "period" in r else ""
            lines.append(
                f"    {split_name:4s} {name:18s} MAE {r['mae_mean']:.6f}  RMSE "
                f"{r['rmse_mean']:.6f}  MAPE {r['mape_mean']:.6f} %{period}"
            )
    return "\n".join(lines)


def loader_timing(
    series: SpatioTemporalSeries,
    *,
    in_steps: int,
    out_steps: int,
    batch_size: int = 16,
    num_batches: int = 200,
) -> str:
    """Milliseconds per shuffled training batch from ``make_loader``, reading in the calling
    thread (``read_threads=0``, the default) and with grain's default 16 reader threads."""
    import time

    splits = make_forecast_splits(series, in_steps=in_steps, out_steps=out_steps)
    parts = []
    for threads in (0, 16):
        iterator = iter(
            make_loader(
                splits.train,
                batch_size=batch_size,
                shuffle=True,
                seed=0,
                num_epochs=None,
                read_threads=threads,
            )
        )
        next(iterator)  # start-up (thread pool, first fill) is not counted
        start = time.perf_counter()
        for _ in range(num_batches):
            next(iterator)
        ms = 1e3 * (time.perf_counter() - start) / num_batches
        parts.append(f"read_threads={threads}: {ms:.1f} ms")
    return f"  loader, shuffled training batches of {batch_size}: " + ", ".join(parts)


def _null_value(text: str) -> float | None:
    if text.strip().lower() in ("none", "null"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number (the value that marks a missing reading) or none, got {text!r}"
        ) from None


def _split(text: str) -> Split:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three fractions like 0.7,0.1,0.2, got {text!r}")
    return parts  # type: ignore[return-value]


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The parsed arguments and the ``load_dataset`` options they give."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.data",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dataset",
        default="all",
        help=f"one of {', '.join(KNOWN_NAMES)} (your own file, with --path), or all",
    )
    parser.add_argument(
        "--describe", action="store_true", help="print nodes, steps, splits, missing, scaler"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"folder with one folder per set (default ${ENV_DATA_DIR} or ../shared/data)",
    )
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="print last-value and historical-average metrics on the val and test windows",
    )
    parser.add_argument(
        "--loader-timing",
        action="store_true",
        help="time make_loader's training batches with and without grain reader threads",
    )
    parser.add_argument(
        "--write-synthetic-counts",
        metavar="CSV",
        default=None,
        help="write the synthetic hourly counts (200 stops, 6 weeks, ~80 %% zeros) as a csv with "
        "a time column, the file a user would bring to the generic path, and exit",
    )
    parser.add_argument(
        "--in-steps",
        type=int,
        default=None,
        help="look-back of a window (default: the recipe training picks for the data)",
    )
    parser.add_argument(
        "--out-steps",
        type=int,
        default=None,
        help="horizon of a window (default: the recipe training picks for the data)",
    )
    parser.add_argument(
        "--split", type=_split, default=None, help="train,val,test fractions (default: the set's)"
    )
    parser.add_argument(
        "--url",
        default=None,
        help="download the set's signal file from URL if it is absent "
        "(one --dataset; an existing file is never overwritten)",
    )
    parser.add_argument("--graph-url", default=None, help="likewise for its graph file")
    parser.add_argument(
        "--build-tfds", metavar="TFDS_DIR", default=None, help="also prepare tfds copies there"
    )
    own = parser.add_argument_group(
        "a single file (--dataset generic; --path, --graph-path, --null-value and --channel also "
        "apply to the file-based sets)"
    )
    own.add_argument("--path", default=None, help="the signal file: .npz, .npy, .csv[.gz], .h5")
    own.add_argument("--graph-path", default=None, help="its graph file (optional)")
    own.add_argument(
        "--null-value",
        type=_null_value,
        default=argparse.SUPPRESS,
        metavar="NUMBER|none",
        help="value that marks a missing reading (generic default: none, only NaN is missing; "
        "traffic sets: 0)",
    )
    own.add_argument("--channel", type=int, default=None, help="channel of a (T, N, C) array")
    own.add_argument("--step-minutes", type=int, default=None, help="step length in minutes")
    own.add_argument("--start-time", default=None, help="time of step 0, e.g. 2024-01-01T00:00")
    own.add_argument("--npz-key", default=None, help="array name in an .npz (default data)")
    own.add_argument("--h5-key", default=None, help="key of the frame in an .h5")
    own.add_argument("--time-column", default=None, help="csv column holding the timestamps")
    own.add_argument(
        "--no-header",
        dest="csv_header",
        action="store_false",
        default=None,
        help="the csv has no header row",
    )
    own.add_argument(
        "--transpose",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--transpose: the file holds one row per sensor, (N, T); --no-transpose: it is "
        "(T, N) even with more sensors than steps (default: refuse an ambiguous file)",
    )
    own.add_argument("--series-name", default=None, help="name of the series (default generic)")
    args = parser.parse_args(argv)
    if args.dataset != "all" and args.dataset not in KNOWN_NAMES:
        parser.error(f"unknown --dataset {args.dataset!r}; known: {', '.join(KNOWN_NAMES)}, all")
    if (args.url or args.graph_url) and args.dataset not in (*DATASETS, "generic"):
        parser.error("--url / --graph-url need one file-based --dataset (not all or synthetic)")
    given = vars(args)  # --null-value is absent unless given (None is a value: "none")
    options = {
        keyword: given[option]
        for option, keyword in FILE_OPTIONS.items()
        if option in given and (option == "null_value" or given[option] is not None)
    }
    if args.dataset == "generic" and args.path is None and args.url is None:
        parser.error("--dataset generic needs --path FILE (the file to describe)")
    if args.dataset == "all" and options:
        parser.error(f"--{next(iter(options)).replace('_', '-')} needs one --dataset")
    if args.dataset in (*DATASETS, "synthetic"):
        allowed = NAMED_SET_OPTIONS if args.dataset in DATASETS else ("null_value",)
        extra = sorted(set(options) - set(allowed))
        if extra:
            parser.error(
                f"--{extra[0].replace('_', '-')} applies to --dataset generic (a file of your own);"
                f" {args.dataset} takes {', '.join('--' + o.replace('_', '-') for o in allowed)}"
            )
    for key, value in (("url", args.url), ("graph_url", args.graph_url)):
        if value:
            options[key] = value
    return args, options


def _flag(keyword: str) -> str:
    """The command-line flag of a ``load_dataset`` keyword: step_minutes -> --step-minutes."""
    return "--" + keyword.replace("_", "-")


def _absent_named_file(args: argparse.Namespace) -> str | None:
    """Which file named with --path / --graph-path does not exist (and will not be downloaded by
    --url / --graph-url), or None."""
    for flag, path, url in (
        ("--path", args.path, args.url),
        ("--graph-path", args.graph_path, args.graph_url),
    ):
        if path is not None and url is None and not Path(path).exists():
            return f"{flag} {path}: no such file"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args, options = parse_args(argv)
    if args.write_synthetic_counts:
        series = make_synthetic_counts()
        write_series_csv(series, args.write_synthetic_counts)
        print(f"wrote {args.write_synthetic_counts}: {series.source}; {series.missing_summary()}")
        return 0
    names = ALL if args.dataset == "all" else (args.dataset,)
    root = resolve_data_dir(args.data_dir)
    print(
        "data directory: "
        f"{root if root is not None else f'none (set --data-dir or ${ENV_DATA_DIR})'}"
    )
    failed = False
    for name in names:
        absent = _absent_named_file(args)
        if absent:  # a file the user named: an error, not a set that is simply not there
            print(f"{name}: ERROR {absent}")
            failed = True
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                series = load_dataset(name, data_dir=args.data_dir, **options)
        except FileNotFoundError as err:
            print(f"{name}: absent. {str(err).removeprefix(f'{name}: ')} (see docs/data.md)")
            continue
        except MissingOptionsError as err:  # in the flags' spelling, not load_dataset's keywords
            flags = " and ".join(_flag(k) for k in err.options)
            example = " ".join(f"{_flag(k)} {v}" for k, v in err.options.items())
            print(f"{name}: ERROR {err.path} {err.why}: give {flags} (e.g. {example})")
            failed = True
            continue
        except (ValueError, OSError) as err:  # DataFileError: a file present but wrong
            print(f"{name}: ERROR {err}")
            failed = True
            continue
        for warning in caught:
            print(f"{name}: WARNING {warning.message}")
        in_steps, out_steps, windows_from = window_lengths(
            series, in_steps=args.in_steps, out_steps=args.out_steps, split=args.split
        )
        print(
            describe(
                series,
                in_steps=in_steps,
                out_steps=out_steps,
                split=args.split,
                windows_from=windows_from,
            )
            if args.describe
            else f"{name}: present, {series.num_steps} x {series.num_nodes}"
        )
        if args.baselines:
            try:
                print(baselines(series, in_steps=in_steps, out_steps=out_steps, split=args.split))
            except ValueError as err:  # no window in a split: --describe says why
                print(f"  baselines: not possible ({err})")
        if args.loader_timing:
            print(loader_timing(series, in_steps=in_steps, out_steps=out_steps))
        if args.build_tfds:
            from eala_jax.data.tfds_builders import build_tfds

            print(
                f"  tfds copy: {build_tfds(name, tfds_dir=args.build_tfds, data_dir=args.data_dir)}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
