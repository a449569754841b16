"""The known data sets and how to read them (``read_dataset``); ``load_dataset`` (in
``eala_jax.data.load``) is the front door that also offers the tfds copy.

Files are looked up under a data directory: the ``data_dir`` argument, else the ``EALA_DATA_DIR``
environment variable, else ``../shared/data`` beside the repository when it exists. Each set lives
in its own folder there (``los_loop/``, ``pems08/`` or ``PEMS08/``, ``metr_la/`` or ``METR-LA/``,
...); a single file can also be given directly with ``path=`` (and ``graph_path=``). A missing file
raises ``FileNotFoundError`` naming the file and the option to set; there is no fallback to other
data. With ``url=`` (and ``graph_url=``) a missing file is first downloaded to where it would be
read from.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eala_jax.data.download import fetch_file
from eala_jax.data.readers import (
    DataFileError,
    FileSpec,
    MissingOptionsError,
    fill_time_gaps,
    read_graph,
    read_signal,
    regular_step_minutes,
    verify_file,
)
from eala_jax.data.series import (
    MINUTES_PER_DAY,
    SpatioTemporalSeries,
    Split,
    check_null_value,
    check_step_minutes,
    mark_missing,
    steps_per_day_of,
)
from eala_jax.data.synthetic import make_synthetic_series
from eala_jax.data.windows import split_boundaries

ENV_DATA_DIR = "EALA_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What is known of a data set: where its files are, their checksums, calendar, split and null
    value.

    ``graphs`` are candidates tried in order, relative to the set's folder (``../pems_graphs/..``
    reaches the shared graphs of the PEMS sets); the first that exists is used and named in
    ``series.source``. ``shape`` is the published ``(T, N)``, checked unless ``check_shape=False``.
    """

    name: str
    description: str
    folders: tuple[str, ...]
    signal: FileSpec
    step_minutes: int
    start_time: str | None  # None: taken from the file's timestamps
    default_split: Split
    null_value: float | None
    graphs: tuple[FileSpec, ...] = ()
    shape: tuple[int, int] | None = None
    csv_header: bool = True
    time_column: str | None = None
    node_ids_file: str | None = None  # e.g. PEMS03.txt: sensor ids that its distance.csv uses
    in_shared: bool = False  # shipped in ../shared/data for developers and CI


def _pems(
    number: str,
    shape: tuple[int, int],
    start: str,
    graph: FileSpec,
    node_ids_file: str | None = None,
) -> DatasetSpec:
    upper = f"PEMS{number}"
    return DatasetSpec(
        name=f"pems{number}",
        description=(
            f"{upper} traffic flow (channel 0 of {upper}.npz, ASTGCN/STSGCN release), 5 min"
        ),
        folders=(f"pems{number}", upper),
        signal=FileSpec(f"{upper}.npz"),
        graphs=(FileSpec(f"{upper}.csv"), FileSpec("distance.csv"), graph),
        step_minutes=5,
        start_time=start,
        default_split=(0.6, 0.2, 0.2),
        null_value=0.0,
        shape=shape,
        node_ids_file=node_ids_file,
    )


def benchmark_split_fractions(num_steps: int, split: Split) -> Split:
    """Fractions that `split_boundaries` turns into the long-horizon benchmarks' cut (Autoformer /
    DLinear / PatchTST code): `int(T·train)` training steps, `int(T·test)` test steps, the rest
    validation. (Rounding, as `split_boundaries` does with plain fractions, can be a step off.)"""
    train, _, test = split
    num_train, num_test = int(num_steps * train), int(num_steps * test)
    num_val = num_steps - num_train - num_test
    return (num_train / num_steps, num_val / num_steps, num_test / num_steps)


#: The long-horizon benchmarks' ETT cut (Zhou et al., Informer, AAAI 2021, and every paper since):
#: 12 months of training, 4 of validation, 4 of test (30-day months), the remaining 4 months of the
#: 17,420 hourly steps unused: train steps [0, 8640), val [8640, 11520), test [11520, 14400).
ETT_STEPS = 17420
ETT_SPLIT: Split = (12 * 30 * 24 / ETT_STEPS, 4 * 30 * 24 / ETT_STEPS, 4 * 30 * 24 / ETT_STEPS)

# Sizes and SHA-256 are recorded for the files in ../shared/data (computed from those files). For
# the full PEMS0X / METR-LA / PEMS-BAY releases this project does not know the published hashes, so
# none are recorded; their shapes (T, N) are checked instead. Pass sha256= to check a file against a
# known hash.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="los_loop",
            description=(
                "Los-loop: speed (mph) of 207 METR-LA sensors, 2012-03-01..07 (T-GCN release), 5"
                " min"
            ),
            folders=("los_loop",),
            signal=FileSpec(
                "los_speed.csv",
                3402125,
                "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4",
            ),
            graphs=(
                FileSpec(
                    "adj_mx.pkl",
                    177422,
                    "64997ab26db6ffdd2f6d57c8c12da6aedcb3efc2729b46ab4cc48e8c7ad1e5e8",
                ),
            ),
            step_minutes=5,
            start_time="2012-03-01T00:00",
            default_split=(0.7, 0.1, 0.2),
            null_value=0.0,
            shape=(2016, 207),
            in_shared=True,
        ),
        DatasetSpec(
            name="sz_taxi",
            description=(
                "SZ-taxi: taxi speed on 156 Luohu (Shenzhen) roads, 2015-01 (ST-CGCN release),"
                " 15 min"
            ),
            folders=("sz_taxi",),
            signal=FileSpec(
                "SZ_taxi.npz",
                3714310,
                "b6f2008136f7223bf94adb6484da42b4f1235366eeff91dac38cb075ca916301",
            ),
            graphs=(
                FileSpec(
                    "SZ_taxi_adj.csv",
                    48672,
                    "4e40e865b29d73df8404f6cc4c1a0c5ba55aa575aef97a4e9ce4fcd30aad16d6",
                ),
            ),
            step_minutes=15,
            start_time="2015-01-01T00:00",
            default_split=(0.7, 0.1, 0.2),
            null_value=0.0,
            shape=(2976, 156),
            in_shared=True,
        ),
        DatasetSpec(
            name="etth1",
            description=(
                "ETTh1: 7 variables of an electricity transformer (OT = oil temperature), hourly"
            ),
            folders=("ett",),
            signal=FileSpec(
                "ETTh1.csv",
                2589657,
                "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
            ),
            step_minutes=60,
            start_time=None,
            default_split=ETT_SPLIT,
            null_value=None,  # zeros are real readings here
            shape=(17420, 7),
            time_column="date",
            in_shared=True,
        ),
        DatasetSpec(
            name="etth2",
            description="ETTh2: 7 variables of a second electricity transformer, hourly",
            folders=("ett",),
            signal=FileSpec(
                "ETTh2.csv",
                2417960,
                "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
            ),
            step_minutes=60,
            start_time=None,
            default_split=ETT_SPLIT,
            null_value=None,
            shape=(17420, 7),
            time_column="date",
            in_shared=True,
        ),
        DatasetSpec(
            name="exchange_rate",
            description=(
                "exchange_rate: daily rates of 8 currencies (LSTNet release; dates not in the"
                " file, start 1990-01-01 is nominal)"
            ),
            folders=("lstnet",),
            signal=FileSpec(
                "exchange_rate.txt.gz",
                177142,
                "6a4fbb561dcdee43f071a83badbeec9223a335552278348656738b556f1c2e9d",
            ),
            step_minutes=MINUTES_PER_DAY,
            start_time="1990-01-01T00:00",
            default_split=benchmark_split_fractions(7588, (0.7, 0.1, 0.2)),
            null_value=None,
            shape=(7588, 8),
            csv_header=False,
            in_shared=True,
        ),
        _pems(
            "03",
            (26208, 358),
            "2018-09-01T00:00",
            FileSpec(
                "../pems_graphs/PEMS03_adjmatrix_stcgcn.csv",
                517371,
                "3424e92954cbc2e3d8e4e864c7c07093611081a321f7f0ce6f11bd854c334c30",
            ),
            node_ids_file="PEMS03.txt",
        ),
        _pems(
            "04",
            (16992, 307),
            "2018-01-01T00:00",
            FileSpec(
                "../pems_graphs/PEMS04_distance.csv",
                4852,
                "68ffaa80447eb34428a9999dc28363c61406ec0fd714686d0582d2386ac6f5f7",
            ),
        ),
        _pems(
            "07",
            (28224, 883),
            "2017-05-01T00:00",
            FileSpec(
                "../pems_graphs/PEMS07_adjmatrix_stcgcn.csv",
                3131269,
                "52461735b915764624dbfe8ec212f6916bf63ad0acb9838bd88982bbc91d2524",
            ),
        ),
        _pems(
            "08",
            (17856, 170),
            "2016-07-01T00:00",
            FileSpec(
                "../pems_graphs/PEMS08_distance.csv",
                4032,
                "859d68e7583ed4e6016588eaaca494d3ece286dae361614c5c1833017f87eaa7",
            ),
        ),
        DatasetSpec(
            name="metr_la",
            description=(
                "METR-LA: speed (mph) of 207 Los Angeles loop detectors, 2012-03..06 (DCRNN"
                " release), 5 min"
            ),
            folders=("metr_la", "METR-LA"),
            signal=FileSpec("metr-la.h5"),
            graphs=(FileSpec("adj_mx.pkl"),),
            step_minutes=5,
            start_time=None,
            default_split=(0.7, 0.1, 0.2),
            null_value=0.0,
            shape=(34272, 207),
        ),
        DatasetSpec(
            name="pems_bay",
            description=(
                "PEMS-BAY: speed (mph) of 325 Bay Area sensors, 2017-01..05 (DCRNN release), 5 min"
            ),
            folders=("pems_bay", "PEMS-BAY"),
            signal=FileSpec("pems-bay.h5"),
            graphs=(FileSpec("adj_mx_bay.pkl"), FileSpec("adj_mx.pkl")),
            step_minutes=5,
            start_time=None,
            default_split=(0.7, 0.1, 0.2),
            null_value=0.0,
            shape=(52116, 325),
        ),
    )
}
SPECIAL_DATASETS = ("synthetic", "generic")
KNOWN_NAMES = ("synthetic", *DATASETS, "generic")


def default_data_dir() -> Path | None:
    """``$EALA_DATA_DIR`` if set, else ``../shared/data`` beside the repository if it exists, else
    None."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env)
    shared = _REPO_ROOT.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The data directory that ``read_dataset`` / ``load_dataset`` would search."""
    return Path(data_dir) if data_dir is not None else default_data_dir()


def locate_signal(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None) -> Path:
    """Path of ``spec``'s signal file under the data directory; FileNotFoundError if absent."""
    root = resolve_data_dir(data_dir)
    if root is None:
        raise FileNotFoundError(
            f"{spec.name}: no data directory: pass data_dir= (or set {ENV_DATA_DIR}) to the folder "
            f"holding {spec.folders[0]}/{spec.signal.filename}, or path= to the file itself"
        )
    tried = [root / folder / spec.signal.filename for folder in spec.folders]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{spec.name}: {' or '.join(str(t) for t in tried)} not found: set data_dir= (or "
        f"{ENV_DATA_DIR}) to the folder that holds {spec.folders[0]}/{spec.signal.filename}, or "
        "path= to the file"
    )


def download_target(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None) -> Path:
    """Where ``url=`` puts ``spec``'s signal: the existing file if any folder holds one, else
    ``<data dir>/<first folder>/<signal file name>``."""
    root = resolve_data_dir(data_dir)
    if root is None:
        raise FileNotFoundError(
            f"{spec.name}: url= given but no data directory to download {spec.signal.filename} "
            f"into: pass data_dir= (or set {ENV_DATA_DIR}), or path= to the file to write"
        )
    for folder in spec.folders:
        if (root / folder / spec.signal.filename).is_file():
            return root / folder / spec.signal.filename
    return root / spec.folders[0] / spec.signal.filename


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
    if graph_url is not None:
        if graph_path is not None:
            graph_target, graph_check = Path(graph_path), FileSpec(Path(graph_path).name)
        elif not spec.graphs:
            raise ValueError(
                f"{spec.name} has no graph file of its own: with graph_url= also give graph_path="
            )
        else:  # the first candidate present, else the set's first graph name
            graph_check = next(
                (g for g in spec.graphs if (folder / g.filename).is_file()), spec.graphs[0]
            )
            graph_target = folder / graph_check.filename
        fetch_file(
            graph_url,
            graph_target,
            graph_check if verify else FileSpec(graph_check.filename),
            accept=lambda tmp: read_graph(tmp, num_nodes, weight=graph_weight, node_ids=node_ids),
        )
    if graph_path is not None:
        graph_file = Path(graph_path)
        verify_file(graph_file, FileSpec(graph_file.name), option="graph_path=")
    else:
        graph_file = None
        for candidate in spec.graphs:
            if (folder / candidate.filename).is_file():
                graph_file = (folder / candidate.filename).resolve()
                if verify:
                    verify_file(graph_file, candidate, option="graph_path=")
                break
    if graph_file is not None:
        adjacency = read_graph(graph_file, num_nodes, weight=graph_weight, node_ids=node_ids)
        graph_source = str(graph_file)
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


def load_generic(
    *,
    path: str | os.PathLike[str],
    step_minutes: int | None = None,
    start_time: str | np.datetime64 | None = None,
    series_name: str = "generic",
    channel: int = 0,
    npz_key: str = "data",
    h5_key: str | None = None,
    csv_header: bool = True,
    time_column: str | None = None,
    graph_path: str | os.PathLike[str] | None = None,
    graph_weight: str = "binary",
    null_value: float | None = None,
    transpose: bool | None = None,
    default_split: Split = (0.7, 0.1, 0.2),
    sha256: str | None = None,
    url: str | None = None,
    graph_url: str | None = None,
) -> SpatioTemporalSeries:
    """Any ``(T, N)`` or ``(T, N, C)`` array in ``.npz`` / ``.npy`` / ``.csv[.gz]`` / ``.h5`` as a
    series.

    ``step_minutes`` and ``start_time`` are required unless the file has timestamps (an ``.h5``
    frame's index or a csv ``time_column``), which then give them (and must agree if both are
    given). ``series_name`` names the result (default ``"generic"``). ``url=`` downloads the file to
    ``path`` first unless ``path`` exists (likewise ``graph_url=`` to ``graph_path``); see
    ``load_dataset``.

    Missing values: NaN only, unless ``null_value=`` names a code (e.g. ``0.0`` or ``-1``) that
    marks a missing reading; the file's zeros are readings by default. The result's ``missing``
    records how many values were treated as missing and why.

    Orientation: ``transpose=True`` reads a file holding one row per sensor, ``(N, T[, C])``
    (column names that are timestamps then give the calendar); ``False`` takes the file as
    ``(T, N)`` unchecked. The default (None) refuses a file whose orientation is ambiguous (more
    sensors than steps, or timestamps as column names) and names these two options.
    """
    signal_path = Path(path)
    null_value = check_null_value(null_value)
    if transpose is not None and not isinstance(transpose, bool):
        raise ValueError(f"generic: transpose must be True, False or None, got {transpose!r}")

    def read(file: Path) -> tuple[np.ndarray, Any, list[str] | None]:
        return read_signal(
            file,
            channel=channel,
            npz_key=npz_key,
            h5_key=h5_key,
            csv_header=csv_header,
            time_column=time_column,
        )

    if url is not None:
        fetch_file(url, signal_path, FileSpec(signal_path.name, sha256=sha256), accept=read)
    verify_file(signal_path, FileSpec(signal_path.name, sha256=sha256), option="path=")
    raw, index, columns = read(signal_path)
    if transpose:
        if index is not None:
            raise DataFileError(
                f"{signal_path}: transpose=True, but its rows carry timestamps "
                f"({time_column or 'the frame index'}), so they are time steps already: "
                "drop transpose"
            )
        raw, index, columns = raw.T, _timestamps(columns), None
    elif transpose is None:
        _check_orientation(raw, index, columns, signal_path)
    gaps = 0
    if index is not None:
        raw, index, gaps = fill_time_gaps(raw, index, signal_path)  # missing steps -> NaN rows
        file_start, file_step = regular_step_minutes(index, signal_path)
        if step_minutes is not None and step_minutes != file_step:
            raise ValueError(
                f"step_minutes={step_minutes} but {signal_path} has steps of {file_step} min"
            )
        if start_time is not None and np.datetime64(start_time, "m") != file_start:
            raise ValueError(f"start_time={start_time} but {signal_path} starts at {file_start}")
        start_time, step_minutes = file_start, file_step
    if step_minutes is None or start_time is None:
        examples = {"step_minutes": 60, "start_time": "2024-01-01T00:00"}
        missing = {"step_minutes": step_minutes, "start_time": start_time}
        raise MissingOptionsError(
            signal_path,
            "has no timestamps, so its step length and the time of its first step must be given",
            {k: examples[k] for k, v in missing.items() if v is None},
        )
    step_minutes = check_step_minutes(step_minutes)
    adjacency = None
    if graph_url is not None:
        if graph_path is None:
            raise ValueError("generic: graph_url= needs graph_path= (where to put the graph file)")
        fetch_file(
            graph_url,
            Path(graph_path),
            FileSpec(Path(graph_path).name),
            accept=lambda tmp: read_graph(tmp, raw.shape[1], weight=graph_weight, node_ids=columns),
        )
    if graph_path is not None:
        graph_file = Path(graph_path)
        verify_file(graph_file, FileSpec(graph_file.name), option="graph_path=")
        adjacency = read_graph(graph_file, raw.shape[1], weight=graph_weight, node_ids=columns)
    reason = (
        "no null_value given: only NaN is missing"
        if null_value is None
        else f"null_value={null_value!r} set by the caller"
    )
    if gaps:
        reason += f"; {gaps} absent time steps inserted as NaN rows"
    values, missing = mark_missing(raw, null_value, reason=reason)
    return SpatioTemporalSeries(
        name=series_name,
        values=values,
        missing=missing,
        steps_per_day=steps_per_day_of(step_minutes),
        start_time=np.datetime64(start_time, "m"),
        step_minutes=int(step_minutes),
        adjacency=adjacency,
        default_split=default_split,
        node_ids=tuple(columns) if columns is not None else None,
        source=f"signal {signal_path}; graph {graph_path}; null_value {null_value}",
    )


def _timestamps(names: list[str] | None) -> pd.DatetimeIndex | None:
    """``names`` parsed as timestamps when there are at least two and every one parses, else
    None."""
    if names is None or len(names) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            stamps = pd.to_datetime(pd.Index(names), errors="coerce", format="mixed")
        except (ValueError, TypeError, OverflowError):
            return None
    return None if stamps.isna().any() else pd.DatetimeIndex(stamps)


def _check_orientation(
    raw: np.ndarray, index: pd.Index | None, columns: list[str] | None, path: Path
) -> None:
    """Refuses a file that may be ``(N, T)`` where ``(T, N)`` is expected, naming ``transpose=``."""
    steps, sensors = raw.shape
    swapped = f"(T, N) = ({sensors}, {steps})"
    if index is None and _timestamps(columns) is not None:
        assert columns is not None
        raise DataFileError(
            f"{path}: its {sensors} column names look like timestamps ({columns[0]!r}, "
            f"{columns[1]!r}, ...), so it seems to hold one row per sensor and one column per "
            f"step, (N, T) = ({steps}, {sensors}). Pass transpose=True to read it as {swapped} "
            "with those timestamps, or transpose=False to keep the rows as time steps"
        )
    if index is None and sensors > steps:
        raise DataFileError(
            f"{path}: read as (T, N) it holds {steps} steps of {sensors} sensors: more sensors "
            "than steps, so it may be (N, T) with one row per sensor. Pass transpose=True to read "
            f"it as {swapped}, or transpose=False if it really holds {steps} steps of "
            f"{sensors} sensors"
        )


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

        def loader(**kwargs: Any) -> SpatioTemporalSeries:
            return _load_spec(spec, data_dir, **kwargs)

    try:
        return loader(**options)
    except TypeError as err:
        if (
            "unexpected keyword argument" in str(err)
            or "missing" in str(err)
            and "required" in str(err)
        ):
            raise ValueError(f"load_dataset({name!r}): {err}") from None
        raise
