"""Node-sharded training end to end in one process: `train.mesh_shape=(2, 4)` on 8 CPU devices
trains, validates every epoch, tests the best checkpoint, writes its tables, resumes after a stop
to the uninterrupted run's result, and gives the one-device run's test metrics.

The tiny synthetic set with 8 sensors (4 devices along "nodes" hold 2 each). The one-device run
reduces in another order; Adam turns the float32 round-off of the key biases' gradient (zero in
exact arithmetic: attention ignores a per-query shift of the scores) into parameter differences
of ~1e-5, so test metrics are compared at `RTOL_ONE_DEVICE`; the resumed run repeats the
uninterrupted one's computations and is compared at `RTOL_RESUME`.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from eala_jax.train import DataConfig, train_and_evaluate
from tests.train.train_helpers import drop_time, tiny_config

RTOL_ONE_DEVICE = 1e-4
RTOL_RESUME = 1e-6
DATA = DataConfig(name="synthetic", options=(("num_days", 3), ("num_nodes", 8)))


def config(**train: object):
    return dataclasses.replace(tiny_config(checkpoint_every_steps=3, **train), data=DATA)


SHARDED = config(parallel="jit", mesh_shape=(2, 4))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Workdirs and results: one device, node-sharded uninterrupted, node-sharded stopped after
    step 5 (newest checkpoint: step 3) and resumed."""
    root = tmp_path_factory.mktemp("node_sharded")
    results = {
        "one_device": train_and_evaluate(config(parallel="none"), root / "one_device"),
        "sharded": train_and_evaluate(SHARDED, root / "sharded"),
    }
    assert train_and_evaluate(SHARDED, root / "resumed", stop_at_step=5) is None
    results["resumed"] = train_and_evaluate(SHARDED, root / "resumed")
    return root, results


def test_node_sharded_run_trains_evaluates_and_writes_its_tables(runs):
    root, results = runs
    sharded = results["sharded"]
    assert sharded["steps"] == 8 and sharded["epochs"] == 2
    assert [row["step"] for row in sharded["history"]] == [4, 8]
    for name in ("results.json", "results.md", "metrics.csv", "test_windows.npz", "config.json"):
        assert (root / "sharded" / name).is_file(), name
    saved = json.loads((root / "sharded" / "results.json").read_text())
    assert saved["test"]["model"]["mae_mean"] == pytest.approx(sharded["test"]["model"]["mae_mean"])
    assert "### model" in (root / "sharded" / "results.md").read_text()
    windows = dict(np.load(root / "sharded" / "test_windows.npz"))
    assert windows["count"].sum() == pytest.approx(sum(sharded["test"]["model"]["count"]))


def test_node_sharded_test_metrics_equal_one_device(runs):
    _, results = runs
    for split in ("test", "val"):
        got, want = results["sharded"][split]["model"], results["one_device"][split]["model"]
        np.testing.assert_array_equal(got["count"], want["count"])
        for key in ("mae", "rmse", "mape"):
            np.testing.assert_allclose(got[key], want[key], rtol=RTOL_ONE_DEVICE, err_msg=key)
    for got, want in zip(
        results["sharded"]["history"], results["one_device"]["history"], strict=True
    ):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=RTOL_ONE_DEVICE)


def test_node_sharded_resume_gives_the_uninterrupted_run(runs):
    _, results = runs
    resumed, sharded = results["resumed"], results["sharded"]
    for got, want in zip(drop_time(resumed["history"]), drop_time(sharded["history"]), strict=True):
        assert got == pytest.approx(want, rel=RTOL_RESUME)
    for key in ("mae", "rmse", "mape"):
        np.testing.assert_allclose(
            resumed["test"]["model"][key], sharded["test"]["model"][key], rtol=RTOL_RESUME
        )
