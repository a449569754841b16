"""Training over 2 processes (`jax.distributed` over loopback, 2 CPU devices each, started from
the command line, stopped and resumed twice from every process) equals training uninterrupted in 1
process on as many devices (4) with the same global batch: losses, validation and test metrics,
final parameters and the prediction handed to the plot. Every process returns the same results;
only process 0 prints, logs, plots and writes results.

The `runs` fixture starts tests/train/multiprocess_worker.py three times at once (the 2 processes
and the 1-process reference, also under `jax.distributed` so that all use the same collectives)
and waits for them, bounded by `TIMEOUT_S`; their output is shown on failure. About 1 minute of
CPU time in all (see docs/training.md).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from eala_jax.train import IncompatibleWorkdirError, apply_overrides, train_and_evaluate
from experiments import train as train_cli
from tests.train.multiprocess_worker import CONFIG
from tests.train.train_helpers import drop_time, write_config_file

TIMEOUT_S = 300
NUM_PROCESSES = 2
RUNS = ("processes", "reference")  # the workdirs of the 2-process run and of the reference
# The reference uses the same collectives (gloo) over the same 4 devices: the runs agreed to the
# last bit here; the tolerance leaves room for another reduction order elsewhere. (With in-process
# collectives instead, Adam turns the round-off of the key biases' gradient, zero in exact
# arithmetic, into differences of 1e-5 in those biases.)
RTOL = 1e-6
ATOL = 1e-7
# Smaller, slower code from XLA: the test's compilations take ~40 % less CPU time.
XLA_FLAGS = "--xla_backend_optimization_level=0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env() -> dict[str, str]:
    """The environment of a worker process: this checkout importable, CPU only, the test's XLA
    flags, the system allocator."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), JAX_PLATFORMS="cpu", EALA_TCMALLOC="0")
    env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_FLAGS}".strip()
    return env


def run_workers(commands: list[list[str]], logs: list[Path], timeout_s: float) -> None:
    """Starts `python <command>` for every command at once (the repository as working folder,
    output to its log), waits for all within `timeout_s`, kills what is left; fails the test with
    every log's tail unless all exited 0."""
    root = Path(__file__).resolve().parents[2]
    env, procs = worker_env(), []
    for command, log_path in zip(commands, logs, strict=True):
        with log_path.open("w") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, *command],
                    cwd=root,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    deadline = time.monotonic() + timeout_s
    try:
        codes = [p.wait(timeout=max(deadline - time.monotonic(), 0.1)) for p in procs]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if codes != [0] * len(commands):
        shown = "\n".join(f"--- {log.name} ---\n{log.read_text()[-5000:]}" for log in logs)
        what = f"exit codes {codes}" if codes else f"no end within {timeout_s} s"
        pytest.fail(f"the training processes failed ({what}):\n{shown}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """The workers' folder once all ended: the `processes/` and `reference/` workdirs, each
    process's report (`<run>_<id>.json`), log (`log_<run>_<id>.txt`) and predictions."""
    out = tmp_path_factory.mktemp("multiprocess")
    write_config_file(out / "config.py", CONFIG)
    address = {"processes": f"127.0.0.1:{free_port()}", "reference": f"127.0.0.1:{free_port()}"}
    jobs = [("processes", NUM_PROCESSES, i) for i in range(NUM_PROCESSES)] + [("reference", 1, 0)]
    commands = [
        ["-m", "tests.train.multiprocess_worker", str(out), address[run], str(count), str(index)]
        for run, count, index in jobs
    ]
    logs = [out / f"log_{run}_{index}.txt" for run, _, index in jobs]
    run_workers(commands, logs, TIMEOUT_S)
    return out


def newest_state(workdir: Path) -> tuple[int, dict[str, np.ndarray]]:
    """(step, {leaf path: array}) of the newest resumable checkpoint's state, read as saved."""
    step = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    state = ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(step) / "state")
    leaves = jax.tree_util.tree_leaves_with_path(state)
    return step, {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def report(out: Path, run: str, process: int = 0) -> dict:
    return json.loads((out / f"{run}_{process}.json").read_text())


def log(out: Path, run: str, process: int = 0) -> str:
    return (out / f"log_{run}_{process}.txt").read_text()


def test_two_processes_stopped_and_resumed_train_as_one_process(runs):
    reference = json.loads((runs / "reference" / "results.json").read_text())
    results = json.loads((runs / "processes" / "results.json").read_text())
    assert results["steps"] == reference["steps"] == 8
    assert results["epochs"] == 2 and results["stop_reason"] == "max_epochs"
    for row, expected in zip(results["history"], reference["history"], strict=True):
        for key in ("step", "train_loss", "val_mae", "val_rmse", "val_mape", "lr"):
            assert row[key] == pytest.approx(expected[key], rel=RTOL), key
    for split in ("test", "val"):
        for key in ("mae", "rmse", "mape", "count", "mape_count"):
            np.testing.assert_allclose(
                results[split]["model"][key], reference[split]["model"][key], rtol=RTOL
            )
    (step, got), (reference_step, expected) = (newest_state(runs / r) for r in RUNS)
    assert step == reference_step == 8 and got.keys() == expected.keys()
    assert len(got) > 100  # parameters and Adam's two moments of each
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=RTOL, atol=ATOL, err_msg=key)
    first = log(runs, "processes")
    assert "Changed on resume: train.max_epochs 1 -> 2." in first
    assert f"Resuming {(runs / 'processes').absolute()} from step 6 (epoch 1)." in first


def test_per_window_test_errors_are_those_of_one_process(runs):
    got, expected = (dict(np.load(runs / r / "test_windows.npz")) for r in RUNS[::-1])
    assert got.keys() == expected.keys() and got["count"].shape == (162,)
    np.testing.assert_array_equal(got["count"], expected["count"])
    for key in ("abs_err", "sq_err"):
        np.testing.assert_allclose(got[key], expected[key], rtol=RTOL, err_msg=key)


def test_the_prediction_is_assembled_in_window_order_on_process_zero_only(runs):
    expected = dict(np.load(runs / "predictions_reference_0.npz"))
    got = dict(np.load(runs / "predictions_processes_0.npz"))
    assert got["pred"].shape == expected["pred"].shape == (162, 12, 6)  # every test window
    np.testing.assert_array_equal(got["target"], expected["target"])
    np.testing.assert_array_equal(got["mask"], expected["mask"])
    np.testing.assert_allclose(got["pred"], expected["pred"], rtol=RTOL, atol=1e-5)
    assert not list(runs.glob("predictions_*_1.npz"))
    assert report(runs, "processes", 0)["plots"] == [
        "processes_first:learning_curve",
        "processes_first:predictions",
        "processes:learning_curve",
        "processes:predictions",
    ]
    assert report(runs, "processes", 1)["plots"] == []


def test_every_process_returns_the_same_results(runs):
    """The metric sums of each global batch reach every process whole: the same tables."""
    first, second = (report(runs, "processes", i)["results"] for i in range(NUM_PROCESSES))
    for split in ("test", "val"):
        for key, value in first[split]["model"].items():
            np.testing.assert_array_equal(second[split]["model"][key], value, err_msg=key)
    assert drop_time(second["history"]) == drop_time(first["history"])


def test_only_process_zero_prints_and_writes_results(runs):
    first, second = log(runs, "processes", 0), log(runs, "processes", 1)
    for line in ("Data synthetic:", "epoch   2  step      8", "# tiny: synthetic", "Resuming"):
        assert line in first and line not in second, line
    for name in ("results.json", "results.md", "metrics.csv", "metrics.jsonl", "config.json"):
        assert (runs / "processes" / name).is_file(), name
    rows = (runs / "processes" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [4, 8]  # one writer: no row twice


def test_one_process_evaluates_the_finished_run_but_does_not_resume_it(runs, tmp_path):
    """A finished 2-process workdir is re-evaluated by one process (8 devices here) to the same
    tables; training it further there is refused before any step: its data position counts the
    rows of one of 2 processes."""
    workdir = Path(shutil.copytree(runs / "processes", tmp_path / "processes"))
    expected = json.loads((workdir / "results.json").read_text())
    results = train_and_evaluate(apply_overrides(CONFIG, ["plots=false"]), workdir)
    assert results["steps"] == 8
    for split in ("test", "val"):
        for key in ("mae", "rmse", "mape"):
            np.testing.assert_allclose(
                results[split]["model"][key], expected[split]["model"][key], rtol=1e-5
            )
    with pytest.raises(IncompatibleWorkdirError, match="resume with as many processes as the"):
        train_and_evaluate(apply_overrides(CONFIG, ["plots=false", "train.max_epochs=3"]), workdir)
    assert json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 8


def test_a_run_over_processes_refuses_pmap_and_fewer_devices(runs):
    errors = report(runs, "processes", 1)["errors"]
    assert errors["train.parallel=pmap"] == (
        "train.parallel='pmap' runs within one process, but this run has 2 processes; use "
        "train.parallel='jit'"
    )
    assert errors["train.num_devices=1"].startswith(
        "train.num_devices=1: a run over 2 processes uses all 2 local devices of each"
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--coordinator", "127.0.0.1:4455"], "also needs --num-processes, --process-id"),
        (["--distributed", "--process-id", "0"], "--distributed takes no --process-id"),
        (
            ["--coordinator", "10.0.0.2", "--num-processes", "2", "--process-id", "0"],
            "--coordinator='10.0.0.2': expected HOST:PORT",
        ),
        (
            ["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"],
            "--process-id=2: expected 0 .. 1 (--num-processes=2)",
        ),
        (
            ["--coordinator", "h:1", "--num-processes", "0", "--process-id", "0"],
            "--num-processes=0: expected at least 1",
        ),
    ],
)
def test_command_line_checks_the_distributed_flags(flags, message, tmp_path, capsys):
    argv = ["--config", str(tmp_path / "none.py"), "--workdir", str(tmp_path / "w"), *flags]
    assert train_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
