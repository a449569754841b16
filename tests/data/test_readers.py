"""Readers on fixtures written in the published formats, and their errors."""

import numpy as np
import pandas as pd
import pytest

from eala_jax.data import DataFileError, FileSpec
from eala_jax.data.readers import (
    fill_time_gaps,
    read_adj_pkl,
    read_distance_csv,
    read_graph,
    read_h5,
    read_matrix_csv,
    read_npz,
    read_signal,
    regular_step_minutes,
    sha256_of,
    verify_file,
)
from tests.data.fixtures import (
    write_adj_pkl,
    write_distance_csv,
    write_matrix_csv,
    write_metr_h5,
    write_pems_npz,
)


def test_pems_npz_channel_selection(tmp_path):
    path = tmp_path / "PEMS08.npz"
    data = write_pems_npz(path)
    np.testing.assert_array_equal(read_npz(path), np.load(path)["data"][:, :, 0])
    np.testing.assert_array_equal(read_npz(path, channel=2), data[:, :, 2])
    with pytest.raises(DataFileError, match="3 channels .* channel=3"):
        read_npz(path, channel=3)
    np.savez(tmp_path / "other.npz", x=data)
    with pytest.raises(DataFileError, match=r"no array 'data'; it holds \['x'\]"):
        read_npz(tmp_path / "other.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip archive")
    with pytest.raises(DataFileError, match="bad.npz: is not a readable .npz"):
        read_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "flat.npz", data=np.zeros(5))
    with pytest.raises(DataFileError, match=r"shape \(5,\); expected \(T, N\) or \(T, N, C\)"):
        read_npz(tmp_path / "flat.npz")


def test_metr_h5_frame(tmp_path):
    path = tmp_path / "metr-la.h5"
    frame = write_metr_h5(path)
    read = read_h5(path)
    np.testing.assert_array_equal(read.to_numpy(), pd.read_hdf(path, key="df").to_numpy())
    values, index, columns = read_signal(path)
    np.testing.assert_array_equal(values, frame.to_numpy())
    assert columns == list(frame.columns)
    start, step = regular_step_minutes(index, path)
    assert start == np.datetime64("2012-03-01T00:00") and step == 5
    (tmp_path / "bad.h5").write_bytes(b"\x00" * 64)
    with pytest.raises(DataFileError, match="bad.h5: is not a readable pandas HDF5 frame"):
        read_h5(tmp_path / "bad.h5")


def test_irregular_timestamps_rejected(tmp_path):
    index = pd.DatetimeIndex(["2020-01-01 00:00", "2020-01-01 00:05", "2020-01-01 00:15"])
    with pytest.raises(DataFileError, match="irregular time steps"):
        regular_step_minutes(index, tmp_path / "x.h5")


def test_distance_csv_edges(tmp_path):
    path = tmp_path / "distance.csv"
    write_distance_csv(path, [(0, 1, 352.6), (1, 2, 100.0), (3, 0, 5.5)])
    binary = read_distance_csv(path, 4)
    expected = np.zeros((4, 4), np.float32)
    expected[0, 1] = expected[1, 2] = expected[3, 0] = 1.0
    np.testing.assert_array_equal(binary, expected)
    cost = read_distance_csv(path, 4, weight="cost")
    assert cost[0, 1] == np.float32(352.6) and cost[3, 0] == np.float32(5.5) and cost[1, 0] == 0
    with pytest.raises(DataFileError, match="node index 3 but the signal has 3 nodes"):
        read_distance_csv(path, 3)
    # PEMS03-style: endpoints are sensor ids, mapped through the id list.
    write_distance_csv(path, [(317842, 318120, 1.0)])
    by_id = read_distance_csv(path, 2, node_ids=["318120", "317842"])
    assert by_id[1, 0] == 1.0 and by_id.sum() == 1.0


def test_matrix_csv_layouts(tmp_path):
    adjacency = np.arange(9, dtype=np.float32).reshape(3, 3) / 7
    write_matrix_csv(tmp_path / "bare.csv", adjacency, with_header=False)
    write_matrix_csv(tmp_path / "stcgcn.csv", adjacency, with_header=True)
    np.testing.assert_allclose(read_matrix_csv(tmp_path / "bare.csv"), adjacency, rtol=1e-6)
    np.testing.assert_allclose(read_matrix_csv(tmp_path / "stcgcn.csv"), adjacency, rtol=1e-6)
    pd.DataFrame(np.ones((2, 3))).to_csv(tmp_path / "rect.csv", header=False, index=False)
    with pytest.raises(DataFileError, match=r"\(2, 3\) table; expected a square"):
        read_matrix_csv(tmp_path / "rect.csv")


def test_adj_pkl_and_graph_node_count(tmp_path):
    ids = ["773869", "767541", "767542"]
    adjacency = np.eye(3, dtype=np.float32) + 0.5
    write_adj_pkl(tmp_path / "adj_mx.pkl", ids, adjacency)
    got_ids, got = read_adj_pkl(tmp_path / "adj_mx.pkl")
    assert got_ids == ids
    np.testing.assert_array_equal(got, adjacency)
    np.testing.assert_array_equal(read_graph(tmp_path / "adj_mx.pkl", 3, node_ids=ids), adjacency)
    with pytest.raises(DataFileError, match="graph of 3 nodes but the signal has 4"):
        read_graph(tmp_path / "adj_mx.pkl", 4)
    with pytest.raises(DataFileError, match="another order"):
        read_graph(tmp_path / "adj_mx.pkl", 3, node_ids=ids[::-1])
    (tmp_path / "broken.pkl").write_bytes(b"garbage")
    with pytest.raises(DataFileError, match="not a DCRNN adj_mx.pkl"):
        read_adj_pkl(tmp_path / "broken.pkl")


def test_verify_file_size_and_hash(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # SHA-256 of "abc"
    assert sha256_of(path) == digest
    verify_file(path, FileSpec("f.bin", 3, digest), option="path=")
    with pytest.raises(DataFileError, match="size 3 bytes, but the published f.bin has 4"):
        verify_file(path, FileSpec("f.bin", 4, digest), option="path=")
    with pytest.raises(DataFileError, match="SHA-256 ba7816.*but the published f.bin has 00"):
        verify_file(path, FileSpec("f.bin", 3, "00" * 32), option="path=")
    with pytest.raises(FileNotFoundError, match="nope.bin not found: set data_dir="):
        verify_file(tmp_path / "nope.bin", FileSpec("nope.bin"), option="data_dir=")


def test_unknown_signal_format(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(DataFileError, match="unknown signal format"):
        read_signal(tmp_path / "x.parquet")


def test_absent_steps_become_missing_rows(tmp_path):
    """Daily data with absent days (a csv with gaps in its dates) is read on the daily grid, the
    absent days as NaN rows; weekly steps are accepted; steps off one grid are refused."""
    from eala_jax.data import load_dataset

    dates = pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-05", "2020-01-06", "2020-01-08"])
    values = np.arange(10, dtype=float).reshape(5, 2) + 1
    frame = pd.DataFrame(values, columns=["a", "b"])
    frame.insert(0, "date", dates.strftime("%Y-%m-%d"))
    frame.to_csv(tmp_path / "daily.csv", index=False)
    series = load_dataset("generic", path=tmp_path / "daily.csv", time_column="date")
    assert series.step_minutes == 1440 and series.num_steps == 8 and series.steps_per_day == 1
    present = [0, 1, 4, 5, 7]  # day offsets from 2020-01-01
    np.testing.assert_array_equal(series.values[present], values.astype(np.float32))
    assert np.isnan(np.delete(series.values, present, axis=0)).all()
    assert "3 absent time steps inserted as NaN rows" in series.missing_summary()
    weekly = pd.DataFrame({"date": pd.date_range("2020-01-06", periods=6, freq="7D"), "a": 1.0})
    weekly.loc[3, "a"] = 2.0
    weekly.to_csv(tmp_path / "weekly.csv", index=False)
    series = load_dataset("generic", path=tmp_path / "weekly.csv", time_column="date")
    assert series.step_minutes == 10080 and series.steps_per_day == 1
    odd = pd.DatetimeIndex(["2020-01-01 00:00", "2020-01-01 00:10", "2020-01-01 00:25"])
    with pytest.raises(DataFileError, match="not whole multiples of one step"):
        fill_time_gaps(np.zeros((3, 1)), odd, tmp_path / "x.csv")
