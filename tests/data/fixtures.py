"""Small files written in the exact formats of the published data sets, and the shared-data
location."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"real data folder {SHARED_DATA} is absent (a fresh clone has no ../shared)",
)


def write_pems_npz(
    path: Path, *, num_steps: int = 600, num_nodes: int = 6, seed: int = 0
) -> np.ndarray:
    """A PEMS0X.npz: key ``data``, float64 ``(T, N, 3)`` (flow, occupancy, speed), with some
    zeros."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(1.0, 400.0, size=(num_steps, num_nodes, 3)).round(1)
    data[rng.random((num_steps, num_nodes)) < 0.05, 0] = 0.0
    data[10:20, 1, 0] = 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, data=data)
    return data


def write_distance_csv(path: Path, edges: list[tuple[int, int, float]]) -> None:
    """ASTGCN ``distance.csv``: header ``from,to,cost``, one edge a row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(edges, columns=["from", "to", "cost"]).to_csv(path, index=False)


def write_metr_h5(
    path: Path,
    *,
    num_steps: int = 700,
    num_nodes: int = 5,
    start: str = "2012-03-01 00:00:00",
    seed: int = 1,
) -> pd.DataFrame:
    """DCRNN ``metr-la.h5``: a pandas frame T x N of speeds, 5-min DatetimeIndex, sensor-id columns,
    key ``df``."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(5.0, 70.0, size=(num_steps, num_nodes))
    values[rng.random((num_steps, num_nodes)) < 0.05] = 0.0
    index = pd.date_range(start, periods=num_steps, freq="5min")
    frame = pd.DataFrame(
        values, index=index, columns=[str(773869 + 7 * i) for i in range(num_nodes)]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_hdf(path, key="df")
    return frame


def write_adj_pkl(path: Path, sensor_ids: list[str], adjacency: np.ndarray) -> None:
    """DCRNN ``adj_mx.pkl``: the tuple ``(sensor_ids, id_to_index, adj)``, pickled (protocol 2)."""
    id_to_index = {s: i for i, s in enumerate(sensor_ids)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump((sensor_ids, id_to_index, adjacency.astype(np.float32)), f, protocol=2)


def write_matrix_csv(path: Path, adjacency: np.ndarray, *, with_header: bool) -> None:
    """Adjacency csv: bare N x N (T-GCN), or header row ``,0,1,..`` + index column (ST-CGCN)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(adjacency)
    frame.to_csv(path, header=with_header, index=with_header)
