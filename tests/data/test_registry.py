"""load_dataset: names, options, file lookup, checksums, and the real files in ../shared/data."""

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from eala_jax.data import DATASETS, DataFileError, load_dataset, make_forecast_splits
from eala_jax.data.readers import sha256_of
from tests.data.fixtures import (
    SHARED_DATA,
    needs_shared,
    write_adj_pkl,
    write_distance_csv,
    write_metr_h5,
    write_pems_npz,
)


def test_unknown_name_and_option():
    with pytest.raises(
        ValueError, match="unknown data set 'pems09'; known: synthetic, los_loop, .*pems08.*generic"
    ):
        load_dataset("pems09")
    with pytest.raises(
        ValueError,
        match=r"load_dataset\('synthetic'\): unknown option\(s\) nodes; it takes .*num_nodes",
    ):
        load_dataset("synthetic", nodes=3)
    with pytest.raises(ValueError, match="generic.*path"):
        load_dataset("generic")


def test_missing_file_names_file_and_option(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"pems08/PEMS08.npz or .*PEMS08/PEMS08.npz not found: set data_dir=",
    ):
        load_dataset("pems08", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="metr-la.h5"):
        load_dataset("metr_la", data_dir=tmp_path)


def test_pems08_from_npz_fixture(tmp_path):
    data = write_pems_npz(tmp_path / "PEMS08" / "PEMS08.npz", num_steps=400, num_nodes=4)
    write_distance_csv(tmp_path / "PEMS08" / "distance.csv", [(0, 1, 10.0), (2, 3, 20.0)])
    with pytest.raises(
        DataFileError, match=r"shape \(400, 4\), but pems08 has \(T, N\) = \(17856, 170\)"
    ):
        load_dataset("pems08", data_dir=tmp_path)
    series = load_dataset("pems08", data_dir=tmp_path, check_shape=False)
    expected = np.load(tmp_path / "PEMS08" / "PEMS08.npz")["data"][:, :, 0].astype(np.float32)
    expected[expected == 0] = np.nan
    np.testing.assert_array_equal(series.values, expected)
    assert series.name == "pems08" and series.steps_per_day == 288 and series.step_minutes == 5
    assert series.start_time == np.datetime64("2016-07-01T00:00") and series.default_split == (
        0.6,
        0.2,
        0.2,
    )
    assert (
        series.adjacency[0, 1] == 1 and series.adjacency[2, 3] == 1 and series.adjacency.sum() == 2
    )
    assert "distance.csv" in series.source
    kept = load_dataset("pems08", data_dir=tmp_path, check_shape=False, null_value=None)
    assert np.array_equal(kept.values, data[:, :, 0].astype(np.float32))  # zeros kept as values
    flow_speed = load_dataset("pems08", data_dir=tmp_path, check_shape=False, channel=2)
    np.testing.assert_array_equal(flow_speed.values, data[:, :, 2].astype(np.float32))


def test_graph_node_count_must_match_signal(tmp_path):
    write_pems_npz(tmp_path / "pems04" / "PEMS04.npz", num_steps=100, num_nodes=3)
    write_distance_csv(tmp_path / "pems04" / "PEMS04.csv", [(0, 5, 1.0)])
    with pytest.raises(
        DataFileError, match="PEMS04.csv: has node index 5 but the signal has 3 nodes"
    ):
        load_dataset("pems04", data_dir=tmp_path, check_shape=False)


def test_metr_la_from_h5_fixture(tmp_path):
    frame = write_metr_h5(
        tmp_path / "metr_la" / "metr-la.h5", num_nodes=4, start="2012-03-04 08:00:00"
    )
    adjacency = np.random.default_rng(0).random((4, 4)).astype(np.float32)
    write_adj_pkl(tmp_path / "metr_la" / "adj_mx.pkl", list(frame.columns), adjacency)
    series = load_dataset("metr_la", data_dir=tmp_path, check_shape=False)
    expected = pd.read_hdf(tmp_path / "metr_la" / "metr-la.h5").to_numpy().astype(np.float32)
    expected[expected == 0] = np.nan
    np.testing.assert_array_equal(series.values, expected)
    np.testing.assert_array_equal(series.adjacency, adjacency)
    assert series.start_time == np.datetime64("2012-03-04T08:00") and series.step_minutes == 5
    assert series.node_ids == tuple(frame.columns)
    write_adj_pkl(tmp_path / "metr_la" / "adj_mx.pkl", list(frame.columns)[:3], adjacency[:3, :3])
    with pytest.raises(DataFileError, match="graph of 3 nodes but the signal has 4"):
        load_dataset("metr_la", data_dir=tmp_path, check_shape=False)


def test_generic_formats(tmp_path):
    rng = np.random.default_rng(3)
    array = rng.uniform(1, 9, size=(50, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", array)
    series = load_dataset(
        "generic",
        path=tmp_path / "a.npy",
        step_minutes=30,
        start_time="2021-05-01T06:00",
        series_name="mine",
    )
    np.testing.assert_array_equal(series.values, array)
    assert series.name == "mine" and series.steps_per_day == 48 and series.time_of_day()[0] == 12
    with pytest.raises(ValueError, match="set step_minutes= and start_time="):
        load_dataset("generic", path=tmp_path / "a.npy")
    frame = pd.DataFrame(array, columns=["u", "v", "w"])
    frame.insert(0, "date", pd.date_range("2020-02-01", periods=50, freq="h").astype(str))
    frame.to_csv(tmp_path / "t.csv", index=False)
    series = load_dataset("generic", path=tmp_path / "t.csv", time_column="date", null_value=None)
    np.testing.assert_allclose(series.values, array, rtol=1e-6)
    assert series.step_minutes == 60 and series.start_time == np.datetime64("2020-02-01T00:00")
    assert series.node_ids == ("u", "v", "w")
    with pytest.raises(ValueError, match="step_minutes=30 but .* steps of 60 min"):
        load_dataset("generic", path=tmp_path / "t.csv", time_column="date", step_minutes=30)
    write_distance_csv(tmp_path / "g.csv", [(0, 7, 1.0)])
    with pytest.raises(DataFileError, match="node index 7 but the signal has 3 nodes"):
        load_dataset(
            "generic",
            path=tmp_path / "a.npy",
            step_minutes=5,
            start_time="2021-01-01",
            graph_path=tmp_path / "g.csv",
        )


@needs_shared
def test_los_loop_matches_the_files():
    series = load_dataset("los_loop")
    frame = pd.read_csv(SHARED_DATA / "los_loop" / "los_speed.csv")
    np.testing.assert_array_equal(series.values, frame.to_numpy().astype(np.float32))
    assert series.num_nodes == 207 and series.num_steps == 2016 and series.steps_per_day == 288
    assert series.node_ids == tuple(frame.columns)
    import pickle

    with open(SHARED_DATA / "los_loop" / "adj_mx.pkl", "rb") as f:
        ids, _, adjacency = pickle.load(f, encoding="latin1")
    assert list(ids) == list(frame.columns)
    np.testing.assert_array_equal(series.adjacency, adjacency)
    assert (
        series.start_time == np.datetime64("2012-03-01T00:00") and series.day_of_week()[0] == 3
    )  # a Thursday


@needs_shared
def test_sz_taxi_etth_exchange_match_the_files():
    sz = load_dataset("sz_taxi")
    raw = np.load(SHARED_DATA / "sz_taxi" / "SZ_taxi.npz")["data"][:, :, 0].astype(np.float32)
    np.testing.assert_array_equal(np.isnan(sz.values), raw == 0)
    np.testing.assert_array_equal(np.nan_to_num(sz.values), raw)
    assert sz.steps_per_day == 96 and sz.adjacency.shape == (156, 156)
    np.testing.assert_array_equal(
        sz.adjacency, np.loadtxt(SHARED_DATA / "sz_taxi" / "SZ_taxi_adj.csv", delimiter=",")
    )
    ett = load_dataset("etth1")
    frame = pd.read_csv(SHARED_DATA / "ett" / "ETTh1.csv")
    np.testing.assert_array_equal(
        ett.values, frame.iloc[:, 1:].to_numpy().astype(np.float32)
    )  # zeros kept
    assert (
        ett.start_time == np.datetime64("2016-07-01T00:00")
        and ett.steps_per_day == 24
        and ett.adjacency is None
    )
    rates = load_dataset("exchange_rate")
    with gzip.open(SHARED_DATA / "lstnet" / "exchange_rate.txt.gz") as f:
        np.testing.assert_array_equal(rates.values, np.loadtxt(f, delimiter=",").astype(np.float32))
    assert rates.steps_per_day == 1


@needs_shared
def test_recorded_hashes_match_shared_files_and_mismatch_is_reported(tmp_path):
    for spec in DATASETS.values():
        if spec.in_shared:
            path = SHARED_DATA / spec.folders[0] / spec.signal.filename
            assert (
                path.stat().st_size == spec.signal.size and sha256_of(path) == spec.signal.sha256
            ), spec.name
    folder = tmp_path / "los_loop"
    folder.mkdir()
    shutil.copy(SHARED_DATA / "los_loop" / "adj_mx.pkl", folder)
    content = (SHARED_DATA / "los_loop" / "los_speed.csv").read_bytes()
    (folder / "los_speed.csv").write_bytes(content[:-10])
    with pytest.raises(
        DataFileError, match="size .* but the published los_speed.csv has 3402125 bytes"
    ):
        load_dataset("los_loop", data_dir=tmp_path)
    (folder / "los_speed.csv").write_bytes(content.replace(b"64.375", b"64.376", 1))
    with pytest.raises(
        DataFileError, match="SHA-256 .* but the published los_speed.csv has 7b732d"
    ):
        load_dataset("los_loop", data_dir=tmp_path)
    assert load_dataset("los_loop", data_dir=tmp_path, verify=False).num_nodes == 207


@needs_shared
def test_pems_graphs_from_shared_folder(tmp_path):
    write_pems_npz(tmp_path / "pems08" / "PEMS08.npz", num_steps=300, num_nodes=170)
    shutil.copytree(SHARED_DATA / "pems_graphs", tmp_path / "pems_graphs")
    series = load_dataset("pems08", data_dir=tmp_path, check_shape=False)
    edges = pd.read_csv(SHARED_DATA / "pems_graphs" / "PEMS08_distance.csv")
    expected = np.zeros((170, 170), np.float32)
    expected[edges["from"], edges["to"]] = 1.0
    np.testing.assert_array_equal(series.adjacency, expected)
    assert "PEMS08_distance.csv" in series.source
    write_pems_npz(tmp_path / "pems03" / "PEMS03.npz", num_steps=300, num_nodes=358)
    pems03 = load_dataset("pems03", data_dir=tmp_path, check_shape=False)
    matrix = pd.read_csv(
        SHARED_DATA / "pems_graphs" / "PEMS03_adjmatrix_stcgcn.csv", index_col=0
    ).to_numpy()
    np.testing.assert_array_equal(pems03.adjacency, matrix.astype(np.float32))
    write_pems_npz(tmp_path / "pems07" / "PEMS07.npz", num_steps=50, num_nodes=300)
    with pytest.raises(DataFileError, match="graph of 883 nodes but the signal has 300"):
        load_dataset("pems07", data_dir=tmp_path, check_shape=False)


@needs_shared
def test_shared_sets_make_splits():
    for name in ("los_loop", "sz_taxi", "etth2", "exchange_rate"):
        splits = make_forecast_splits(load_dataset(name))
        assert min(len(splits.train), len(splits.val), len(splits.test)) > 0, name


@needs_shared
@pytest.mark.parametrize(
    "name, folder, file, train, val, test",
    [  # the long-horizon benchmarks' cuts, from their definitions (not from the registry)
        ("etth1", "ett", "ETTh1.csv", 12 * 30 * 24, 4 * 30 * 24, 4 * 30 * 24),
        ("exchange_rate", "lstnet", "exchange_rate.txt.gz", int(7588 * 0.7), None, int(7588 * 0.2)),
    ],
)
def test_benchmark_cuts_and_per_node_zscore(name, folder, file, train, val, test):
    """ETT: 12/4/4 months; exchange_rate: int(70 %) train, int(20 %) test, the rest validation;
    per_node_zscore=True gives (raw - mean) / std per column over the training rows (ddof 0), as
    the benchmarks' sklearn StandardScaler does."""
    path = SHARED_DATA / folder / file
    if file.endswith(".csv"):
        raw = pd.read_csv(path).iloc[:, 1:].to_numpy(np.float64)
    else:
        with gzip.open(path) as f:
            raw = np.loadtxt(f, delimiter=",")
    val = len(raw) - train - test if val is None else val
    splits = make_forecast_splits(load_dataset(name), in_steps=96, out_steps=24)
    assert splits.boundaries == (train, train + val, train + val + test)
    assert splits.val.target_start(0) == train and splits.test.target_start(0) == train + val
    assert len(splits.test) == test - 24 + 1  # every test window, inputs reaching back 96 steps
    scaled = load_dataset(name, per_node_zscore=True).values
    mean, std = raw[:train].mean(0), raw[:train].std(0)
    np.testing.assert_allclose(scaled, (raw - mean) / std, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="per_node_zscore must be True or False"):
        load_dataset(name, per_node_zscore="yes")
