"""train_and_evaluate end to end on the tiny synthetic set: files, resume == uninterrupted,
determinism, a changed budget on resume, unreadable checkpoints, bad input before training, NaN
stop, the command line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from eala_jax.metrics import subset_scores
from eala_jax.train import (
    TEST_WINDOWS_FILE,
    Checkpoints,
    IncompatibleWorkdirError,
    TrainingDivergedError,
    apply_overrides,
    train_and_evaluate,
)
from eala_jax.train.checkpoint import CheckpointUnreadableError
from experiments import train as train_cli
from tests.train.train_helpers import (
    drop_time,
    final_state,
    state_template,
    tiny_config,
    with_model,
    write_config_file,
)

# 2 epochs of 4 steps on 8 devices (jit mesh), a resumable checkpoint every 3 steps.
CONFIG = tiny_config(parallel="jit", checkpoint_every_steps=3)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference run, through the command line, with plots and TensorBoard on."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    cfg = dataclasses.replace(CONFIG, plots=True, tensorboard=True)
    config_file = write_config_file(tmp / "tiny.py", cfg)
    workdir = tmp / "run"
    assert train_cli.main(["--config", str(config_file), "--workdir", str(workdir)]) == 0
    return workdir, json.loads((workdir / "results.json").read_text())


def test_per_window_test_errors_pool_to_the_reported_test_metrics(uninterrupted):
    workdir, results = uninterrupted
    sums = dict(np.load(workdir / TEST_WINDOWS_FILE))
    model = results["test"]["model"]
    assert {k: v.shape for k, v in sums.items()} == {
        k: (162,) for k in ("abs_err", "sq_err", "count")
    }  # every test window of the tiny set
    assert sums["count"].sum() == np.sum(model["count"])
    whole = subset_scores(sums, slice(None))  # host float64 sums against the device sums
    assert whole["mse"] == pytest.approx(model["mse_mean"], rel=1e-5)
    assert whole["mae"] == pytest.approx(model["mae_mean"], rel=1e-5)


def test_run_writes_results_logs_plots_and_config(uninterrupted, capsys):
    workdir, results = uninterrupted
    for name in (
        "config.json",
        "metrics.csv",
        "metrics.jsonl",
        "results.json",
        "results.md",
        "learning_curve.png",
        "predictions.png",
    ):
        assert (workdir / name).is_file(), name
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((workdir / "config.json").read_text())["train"]["parallel"] == "jit"
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [4, 8]
    assert len((workdir / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs
    assert results["steps"] == 8 and results["stop_reason"] == "max_epochs"
    assert results["best_epoch"] in (1, 2)
    for split in ("test", "val"):
        assert set(results[split]) == {
            "model",
            "last_value",
            "historical_average",
            "seasonal_naive",
        }
        assert results[split]["seasonal_naive"]["period"] == "day"  # 3 days: a week is too long
        for table in results[split].values():
            assert len(table["mae"]) == 12 and np.isfinite(table["mae_mean"])
    md = (workdir / "results.md").read_text()
    assert "| 3 |" in md and "| 12 |" in md and "mean 1-12" in md and "historical_average" in md
    # The lr decays x0.1 at the milestone (epoch 1).
    assert rows[0]["lr"] == pytest.approx(1e-3) and rows[1]["lr"] == pytest.approx(1e-4)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run killed after step 7: resumable checkpoints 4 (end of epoch 1) and 6 (mid-epoch 2)."""
    workdir = tmp_path_factory.mktemp("interrupted") / "run"
    assert train_and_evaluate(CONFIG, workdir, stop_at_step=7) is None
    return workdir


def copy_of(workdir: Path, tmp_path: Path) -> Path:
    """A private copy of a module fixture's workdir (a test may change or resume it)."""
    return Path(shutil.copytree(workdir, tmp_path / workdir.name))


def test_resume_equals_uninterrupted(uninterrupted, interrupted, tmp_path):
    """Kill after step 7 (last checkpoint: step 6, mid-epoch), resume to the end: same params and
    metrics."""
    reference_dir, reference = uninterrupted
    workdir = copy_of(interrupted, tmp_path)
    ckpt = Checkpoints(workdir)
    assert ckpt.latest_step() == 6
    ckpt.close()
    assert not (workdir / "results.json").exists()
    # Determinism: this second, independent run agrees with the reference on its first epoch.
    first = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[0])
    assert drop_time([first]) == drop_time(reference["history"][:1])
    # Runtime and budget keys may differ; another fetch cadence changes no result.
    resumed = train_and_evaluate(
        apply_overrides(CONFIG, ["progress_bar=true", "train.log_every=3"]), workdir
    )
    assert resumed["steps"] == 8
    for split in ("test", "val"):
        for key in ("mae_mean", "rmse_mean", "mape_mean"):
            assert resumed[split]["model"][key] == pytest.approx(
                reference[split]["model"][key], rel=1e-6, abs=1e-6
            )
    assert drop_time(resumed["history"]) == drop_time(reference["history"])
    assert_same_final_state(workdir, reference_dir)


def assert_same_final_state(workdir: Path, reference_dir: Path) -> None:
    template = jax.tree.map(np.asarray, state_template(CONFIG))
    for a, b in zip(
        jax.tree.leaves(final_state(workdir, template)),
        jax.tree.leaves(final_state(reference_dir, template)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------------
# A changed budget on resume
# --------------------------------------------------------------------------------------------
def test_budget_may_change_on_resume_and_the_run_goes_on(uninterrupted, tmp_path, capsys):
    """A run finished at max_epochs=1, resumed with max_epochs=2 (and another patience and
    checkpoint cadence), trains its second epoch and ends where the 2-epoch run ended."""
    reference_dir, reference = uninterrupted
    workdir = tmp_path / "extended"
    short = apply_overrides(CONFIG, ["train.max_epochs=1"])
    first = train_and_evaluate(short, workdir)
    assert first["epochs"] == 1 and first["stop_reason"] == "max_epochs"
    capsys.readouterr()
    longer = apply_overrides(
        CONFIG, ["train.patience=3", "train.checkpoint_every_steps=0", "progress_bar=true"]
    )
    resumed = train_and_evaluate(longer, workdir)
    out = capsys.readouterr().out
    assert "Resuming" in out and "from step 4 (epoch 1)" in out
    assert (
        "Changed on resume: progress_bar False -> True; train.checkpoint_every_steps 3 -> 0; "
        "train.max_epochs 1 -> 2; train.patience 0 -> 3." in out
    )
    assert resumed["epochs"] == 2 and resumed["steps"] == 8
    assert resumed["stop_reason"] == "max_epochs"
    assert drop_time(resumed["history"]) == drop_time(reference["history"])
    for key in ("mae_mean", "rmse_mean", "mape_mean"):
        assert resumed["test"]["model"][key] == pytest.approx(
            reference["test"]["model"][key], rel=1e-6, abs=1e-6
        )
    assert json.loads((workdir / "config.json").read_text())["train"]["max_epochs"] == 2
    assert_same_final_state(workdir, reference_dir)


def test_budget_lowered_below_the_epochs_done_stops_and_tests_the_best(
    uninterrupted, interrupted, tmp_path, capsys
):
    """Killed mid-epoch 2 (checkpoint 6), resumed with max_epochs=1: no step more, epoch 1's best
    checkpoint is tested."""
    _, reference = uninterrupted
    workdir = copy_of(interrupted, tmp_path)
    results = train_and_evaluate(apply_overrides(CONFIG, ["train.max_epochs=1"]), workdir)
    assert "Changed on resume: train.max_epochs 2 -> 1." in capsys.readouterr().out
    assert results["epochs"] == 1 and results["stop_reason"] == "max_epochs"
    assert results["best_epoch"] == 1 and results["steps"] == 6
    assert drop_time(results["history"]) == drop_time(reference["history"][:1])
    assert results["best_val_mae"] == pytest.approx(reference["history"][0]["val_mae"], rel=1e-6)


def test_budget_change_with_another_change_is_refused_naming_the_other(uninterrupted):
    workdir, _ = uninterrupted
    other = apply_overrides(
        CONFIG, ["train.max_epochs=5", "train.seed=3", "model.dropout=0.2", "plots=true"]
    )
    with pytest.raises(IncompatibleWorkdirError) as info:
        train_and_evaluate(other, workdir)
    message = str(info.value)
    assert "model.dropout: saved 0.1 vs now 0.2; train.seed: saved 0 vs now 3)" in message
    assert "max_epochs: saved" not in message and "plots: saved" not in message
    assert "only progress_bar, tensorboard, plots, data.data_dir, train.max_epochs" in message


# --------------------------------------------------------------------------------------------
# Unreadable checkpoints
# --------------------------------------------------------------------------------------------
def overwrite_bytes(workdir: Path, step: int, folder: str = "checkpoints") -> Path:
    """Overwrite the first 64 bytes (a compressed block's header) of the largest array-data file
    of checkpoint `step`'s state; returns its path."""
    files = [p for p in (workdir / folder / str(step) / "state").rglob("d/*") if p.is_file()]
    target = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[:64] = b"\xff" * 64
    target.write_bytes(bytes(data))
    return target


def file_digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_unreadable_newest_checkpoint_falls_back_with_a_warning(
    uninterrupted, interrupted, tmp_path, capsys
):
    """Checkpoint 6's bytes overwritten: a warning names step and file, the run resumes from
    checkpoint 4 and ends where the uninterrupted run ended; checkpoint 6 is kept aside intact."""
    reference_dir, reference = uninterrupted
    workdir = copy_of(interrupted, tmp_path)
    damaged = overwrite_bytes(workdir, 6)
    damaged_digests = file_digests(workdir / "checkpoints" / "6")
    resumed = train_and_evaluate(CONFIG, workdir)
    captured = capsys.readouterr()
    assert f"warning: checkpoint 6 is unreadable: {damaged} does not hold the bytes written" in (
        captured.err
    )
    kept = workdir / "unreadable_checkpoints" / "6"
    assert f"resuming from checkpoint 4 instead (the unreadable one is kept as {kept})" in (
        captured.err
    )
    assert "Resuming" in captured.out and "from step 4 (epoch 1)" in captured.out
    assert file_digests(kept) == damaged_digests  # moved, byte for byte
    assert resumed["steps"] == 8 and drop_time(resumed["history"]) == drop_time(
        reference["history"]
    )
    for key in ("mae_mean", "rmse_mean", "mape_mean"):
        assert resumed["test"]["model"][key] == pytest.approx(
            reference["test"]["model"][key], rel=1e-6, abs=1e-6
        )
    assert_same_final_state(workdir, reference_dir)


def test_no_readable_checkpoint_is_a_clear_error_and_nothing_changes(interrupted, tmp_path):
    workdir = copy_of(interrupted, tmp_path)
    damaged = {step: overwrite_bytes(workdir, step) for step in (4, 6)}
    before = file_digests(workdir)
    with pytest.raises(CheckpointUnreadableError) as info:
        train_and_evaluate(CONFIG, workdir)
    message = str(info.value)
    assert message.startswith(f"no readable checkpoint in {(workdir / 'checkpoints').absolute()}")
    for step, path in damaged.items():
        assert f"checkpoint {step} is unreadable: {path} does not hold the bytes written" in message
    assert "does not fit" not in message
    assert file_digests(workdir) == before


def test_unreadable_checkpoints_without_digests_exit_cleanly_from_the_command_line(
    interrupted, tmp_path
):
    """Checkpoints without SHA256SUMS (written before digests existed): the failure comes from
    orbax itself; the command line says which checkpoints are unreadable, exits with status 1 and
    prints no traceback (orbax's closed event loop used to add 'Event loop is closed' ones)."""
    workdir = copy_of(interrupted, tmp_path)
    for step in (4, 6):
        overwrite_bytes(workdir, step)
        (workdir / "checkpoints" / str(step) / "SHA256SUMS").unlink(missing_ok=True)
    before = file_digests(workdir)
    config_file = write_config_file(tmp_path / "tiny.py", CONFIG)
    root = Path(__file__).resolve().parents[2]
    # EALA_TCMALLOC=0: no restart under tcmalloc, whose one-line notice would open stderr.
    env = dict(os.environ, PYTHONPATH=str(root), JAX_PLATFORMS="cpu", EALA_TCMALLOC="0")
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--config", str(config_file)]
        + ["--workdir", str(workdir)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: no readable checkpoint in "), proc.stderr
    assert "checkpoint 6 is unreadable: reading " in proc.stderr
    assert "checkpoint 4 is unreadable: reading " in proc.stderr
    assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr
    assert file_digests(workdir) == before


def test_unreadable_best_checkpoint_is_a_clear_error(uninterrupted, tmp_path):
    """A finished run only re-evaluates its best checkpoint: overwritten bytes there are named."""
    workdir = copy_of(uninterrupted[0], tmp_path)
    (step,) = [int(p.name) for p in (workdir / "best").iterdir()]
    damaged = overwrite_bytes(workdir, step, folder="best")
    with pytest.raises(CheckpointUnreadableError) as info:
        train_and_evaluate(CONFIG, workdir)
    assert str(info.value) == (
        f"best checkpoint {step} is unreadable: {damaged} does not hold the bytes written (its "
        "SHA-256 differs from SHA256SUMS)"
    )


def test_a_checkpoint_of_other_shapes_does_not_fit(uninterrupted):
    """Orbax alone restores a checkpoint into other shapes without a word; the shapes are
    compared first and every differing leaf is named."""
    workdir, _ = uninterrupted
    other = jax.tree.map(np.asarray, state_template(with_model(CONFIG, feed_forward_dim=8)))
    ckpt = Checkpoints(workdir)
    try:
        with pytest.raises(IncompatibleWorkdirError, match="does not fit") as info:
            ckpt.restore(other)
    finally:
        ckpt.close()
    assert not isinstance(info.value, CheckpointUnreadableError)
    message = str(info.value)
    assert (
        "0.spatial_layers.0.ff_in.kernel.value: checkpoint (16, 16) float32 vs model (16, 8) "
        "float32" in message
    )
    assert message.endswith("and 10 more")  # 6 kernels and biases x (params, Adam mu, Adam nu)


def test_workdir_of_another_run_is_refused(uninterrupted, capsys):
    workdir, _ = uninterrupted
    other = apply_overrides(CONFIG, ["train.learning_rate=0.01"])
    with pytest.raises(
        IncompatibleWorkdirError, match="train.learning_rate: saved 0.001 vs now 0.01"
    ):
        train_and_evaluate(other, workdir)
    stray = workdir.parent / "stray"
    (stray / "checkpoints" / "3").mkdir(parents=True)
    with pytest.raises(IncompatibleWorkdirError, match="holds checkpoints but no config.json"):
        train_and_evaluate(CONFIG, stray)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.spatial_attention=flash"], "unknown attention 'flash'"),
        (["data.num_nodes=207"], "data.num_nodes=207 but data set 'synthetic' has 6 nodes"),
        (
            ["data.steps_per_day=96"],
            "data.steps_per_day=96 but data set 'synthetic' has 288 steps per day",
        ),
        (["train.batch_size=12"], "train.batch_size=12 is not divisible by the device count 8"),
        (["train.batch_size=4096"], "train.batch_size=4096 is larger than the training split"),
        (["data.name=no_such_set"], "unknown data set 'no_such_set'"),
    ],
)
def test_bad_input_fails_before_training(tmp_path, overrides, message):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(apply_overrides(CONFIG, overrides), workdir)
    assert not (workdir / "checkpoints").exists() and not (workdir / "metrics.csv").exists()


def test_command_line_reports_errors(tmp_path, capsys):
    config_file = write_config_file(tmp_path / "tiny.py", CONFIG)
    code = train_cli.main(
        ["--config", str(config_file), "--workdir", str(tmp_path / "r"), "--set", "train.nope=1"]
    )
    assert code == 1
    assert "error: unknown config key 'train.nope'" in capsys.readouterr().err
    assert (
        train_cli.main(
            ["--config", str(config_file), "--workdir", str(tmp_path / "r"), "--print-config"]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["name"] == "tiny"


@pytest.mark.parametrize(
    "log_every, checkpoint_every_steps, batches_fed",
    [
        (1, 0, 5),  # fetched at every step
        (2, 0, 6),  # fetched at step 6
        (50, 0, 8),  # fetched at the end of epoch 2 (step 8)
        (50, 3, 6),  # fetched before the checkpoint of step 6, which is not written
    ],
)
def test_nan_loss_names_its_step_whatever_the_fetch_cadence(
    tmp_path, monkeypatch, log_every, checkpoint_every_steps, batches_fed
):
    """A poisoned input (NaN values from the 5th training batch on). The measurements stay on
    the devices until a fetch (every `log_every` steps, before a checkpoint, at an epoch end), so
    the run goes on until then; the error still names step 5, and no checkpoint after step 4 is
    written."""
    from eala_jax.train.sharding import MeshParallel  # the path of parallel="none" and "jit"

    put_batch = MeshParallel.put_batch
    seen = {"train": 0}

    def poisoned(self, batch):
        if len(batch["x"]) == CONFIG.train.batch_size:  # training batches (eval ones hold 64)
            seen["train"] += 1
            if seen["train"] >= 5:
                batch = dict(batch, x=np.full_like(batch["x"], np.nan))
        return put_batch(self, batch)

    monkeypatch.setattr(MeshParallel, "put_batch", poisoned)
    cfg = apply_overrides(
        CONFIG,
        [
            "train.parallel=none",
            f"train.log_every={log_every}",
            f"train.checkpoint_every_steps={checkpoint_every_steps}",
        ],
    )
    workdir = tmp_path / "nan"
    with pytest.raises(
        TrainingDivergedError,
        match=r"non-finite training measurements at step 5 \(epoch 2, step 1 of the epoch\): "
        r"loss=nan.* the last good checkpoint \(step 4\) is kept",
    ):
        train_and_evaluate(cfg, workdir)
    assert seen["train"] == batches_fed
    ckpt = Checkpoints(workdir)
    try:
        assert ckpt.latest_step() == 4 and ckpt.best_step() == 4
        state = ckpt.restore(jax.tree.map(np.asarray, state_template(cfg)))[0]
    finally:
        ckpt.close()
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state))
    assert not (workdir / "results.json").exists()


def test_a_finished_run_is_reevaluated_on_other_devices(uninterrupted, tmp_path, capsys):
    """Device path, device count, eval batch and fetch cadence may change on resume: a finished
    jit run on 8 devices, rerun with pmap on 2, only re-evaluates and gives the same tables."""
    reference_dir, reference = uninterrupted
    workdir = copy_of(reference_dir, tmp_path)
    other = apply_overrides(
        CONFIG,
        [
            "train.parallel=pmap",
            "train.num_devices=2",
            "train.eval_batch_size=16",
            "train.log_every=1",
            "plots=true",
            "tensorboard=true",
        ],
    )
    results = train_and_evaluate(other, workdir)
    out = capsys.readouterr().out
    assert (
        "Changed on resume: train.eval_batch_size 64 -> 16; train.log_every 50 -> 1; "
        "train.num_devices None -> 2; train.parallel 'jit' -> 'pmap'." in out
    )
    assert results["steps"] == 8 and drop_time(results["history"]) == drop_time(
        reference["history"]
    )
    for split in ("test", "val"):
        for name in ("model", "last_value", "historical_average"):
            for key in ("mae_mean", "rmse_mean", "mape_mean"):
                assert results[split][name][key] == pytest.approx(
                    reference[split][name][key], rel=1e-5
                ), (split, name, key)


def test_early_stopping_tests_the_best_checkpoint(tmp_path, monkeypatch):
    """Validation MAEs scripted 5, 4, 4.5, 4.2 with patience 2: training stops after epoch 4
    (16 steps), the best checkpoint is epoch 2's (step 8) and it is the one tested."""
    from eala_jax.train import loop as loop_module

    evaluate = loop_module.evaluate_split
    scripted = iter([5.0, 4.0, 4.5, 4.2])
    tested = []

    def val_scripted(run, state, source, **options):
        result, *rest = evaluate(run, state, source, **options)
        if source is run.splits.val:
            value = next(scripted, None)
            if value is not None:  # training epochs; the final evaluations are real
                return {**result, "mae_mean": value}, *rest
        if source is run.splits.test:
            tested.append(run.dp.host_state(state))
        return result, *rest

    monkeypatch.setattr(loop_module, "evaluate_split", val_scripted)
    cfg = apply_overrides(
        CONFIG, ["train.parallel=none", "train.max_epochs=10", "train.patience=2"]
    )
    results = train_and_evaluate(cfg, tmp_path / "run")
    assert (results["epochs"], results["steps"]) == (4, 16)
    assert (results["stop_reason"], results["best_epoch"], results["best_val_mae"]) == (
        "early_stopping",
        2,
        4.0,
    )
    assert [row["val_mae"] for row in results["history"]] == [5.0, 4.0, 4.5, 4.2]
    ckpt = Checkpoints(tmp_path / "run")
    try:
        assert ckpt.best_step() == 8 and ckpt.latest_step() == 16
        best = ckpt.restore_best(jax.tree.map(np.asarray, state_template(cfg)))
    finally:
        ckpt.close()
    (state,) = tested
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(best), strict=True):
        np.testing.assert_array_equal(a, b)
