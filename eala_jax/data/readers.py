"""Readers of the file formats the benchmarks are published in, with checksums and clear errors.

Signals: PEMS ``.npz`` (key ``data``, ``(T, N, C)``), DCRNN ``.h5`` (pandas frame ``T x N``),
``.npy``, ``.csv`` (optionally gzip, with or without header / time column). Graphs: ``distance.csv``
edge lists (``from,to,cost``), square adjacency matrices in csv (bare, or with a header row and
index column), and the DCRNN ``adj_mx.pkl`` tuple ``(sensor_ids, id_to_index, adj)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd


class DataFileError(ValueError):
    """A data file is unreadable, has the wrong layout, or does not match its recorded size /
    SHA-256."""


class MissingOptionsError(ValueError):
    """A file needs options the caller did not give, e.g. ``step_minutes=`` and ``start_time=``
    for an array without timestamps.

    ``options``: the ``load_dataset`` keywords missing, each with an example value
    (``{"step_minutes": 60, ...}``); ``path``: the file; ``why``: what the file lacks. The message
    names the Python keywords; a command line rewrites it in the spelling its users type.
    """

    def __init__(self, path: Path, why: str, options: dict[str, object]):
        self.path = Path(path)
        self.why = why
        self.options = dict(options)
        keywords = " and ".join(f"{k}=" for k in self.options)
        example = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        super().__init__(f"{self.path} {why}; set {keywords} (e.g. {example})")


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """A file a data set needs; ``size`` (bytes) and ``sha256`` are recorded only where known."""

    filename: str
    size: int | None = None
    sha256: str | None = None


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, spec: FileSpec, *, option: str) -> None:
    """Raises ``FileNotFoundError`` (naming ``option``) if ``path`` is absent, ``DataFileError`` if
    its size
    or SHA-256 differ from ``spec``'s recorded ones. Size first, so a wrong file fails before
    hashing."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: set {option} to the folder or file that holds {spec.filename}"
        )
    if spec.size is not None and path.stat().st_size != spec.size:
        raise DataFileError(
            f"{path}: size {path.stat().st_size} bytes, but the published {spec.filename} has "
            f"{spec.size} bytes (a different or damaged file; pass verify=False to load it anyway)"
        )
    if spec.sha256 is not None:
        actual = sha256_of(path)
        if actual != spec.sha256:
            raise DataFileError(
                f"{path}: SHA-256 {actual}, but the published {spec.filename} has {spec.sha256} "
                "(a different or damaged file; pass verify=False to load it anyway)"
            )


def _fail(path: Path, what: str, err: Exception | None = None) -> DataFileError:
    detail = f" ({type(err).__name__}: {err})" if err is not None else ""
    return DataFileError(f"{path}: {what}{detail}")


def read_npz(path: Path, *, key: str = "data", channel: int = 0) -> np.ndarray:
    """PEMS layout: array ``key`` of shape ``(T, N, C)`` (returns channel ``channel``) or ``(T,
    N)``.

    Returns: ``[T, N]`` in the file's dtype.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise _fail(path, f"has no array {key!r}; it holds {archive.files} (set npz_key=)")
            data = archive[key]
    except DataFileError:
        raise
    except Exception as err:  # zipfile.BadZipFile, OSError, ValueError: a corrupt or non-npz file
        raise _fail(path, "is not a readable .npz archive", err) from err
    return select_channel(data, path, channel)


def read_npy(path: Path, *, channel: int = 0) -> np.ndarray:
    """A ``.npy`` array ``(T, N)`` or ``(T, N, C)``; returns ``[T, N]``."""
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:
        raise _fail(path, "is not a readable .npy array", err) from err
    return select_channel(data, path, channel)


def select_channel(data: np.ndarray, path: Path, channel: int) -> np.ndarray:
    """``[T, N]`` from ``(T, N)`` or channel ``channel`` of ``(T, N, C)``; numeric dtypes only."""
    if not np.issubdtype(data.dtype, np.number):
        raise _fail(path, f"holds dtype {data.dtype}, expected numbers")
    if data.ndim == 2:
        if channel != 0:
            raise _fail(
                path, f"is (T, N) = {data.shape} without channels, but channel={channel} was asked"
            )
        return data
    if data.ndim == 3:
        if not 0 <= channel < data.shape[2]:
            raise _fail(
                path,
                f"has {data.shape[2]} channels (shape {data.shape}); channel={channel} is out of "
                "range",
            )
        return data[:, :, channel]
    raise _fail(path, f"has shape {data.shape}; expected (T, N) or (T, N, C)")


def read_h5(path: Path, *, key: str | None = None) -> pd.DataFrame:
    """DCRNN layout (METR-LA, PEMS-BAY): a pandas frame ``T x N`` (index = timestamps, columns =
    sensors)."""
    try:
        frame = pd.read_hdf(path, key=key)
    except ImportError:
        raise
    except Exception as err:
        raise _fail(
            path, "is not a readable pandas HDF5 frame (set h5_key= if it holds several)", err
        ) from err
    if not isinstance(frame, pd.DataFrame) or frame.ndim != 2:
        raise _fail(path, f"holds a {type(frame).__name__}, expected a pandas DataFrame T x N")
    return frame


def read_csv_frame(
    path: Path, *, header: bool = True, time_column: str | int | None = None
) -> pd.DataFrame:
    """A csv (``.gz`` allowed) of numbers, one row per step; ``time_column`` becomes the index if
    given."""
    try:
        frame = pd.read_csv(path, header=0 if header else None)
    except Exception as err:
        raise _fail(path, "is not a readable csv", err) from err
    if time_column is not None:
        if time_column not in frame.columns:
            raise _fail(
                path, f"has no column {time_column!r}; columns are {list(frame.columns)[:10]}"
            )
        frame = frame.set_index(time_column)
        frame.index = pd.to_datetime(frame.index)
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise _fail(
            path, f"has non-numeric columns {non_numeric[:5]} (set time_column= for a date column)"
        )
    return frame


def regular_step_minutes(index: pd.Index, path: Path) -> tuple[np.datetime64, int]:
    """Start time and step (minutes) of a regular ``DatetimeIndex``; raises if irregular."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        raise _fail(path, "has no timestamp index of length >= 2 to take start time and step from")
    deltas = np.diff(index.values).astype("timedelta64[m]").astype(np.int64)
    if (deltas != deltas[0]).any() or deltas[0] <= 0:
        raise _fail(path, f"has irregular time steps ({sorted(set(deltas.tolist()))[:5]} minutes)")
    return np.datetime64(index[0].to_datetime64(), "m"), int(deltas[0])


def fill_time_gaps(
    raw: np.ndarray, index: pd.Index, path: Path
) -> tuple[np.ndarray, pd.DatetimeIndex, int]:
    """Rows of ``raw`` (one per timestamp of ``index``) on a regular grid: where the steps are whole
    multiples of the smallest one (daily data with missing days), the absent steps are inserted as
    NaN rows (missing). Returns ``(raw, index, rows inserted)``; a regular index is returned as it
    is. Raises ``DataFileError`` for timestamps that are unsorted, repeated or off the grid."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        raise _fail(path, "has no timestamp index of length >= 2 to take start time and step from")
    deltas = np.diff(index.values).astype("timedelta64[m]").astype(np.int64)
    step = int(deltas.min())
    if step <= 0 or (deltas % step).any():
        raise _fail(
            path,
            f"has irregular time steps ({sorted(set(deltas.tolist()))[:5]} minutes): not whole "
            "multiples of one step",
        )
    if (deltas == step).all():
        return raw, index, 0
    offsets = np.concatenate([[0], np.cumsum(deltas // step)])
    filled = np.full((int(offsets[-1]) + 1, *raw.shape[1:]), np.nan)
    filled[offsets] = raw
    grid = pd.date_range(index[0], periods=len(filled), freq=f"{step}min")
    return filled, grid, len(filled) - len(raw)


def read_distance_csv(
    path: Path, num_nodes: int, *, weight: str = "binary", node_ids: list[str] | None = None
) -> np.ndarray:
    """Edge list ``from,to,cost`` (ASTGCN ``distance.csv``) -> float32 ``[N, N]`` directed
    adjacency.

    ``weight="binary"`` puts 1 on each edge (as ASTGCN does), ``"cost"`` the cost itself. Endpoints
    are node indices 0..N-1, or sensor ids when ``node_ids`` (the order of the signal's nodes) is
    given.
    """
    try:
        edges = pd.read_csv(path)
    except Exception as err:
        raise _fail(path, "is not a readable csv edge list", err) from err
    if edges.shape[1] != 3 or len(edges) == 0:
        raise _fail(path, f"has columns {list(edges.columns)}; expected an edge list from,to,cost")
    src, dst, cost = (edges.iloc[:, i].to_numpy() for i in range(3))
    if node_ids is not None:
        index = {str(s): i for i, s in enumerate(node_ids)}
        try:
            src = np.array([index[str(s)] for s in src])
            dst = np.array([index[str(s)] for s in dst])
        except KeyError as err:
            raise _fail(
                path, f"names node {err.args[0]} that is not among the {len(node_ids)} node ids"
            ) from None
    else:
        src, dst = src.astype(np.int64), dst.astype(np.int64)
    top = int(max(src.max(), dst.max()))
    if min(src.min(), dst.min()) < 0 or top >= num_nodes:
        raise _fail(
            path,
            f"has node index {top} but the signal has {num_nodes} nodes (expected indices "
            f"0..{num_nodes - 1}; for a list of sensor ids set node_ids_path=)",
        )
    if weight not in ("binary", "cost"):
        raise ValueError(f"graph_weight must be 'binary' or 'cost', got {weight!r}")
    adjacency = np.zeros((num_nodes, num_nodes), dtype=np.float32)
    adjacency[src, dst] = 1.0 if weight == "binary" else cost.astype(np.float32)
    return adjacency


def read_matrix_csv(path: Path) -> np.ndarray:
    """Square adjacency in csv: bare ``N x N`` numbers, or with a header row ``,0,1,..`` and an
    index column
    (the ST-CGCN layout). Returns float32 ``[N, N]``."""
    try:
        raw = pd.read_csv(path, header=None).to_numpy(dtype=np.float64)
    except Exception as err:
        raise _fail(path, "is not a readable numeric csv matrix", err) from err
    if raw.shape[0] == raw.shape[1] and not np.isnan(raw).any():
        return raw.astype(np.float32)
    n = raw.shape[0] - 1
    if (
        raw.shape == (n + 1, n + 1)
        and np.isnan(raw[0, 0])
        and np.array_equal(raw[0, 1:], np.arange(n))
        and np.array_equal(raw[1:, 0], np.arange(n))
        and not np.isnan(raw[1:, 1:]).any()
    ):
        return raw[1:, 1:].astype(np.float32)
    raise _fail(
        path,
        f"is a {raw.shape} table; expected a square N x N matrix (optionally with header row and "
        "index)",
    )


def read_adj_pkl(path: Path) -> tuple[list[str], np.ndarray]:
    """DCRNN ``adj_mx.pkl``: ``(sensor_ids, id_to_index, adj)`` -> ``(sensor_ids, float32 adj [N,
    N])``."""
    try:
        with open(path, "rb") as f:
            content = pickle.load(f, encoding="latin1")
        sensor_ids, _, adjacency = content
        adjacency = np.asarray(adjacency, dtype=np.float32)
    except Exception as err:
        raise _fail(
            path, "is not a DCRNN adj_mx.pkl tuple (sensor_ids, id_to_index, adj)", err
        ) from err
    if (
        adjacency.ndim != 2
        or adjacency.shape[0] != adjacency.shape[1]
        or len(sensor_ids) != adjacency.shape[0]
    ):
        raise _fail(
            path, f"holds {len(sensor_ids)} sensor ids and an adjacency of shape {adjacency.shape}"
        )
    return [str(s) for s in sensor_ids], adjacency


def read_signal(
    path: Path,
    *,
    channel: int = 0,
    npz_key: str = "data",
    h5_key: str | None = None,
    csv_header: bool = True,
    time_column: str | int | None = None,
) -> tuple[np.ndarray, pd.Index | None, list[str] | None]:
    """Any supported signal file by suffix -> ``(values [T, N], time index or None, column names or
    None)``."""
    name = path.name.lower()
    if name.endswith(".npz"):
        return read_npz(path, key=npz_key, channel=channel), None, None
    if name.endswith(".npy"):
        return read_npy(path, channel=channel), None, None
    if name.endswith((".h5", ".hdf5")):
        frame = read_h5(path, key=h5_key)
        index = frame.index if isinstance(frame.index, pd.DatetimeIndex) else None
        return frame.to_numpy(), index, [str(c) for c in frame.columns]
    if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
        frame = read_csv_frame(path, header=csv_header, time_column=time_column)
        index = frame.index if isinstance(frame.index, pd.DatetimeIndex) else None
        columns = [str(c) for c in frame.columns] if csv_header else None
        return frame.to_numpy(), index, columns
    raise DataFileError(
        f"{path}: unknown signal format; expected .npz, .npy, .h5/.hdf5 or .csv[.gz]"
    )


def read_graph(
    path: Path, num_nodes: int, *, weight: str = "binary", node_ids: list[str] | None = None
) -> np.ndarray:
    """Any supported graph file -> float32 ``[N, N]``; raises if its node count is not
    ``num_nodes``."""
    name = path.name.lower()
    if name.endswith(".pkl"):
        ids, adjacency = read_adj_pkl(path)
        if node_ids is not None and len(node_ids) == len(ids) and list(node_ids) != ids:
            raise _fail(path, "lists its sensors in another order than the signal's columns")
    elif name.endswith(".npy"):
        adjacency = np.load(path).astype(np.float32)
    else:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline().strip().lower().replace(" ", "")
        if first.startswith("from,to"):
            return read_distance_csv(path, num_nodes, weight=weight, node_ids=node_ids)
        adjacency = read_matrix_csv(path)
    if adjacency.shape != (num_nodes, num_nodes):
        raise _fail(
            path, f"is a graph of {adjacency.shape[0]} nodes but the signal has {num_nodes}"
        )
    return adjacency
