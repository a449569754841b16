"""tensorflow-datasets copies: each builds into a temporary folder and reads back the exact
arrays."""

import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds

from eala_jax.data import load_dataset
from eala_jax.data.tfds_builders import build_tfds, read_tfds
from tests.data.fixtures import (
    SHARED_DATA,
    needs_shared,
    write_adj_pkl,
    write_distance_csv,
    write_metr_h5,
    write_pems_npz,
)

tfds.disable_progress_bar()


def test_synthetic_round_trip(tmp_path):
    builder_dir = build_tfds("synthetic", tfds_dir=tmp_path, num_days=2)
    back = read_tfds(builder_dir)
    direct = load_dataset("synthetic", num_days=2)
    np.testing.assert_array_equal(
        back.values, direct.values
    )  # NaN in the same places, equal elsewhere
    np.testing.assert_array_equal(back.adjacency, direct.adjacency)
    assert (
        back.start_time,
        back.step_minutes,
        back.steps_per_day,
        back.default_split,
        back.node_ids,
    ) == (
        direct.start_time,
        direct.step_minutes,
        direct.steps_per_day,
        direct.default_split,
        direct.node_ids,
    )
    assert (builder_dir / "dataset_info.json").is_file()
    assert list(builder_dir.glob("*series.array_record*"))


def test_pems08_npz_round_trip_against_numpy(tmp_path):
    source = tmp_path / "source"
    write_pems_npz(source / "pems08" / "PEMS08.npz", num_steps=300, num_nodes=5)
    write_distance_csv(source / "pems08" / "PEMS08.csv", [(0, 4, 3.0), (4, 0, 3.0)])
    back = load_dataset(
        "pems08", data_dir=source, check_shape=False, via_tfds=True, tfds_dir=tmp_path / "tfds"
    )
    flow = np.load(source / "pems08" / "PEMS08.npz")["data"][:, :, 0].astype(np.float32)
    np.testing.assert_array_equal(np.nan_to_num(back.values), flow)
    np.testing.assert_array_equal(np.isnan(back.values), flow == 0)
    assert back.adjacency[0, 4] == 1 and back.adjacency[4, 0] == 1 and back.adjacency.sum() == 2
    assert back.start_time == np.datetime64("2016-07-01T00:00") and back.steps_per_day == 288
    with pytest.raises(
        ValueError, match="was built with"
    ):  # a cached copy with other options is refused
        load_dataset(
            "pems08",
            data_dir=source,
            check_shape=False,
            null_value=None,
            via_tfds=True,
            tfds_dir=tmp_path / "tfds",
        )


def test_metr_la_h5_round_trip_against_pandas(tmp_path):
    source = tmp_path / "source"
    frame = write_metr_h5(
        source / "METR-LA" / "metr-la.h5", num_steps=200, num_nodes=4, start="2012-03-01 00:00:00"
    )
    write_adj_pkl(
        source / "METR-LA" / "adj_mx.pkl", list(frame.columns), np.eye(4, dtype=np.float32)
    )
    back = read_tfds(
        build_tfds("metr_la", tfds_dir=tmp_path / "tfds", data_dir=source, check_shape=False)
    )
    expected = pd.read_hdf(source / "METR-LA" / "metr-la.h5").to_numpy().astype(np.float32)
    np.testing.assert_array_equal(np.nan_to_num(back.values), expected)
    np.testing.assert_array_equal(back.adjacency, np.eye(4))
    assert back.node_ids == tuple(frame.columns)


def test_generic_round_trip(tmp_path):
    array = np.random.default_rng(5).normal(size=(30, 2, 2)).astype(np.float32)
    np.save(tmp_path / "mine.npy", array)
    back = load_dataset(
        "generic",
        path=tmp_path / "mine.npy",
        step_minutes=10,
        start_time="2022-01-01",
        channel=1,
        null_value=None,
        via_tfds=True,
        tfds_dir=tmp_path / "tfds",
    )
    np.testing.assert_array_equal(back.values, np.load(tmp_path / "mine.npy")[:, :, 1])
    assert back.adjacency is None and back.steps_per_day == 144
    # What was treated as missing, and why, survives the copy.
    assert back.missing is not None and (back.missing.num_values, back.missing.marker) == (60, None)


@needs_shared
def test_los_loop_round_trip_against_pandas(tmp_path):
    back = load_dataset("los_loop", via_tfds=True, tfds_dir=tmp_path)
    np.testing.assert_array_equal(
        back.values, pd.read_csv(SHARED_DATA / "los_loop" / "los_speed.csv").to_numpy(np.float32)
    )
    np.testing.assert_array_equal(back.adjacency, load_dataset("los_loop").adjacency)
