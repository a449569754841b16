"""What a user meets when things go wrong around a run (issue 21, items 5, 8 and 9): a workdir that
cannot be written, a checkpoint save that fails (a file-size limit standing in for a full disk),
Ctrl-C, an array file without its step and start, and the results table of a short horizon."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from eala_jax.data import load_dataset
from eala_jax.train import Checkpoints, DataConfig, train_and_evaluate
from eala_jax.train import session as session_module
from eala_jax.train.checkpoint import (
    CheckpointSaveError,
    WorkdirNotWritableError,
    ensure_writable_workdir,
)
from eala_jax.train.results import table_horizons, tables_markdown
from experiments import train as train_cli
from tests.train.train_helpers import state_template, tiny_config, write_config_file

ROOT = Path(__file__).resolve().parents[2]


def command_line(config_file: Path, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "experiments.train", "--config", str(config_file)] + [
        "--workdir",
        str(workdir),
    ]


def child_env() -> dict[str, str]:
    # EALA_TCMALLOC=0: no restart under tcmalloc, whose one-line notice would open stderr.
    return dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", EALA_TCMALLOC="0")


def saved(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir / "checkpoints").iterdir())


# --------------------------------------------------------------------------------------------
# Item 5: writes that fail
# --------------------------------------------------------------------------------------------
def test_a_workdir_that_cannot_be_created_or_written_is_refused_before_the_data(
    tmp_path, monkeypatch, capsys
):
    """`--workdir <a file>/run` gave a NotADirectoryError traceback, `--workdir /sys/fs` a
    PermissionError one after the data was loaded; now one error line, before the data."""

    def no_data(config):
        raise AssertionError("the data was loaded before the workdir was checked")

    monkeypatch.setattr(session_module, "prepare_data", no_data)  # Session.build
    config_file = write_config_file(tmp_path / "tiny.py", tiny_config())
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    cases = [
        (a_file / "run", f"workdir {a_file / 'run'} cannot be created: {a_file} is a file"),
        (a_file, f"workdir {a_file} is a file, not a folder"),
    ]
    if Path("/sys/fs").is_dir() and not os.access("/sys/fs", os.W_OK | os.X_OK):
        cases.append((Path("/sys/fs"), "workdir /sys/fs is not writable: creating a file in it"))
    for workdir, message in cases:
        assert train_cli.main(["--config", str(config_file), "--workdir", str(workdir)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    with pytest.raises(WorkdirNotWritableError, match="is a file, not a folder"):
        ensure_writable_workdir(a_file / "deeper" / "run")
    assert ensure_writable_workdir(tmp_path / "new" / "run").is_dir()
    assert list((tmp_path / "new" / "run").iterdir()) == []  # the probe file is removed


def limit_file_size_during_save(monkeypatch, *, step: int, limit: int = 16_000) -> None:
    """Make the save of `step` fail for real: files over `limit` bytes cannot be written (EFBIG,
    as on a full disk), as `ulimit -f` does; the limit is lifted again after that save."""
    original = Checkpoints.save

    def save(self, at_step, state, *, loop):
        if at_step != step:
            return original(self, at_step, state, loop=loop)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            return original(self, at_step, state, loop=loop)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    monkeypatch.setattr(Checkpoints, "save", save)


def test_a_failed_save_names_the_file_keeps_the_previous_checkpoint_and_the_run_resumes(
    tmp_path, monkeypatch, capsys, caplog
):
    """A save that failed raised orbax's `ValueError: OUT_OF_RANGE ...` (with its thread
    tracebacks logged); now `CheckpointSaveError` naming the file and why, the partial folder
    removed, checkpoint 1 intact and restorable, and the same call resumes from it."""
    config = tiny_config(checkpoint_every_steps=1, max_epochs=1)
    workdir = tmp_path / "run"
    limit_file_size_during_save(monkeypatch, step=2)
    with pytest.raises(CheckpointSaveError) as caught:
        train_and_evaluate(config, workdir)
    err = caught.value
    message = str(err)
    assert err.step == 2 and message.startswith("saving checkpoint 2 failed: writing ")
    assert str(workdir / "checkpoints" / "2.orbax-checkpoint-tmp") in str(err.path), message
    assert "failed (File too large)" in message
    assert f"the checkpoint of step 1 in {workdir / 'checkpoints'} is intact" in message
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # orbax's thread errors
    assert saved(workdir) == ["1"]  # the partial folder of step 2 is gone
    state, loop = Checkpoints(workdir).restore(state_template(config))
    assert loop.step == 1
    monkeypatch.undo()
    capsys.readouterr()
    results = train_and_evaluate(config, workdir)
    assert f"Resuming {workdir} from step 1 (epoch 0)." in capsys.readouterr().out
    assert results["steps"] == 4 and (workdir / "results.json").is_file()


def test_a_failed_save_on_the_command_line_is_one_error_line_and_status_1(tmp_path):
    """`ulimit -f` on the command line: the raw ValueError OUT_OF_RANGE and ~30 'Event loop is
    closed' tracebacks became one line."""
    config_file = write_config_file(tmp_path / "tiny.py", tiny_config(checkpoint_every_steps=1))
    workdir = tmp_path / "run"
    proc = subprocess.run(
        ["bash", "-c", 'ulimit -f 40 && exec "$@"', "bash", *command_line(config_file, workdir)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: saving checkpoint 1 failed: writing "), proc.stderr
    assert "(File too large)" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr


# --------------------------------------------------------------------------------------------
# Item 8: Ctrl-C
# --------------------------------------------------------------------------------------------
def test_ctrl_c_says_where_the_run_resumes_and_exits_130(tmp_path):
    """SIGINT printed a raw KeyboardInterrupt traceback; now one line with the workdir and the
    newest checkpoint's step, status 130, and that checkpoint restores."""
    config = tiny_config(
        checkpoint_every_steps=1, max_epochs=1000, max_steps_per_epoch=1000, patience=1000
    )
    config_file = write_config_file(tmp_path / "tiny.py", config)
    workdir = tmp_path / "run"
    # A child inherits an ignored SIGINT (pytest run as a shell's background job) but not a
    # handler: with one here the child gets the default, as a terminal's command does.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            command_line(config_file, workdir),
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 240
        while not (workdir / "checkpoints").is_dir() or not any(
            p.name.isdigit() for p in (workdir / "checkpoints").iterdir()
        ):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    steps = [int(name) for name in saved(workdir) if name.isdigit()]
    assert err == (
        f"interrupted: {workdir} holds checkpoints up to step {max(steps)}; the same command "
        f"resumes from step {max(steps)}\n"
    )
    _, loop = Checkpoints(workdir).restore(state_template(config))
    assert loop.step == max(steps)


def test_ctrl_c_before_any_checkpoint_says_the_run_starts_afresh(tmp_path):
    assert train_cli.interrupted_message(str(tmp_path / "run")) == (
        f"interrupted: no checkpoint saved yet in {tmp_path / 'run'}; the same command starts "
        "the run afresh"
    )


# --------------------------------------------------------------------------------------------
# Item 9: a user's own array file, a short horizon
# --------------------------------------------------------------------------------------------
def test_an_array_without_step_and_start_names_the_data_options_to_add(tmp_path, capsys):
    """The error named load_dataset's keywords (`set step_minutes= and start_time=`); on this
    command line they are keys of data.options, and the example it prints works."""
    path = tmp_path / "mine.npz"
    np.savez(path, data=np.random.default_rng(5).uniform(1.0, 9.0, size=(300, 4)))
    config = dataclasses.replace(
        tiny_config(), data=DataConfig(name="generic", options=(("path", str(path)),))
    )
    config_file = write_config_file(tmp_path / "mine.py", config)
    code = train_cli.main(["--config", str(config_file), "--workdir", str(tmp_path / "run")])
    assert code == 1
    err = capsys.readouterr().err
    assert 'add "step_minutes" and "start_time" to data.options, e.g. --set' in err, err
    assert "step_minutes=" not in err and "start_time=" not in err
    example = json.loads(err.split("--set 'data.options=", 1)[1].rstrip().removesuffix("'"))
    assert example["path"] == str(path)
    assert load_dataset("generic", **example).num_steps == 300


def test_results_tables_show_the_last_horizon_and_the_seasonal_period():
    """With a 7-step horizon the tables showed horizons 3 and 6 and the mean, never step 7; the
    seasonal naive's period was only in results.json."""
    assert table_horizons({"mae": np.zeros(7)}) == (3, 6, 7)
    assert table_horizons({"mae": np.zeros(12)}) == (3, 6, 12)
    assert table_horizons({"mae": np.zeros(24)}) == (3, 6, 12, 24)
    assert table_horizons({"mae": np.zeros(2)}) == (2,)
    result = {k: np.arange(1.0, 8.0) for k in ("mae", "rmse", "mape")}
    result.update(mae_mean=4.0, rmse_mean=4.0, mape_mean=4.0)
    markdown = tables_markdown(
        "Test", {"model": result, "seasonal_naive": {**result, "period": "week"}}
    )
    assert "### model\n" in markdown and "### seasonal_naive (period: week)\n" in markdown
    assert markdown.count("| 7 | 7.000 | 7.000 | 7.00 |") == 2
