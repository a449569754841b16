"""Reading a data set by name (``read_dataset``): a known set from its files (`catalogue`), your
own file (`generic`) or the synthetic set; ``load_dataset`` (in ``eala_jax.data.load``) is the
front door that also offers the tfds copy. A missing file raises ``FileNotFoundError`` naming the
file and the option to set; there is no fallback to other data. With ``url=`` (and
``graph_url=``) a missing file is first downloaded to where it would be read from.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eala_jax.data.catalogue import (
    DATASETS,
    ENV_DATA_DIR,
    ETT_STEPS,
    KNOWN_NAMES,
    SPECIAL_DATASETS,
    DatasetSpec,
    benchmark_split_fractions,
    default_data_dir,
    download_target,
    locate_signal,
    resolve_data_dir,
)
from eala_jax.data.download import fetch_file
from eala_jax.data.generic import load_generic, read_given_graph
from eala_jax.data.readers import (
    DataFileError,
    FileSpec,
    read_signal,
    regular_step_minutes,
    verify_file,
)
from eala_jax.data.series import (
    MINUTES_PER_DAY,
    SpatioTemporalSeries,
    check_null_value,
    mark_missing,
)
from eala_jax.data.synthetic import make_synthetic_series
from eala_jax.data.windows import split_boundaries

__all__ = [  # the catalogue's names stay importable from here
    "DATASETS",
    "ENV_DATA_DIR",
    "ETT_STEPS",
    "KNOWN_NAMES",
    "SPECIAL_DATASETS",
    "DatasetSpec",
    "benchmark_split_fractions",
    "default_data_dir",
    "download_target",
    "load_generic",
    "locate_signal",
    "read_dataset",
    "resolve_data_dir",
]


def _read_checked_signal(
    spec: DatasetSpec, signal_path: Path, *, channel: int, check_shape: bool
) -> tuple[np.ndarray, np.datetime64, int, list[str] | None]:
    """``(raw [T, N], start_time, step_minutes, columns)``, checking the published shape and the
    step."""
    raw, index, columns = read_signal(
        signal_path, channel=channel, csv_header=spec.csv_header, time_column=spec.time_column
    )
    if check_shape and spec.shape is not None and raw.shape != spec.shape:
        raise DataFileError(
            f"{signal_path}: signal of shape {raw.shape}, but {spec.name} has (T, N) = "
            f"{spec.shape} (a different file? pass check_shape=False to load a variant)"
        )
    if index is not None:
        start_time, step_minutes = regular_step_minutes(index, signal_path)
        if step_minutes != spec.step_minutes:
            raise DataFileError(
                f"{signal_path}: step of {step_minutes} min, but {spec.name} has "
                f"{spec.step_minutes}"
            )
    else:
        assert spec.start_time is not None, spec.name
        start_time, step_minutes = np.datetime64(spec.start_time, "m"), spec.step_minutes
    return raw, start_time, step_minutes, columns


def _load_spec(
    spec: DatasetSpec,
    data_dir: str | os.PathLike[str] | None,
    *,
    path: str | os.PathLike[str] | None = None,
    graph_path: str | os.PathLike[str] | None = None,
    null_value: float | None | str = "default",
    channel: int = 0,
    verify: bool = True,
    sha256: str | None = None,
    check_shape: bool = True,
    graph_weight: str = "binary",
    url: str | None = None,
    graph_url: str | None = None,
    per_node_zscore: bool = False,
) -> SpatioTemporalSeries:
    if not isinstance(per_node_zscore, bool):
        raise ValueError(f"per_node_zscore must be True or False, got {per_node_zscore!r}")
    if not verify:
        check = FileSpec(spec.signal.filename)
    elif (
        path is not None
    ):  # a file given directly may be another release: only a sha256= given is checked
        check = FileSpec(spec.signal.filename, sha256=sha256)
    else:
        check = dataclasses.replace(spec.signal, sha256=sha256 or spec.signal.sha256)
    checked: list[tuple[np.ndarray, np.datetime64, int, list[str] | None]] = []
    if url is not None:
        signal_path = Path(path) if path is not None else download_target(spec, data_dir)

        def accept(tmp: Path) -> None:
            checked.append(
                _read_checked_signal(spec, tmp, channel=channel, check_shape=check_shape)
            )

        if not fetch_file(url, signal_path, check, accept=accept):
            checked.clear()  # the file was there already: it is read below, not the download
    else:
        signal_path = Path(path) if path is not None else locate_signal(spec, data_dir)
    if (
        not checked
    ):  # not just downloaded (and checked while downloading): check and read the file as usual
        verify_file(signal_path, check, option="path= (or data_dir=)")
        checked.append(
            _read_checked_signal(spec, signal_path, channel=channel, check_shape=check_shape)
        )
    raw, start_time, step_minutes, columns = checked[0]
    num_nodes = raw.shape[1]
    node_ids = columns
    folder = signal_path.parent
    if spec.node_ids_file and (folder / spec.node_ids_file).is_file():
        node_ids = (folder / spec.node_ids_file).read_text().split()
    adjacency, graph_source = None, "none"
    if graph_path is None and graph_url is not None:
        if not spec.graphs:
            raise ValueError(
                f"{spec.name} has no graph file of its own: with graph_url= also give graph_path="
            )
        # The first candidate present, else the set's first graph name, is where it goes.
        graph_check = next(
            (g for g in spec.graphs if (folder / g.filename).is_file()), spec.graphs[0]
        )
        graph_path, given = folder / graph_check.filename, graph_check if verify else None
    elif graph_path is None:
        graph_path, given = None, None
        for candidate in spec.graphs:  # the set's own graph, the first that exists
            if (folder / candidate.filename).is_file():
                graph_path = (folder / candidate.filename).resolve()
                given = candidate if verify else None
                break
    else:
        given = None  # a graph file given directly: its name only
    if graph_path is not None:
        adjacency = read_given_graph(
            graph_path, graph_url, num_nodes, weight=graph_weight, node_ids=node_ids, check=given
        )
        graph_source = str(graph_path)
    if isinstance(null_value, str) and null_value == "default":
        null = spec.null_value
        reason = (
            f"null_value=0.0, the published convention of {spec.name}, where 0 marks a missing "
            "reading; null_value=None keeps zeros"
            if null == 0.0
            else f"{spec.name} has no missing-value code"
        )
    else:
        null = check_null_value(null_value)
        reason = f"null_value={null_value!r} set by the caller"
    values, missing = mark_missing(raw, null, reason=reason)
    scaling = ""
    if per_node_zscore:
        values, scaling = _zscore_nodes(values, spec)
    return SpatioTemporalSeries(
        name=spec.name,
        values=values,
        missing=missing,
        steps_per_day=MINUTES_PER_DAY // step_minutes,
        start_time=start_time,
        step_minutes=step_minutes,
        adjacency=adjacency,
        default_split=spec.default_split,
        node_ids=tuple(node_ids) if node_ids is not None and len(node_ids) == num_nodes else None,
        source=f"signal {signal_path}; graph {graph_source}; null_value {null}{scaling}",
    )


def _zscore_nodes(values: np.ndarray, spec: DatasetSpec) -> tuple[np.ndarray, str]:
    """`values [T, N]` z-scored per node with the mean and std (ddof 0, NaN skipped) of the steps
    of `spec.default_split`'s training part, as the long-horizon benchmarks do (sklearn's
    StandardScaler per variable): metrics in these units are their z-scored MSE / MAE. O(T·N)."""
    b1 = split_boundaries(values.shape[0], spec.default_split)[0]
    train = values[:b1].astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a node with no training value: NaN
        mean, std = np.nanmean(train, axis=0), np.nanstd(train, axis=0)
    bad = ~(np.isfinite(std) & (std > 0))
    if bad.any():
        raise ValueError(
            f"{spec.name}: per_node_zscore needs every node to vary over the training steps [0, "
            f"{b1}); nodes {np.flatnonzero(bad).tolist()} do not"
        )
    scaled = ((values - mean) / std).astype(np.float32)
    return scaled, f"; z-scored per node with the statistics of steps [0, {b1})"


def read_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    **options: Any,
) -> SpatioTemporalSeries:
    """Reads data set ``name`` from its files (or generates ``"synthetic"``), without tfds.

    What ``load_dataset`` does without ``via_tfds`` (and what the tfds builder reads its source
    with), minus the ``MissingDataWarning``; same arguments, same errors. See ``load_dataset``.
    """
    if name not in KNOWN_NAMES:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(KNOWN_NAMES)}")
    if url is not None:
        options["url"] = url
    loader: Callable[..., SpatioTemporalSeries]
    if name == "synthetic":
        loader = make_synthetic_series
    elif name == "generic":
        loader = load_generic
    else:
        spec = DATASETS[name]

        loader = functools.partial(_load_spec, spec, data_dir)

    _check_options(name, loader, options)
    return loader(**options)


def _check_options(name: str, loader: Callable[..., Any], options: dict[str, Any]) -> None:
    """ValueError naming the option unless `options` fit `loader`'s keywords (checked against its
    signature before anything is read, not by catching what the call raises)."""
    parameters = inspect.signature(loader).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(options) - set(parameters))
        if unknown:
            raise ValueError(
                f"load_dataset({name!r}): unknown option(s) {', '.join(unknown)}; it takes "
                f"{', '.join(sorted(k for k in parameters if k not in ('spec', 'data_dir')))}"
            )
    required = [
        k
        for k, p in parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind is inspect.Parameter.KEYWORD_ONLY
        and k not in options
    ]
    if required:
        raise ValueError(
            f"load_dataset({name!r}): missing required option(s) {', '.join(required)}"
        )
