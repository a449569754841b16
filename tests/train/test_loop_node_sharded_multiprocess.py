"""Node-sharded training over 2 processes (`jax.distributed` over loopback, 2 CPU devices each):
under `train.mesh_shape` (2, 2) (each process its rows, both halves of the sensors) and (1, 4)
(both processes every row, each its half of the sensors) the mesh spans both processes' devices,
the run trains an epoch, stops, resumes, evaluates and writes its tables, and its losses,
parameters and test metrics equal one process's with the same 4 devices and mesh, uninterrupted.
A shape over one process's devices only is refused (before, it trained diverging copies).

The `runs` fixture starts tests/train/node_sharded_worker.py for both shapes at once (2 processes
and the 1-process reference each, all under `jax.distributed` so that all use the same gloo
collectives), bounded by `TIMEOUT_S`; their output is shown on failure.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.train.test_loop_multiprocess import ATOL, RTOL, free_port, newest_state, run_workers
from tests.train.train_helpers import drop_time

TIMEOUT_S = 400
MESHES = ("2,2", "1,4")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("node_sharded_multiprocess")
    jobs = []
    for mesh in MESHES:
        address = {2: f"127.0.0.1:{free_port()}", 1: f"127.0.0.1:{free_port()}"}
        jobs += [(mesh, 2, 0, address[2]), (mesh, 2, 1, address[2]), (mesh, 1, 0, address[1])]
    commands = [
        ["-m", "tests.train.node_sharded_worker", str(out), address, str(count), str(index), mesh]
        for mesh, count, index, address in jobs
    ]
    logs = [out / f"log_{m.replace(',', 'x')}_{c}_{i}.txt" for m, c, i, _ in jobs]
    run_workers(commands, logs, TIMEOUT_S)
    return out


def report(out: Path, run: str, process: int = 0) -> dict:
    return json.loads((out / f"{run}_{process}.json").read_text())


@pytest.mark.parametrize("mesh", ["2x2", "1x4"])
def test_two_processes_under_a_node_sharded_mesh_train_as_one_process(runs, mesh):
    got_dir, want_dir = runs / f"processes_{mesh}", runs / f"reference_{mesh}"
    reference = json.loads((want_dir / "results.json").read_text())
    results = json.loads((got_dir / "results.json").read_text())
    assert results["steps"] == reference["steps"] == 8 and results["epochs"] == 2
    for row, expected in zip(results["history"], reference["history"], strict=True):
        for key in ("step", "train_loss", "val_mae", "val_rmse", "lr"):
            assert row[key] == pytest.approx(expected[key], rel=RTOL), key
    for split in ("test", "val"):
        for key in ("mae", "rmse", "mape", "count"):
            np.testing.assert_allclose(
                results[split]["model"][key], reference[split]["model"][key], rtol=RTOL
            )
    (step, got), (reference_step, expected) = newest_state(got_dir), newest_state(want_dir)
    assert step == reference_step == 8 and got.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=RTOL, atol=ATOL, err_msg=key)
    # Both processes return the whole tables; process 0 alone wrote them.
    first, second = (report(runs, f"processes_{mesh}", i)["results"] for i in range(2))
    assert drop_time(first["history"]) == drop_time(second["history"])
    assert first["test"]["model"]["mae"] == second["test"]["model"]["mae"]
    for name in ("results.json", "results.md", "metrics.csv", "test_windows.npz"):
        assert (got_dir / name).is_file(), name
    windows, want_windows = (dict(np.load(d / "test_windows.npz")) for d in (got_dir, want_dir))
    np.testing.assert_array_equal(windows["count"], want_windows["count"])
    np.testing.assert_allclose(windows["abs_err"], want_windows["abs_err"], rtol=RTOL)


def test_a_mesh_over_one_process_devices_is_refused(runs):
    errors = report(runs, "processes_2x2", 1)["errors"]
    assert errors["train.mesh_shape=[1, 2]"].startswith(
        "train.mesh_shape=(1, 2): data x nodes = 2 must equal the device count 4"
    )
