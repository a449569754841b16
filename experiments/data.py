"""Describe the data sets: what is present, its size, splits, missing values and scaler statistics.

    python -m experiments.data --dataset los_loop --describe
    python -m experiments.data --dataset all --describe [--data-dir DIR] [--in-steps 12 --out-steps
    12] python -m experiments.data --dataset pems08 --build-tfds ~/tensorflow_datasets   #
    ArrayRecord copy python -m experiments.data --dataset pems08 --data-dir ~/data --url URL
    [--graph-url URL]  # fetch if absent

A set whose files are absent is reported as absent, with where to put them (see docs/data.md).
Exit status 1 if a present set fails to load (corrupt file, checksum or shape mismatch) or a
download fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from eala_jax.data import (
    DATASETS,
    KNOWN_NAMES,
    SpatioTemporalSeries,
    load_dataset,
    make_forecast_splits,
)
from eala_jax.data.registry import ENV_DATA_DIR, resolve_data_dir

ALL = ("synthetic", *DATASETS)


def describe(series: SpatioTemporalSeries, *, in_steps: int, out_steps: int) -> str:
    """Multi-line description: nodes, steps, calendar, graph, missing fraction, split windows,
    scaler."""
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
    lines.append(f"  missing: {100 * series.missing_fraction:.2f} % of values")
    try:
        splits = make_forecast_splits(series, in_steps=in_steps, out_steps=out_steps)
    except ValueError as err:
        lines.append(f"  splits: not possible ({err})")
        return "\n".join(lines)
    b1, b2, end_step = splits.boundaries
    ratio = ":".join(f"{10 * f:g}" for f in series.default_split)
    lines.append(
        f"  split {ratio} (steps [0, {b1}) / [{b1}, {b2}) / [{b2}, {end_step})), {in_steps} in / "
        f"{out_steps} out: windows train {len(splits.train)}, val {len(splits.val)}, test "
        f"{len(splits.test)}"
    )
    lines.append(
        f"  scaler (training steps only): mean {splits.scaler.mean:.4f}, std "
        f"{splits.scaler.std:.4f}"
    )
    lines.append(f"  source: {series.source}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.data", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--dataset", default="all", help=f"one of {', '.join(KNOWN_NAMES[:-1])}, or all"
    )
    parser.add_argument(
        "--describe", action="store_true", help="print nodes, steps, splits, missing, scaler"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"folder with one folder per set (default ${ENV_DATA_DIR} or ../shared/data)",
    )
    parser.add_argument("--in-steps", type=int, default=12)
    parser.add_argument("--out-steps", type=int, default=12)
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
    args = parser.parse_args(argv)
    if args.dataset != "all" and args.dataset not in ALL:
        parser.error(f"unknown --dataset {args.dataset!r}; known: {', '.join(ALL)}, all")
    if (args.url or args.graph_url) and args.dataset not in DATASETS:
        parser.error("--url / --graph-url need one file-based --dataset (not all or synthetic)")
    names = ALL if args.dataset == "all" else (args.dataset,)
    fetch = {
        key: value for key, value in (("url", args.url), ("graph_url", args.graph_url)) if value
    }
    root = resolve_data_dir(args.data_dir)
    print(
        "data directory: "
        f"{root if root is not None else f'none (set --data-dir or ${ENV_DATA_DIR})'}"
    )
    failed = False
    for name in names:
        try:
            series = load_dataset(name, data_dir=args.data_dir, **fetch)
        except FileNotFoundError as err:
            print(f"{name}: absent. {str(err).removeprefix(f'{name}: ')} (see docs/data.md)")
            continue
        except (
            ValueError,
            OSError,
        ) as err:  # DataFileError: a file present but wrong; DownloadError
            print(f"{name}: ERROR {err}")
            failed = True
            continue
        print(
            describe(series, in_steps=args.in_steps, out_steps=args.out_steps)
            if args.describe
            else f"{name}: present, {series.num_steps} x {series.num_nodes}"
        )
        if args.build_tfds:
            from eala_jax.data.tfds_builders import build_tfds

            print(
                f"  tfds copy: {build_tfds(name, tfds_dir=args.build_tfds, data_dir=args.data_dir)}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
