"""`train_and_evaluate(config, workdir)`: train to early stopping, keep the best model, test it.

Order of work: validate the config and the workdir, load the data and check it fits, build the run
once (`_Run`: model, optimiser, the device path with its jitted and donated steps, checkpoints),
restore the newest readable checkpoint if the workdir holds one (resume is automatic; a changed
budget, such as more epochs, is logged and applied), train epoch by epoch (validation MAE after
each, best checkpoint kept, early stopping on patience), then evaluate the best checkpoint and the
last-value / historical-average baselines on the test split and write `results.json`,
`results.md`, `metrics.csv`/`.jsonl` and the PNGs.

The host does not wait for the devices at every step: the per-step measurements stay on the
device and are fetched and checked for NaN every `train.log_every` steps, at each checkpoint and
at each epoch end; a non-finite one still names its own step. Everything the loop counts lives in
one typed `LoopState`, saved with each checkpoint.

Several processes (after `jax.distributed.initialize()`) run the same call: each feeds its rows of
every global batch and evaluates its share of the windows; all of them save and restore the
checkpoints together, and only process 0 prints, logs and writes results and plots.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from eala_jax.models import evaluate_baselines
from eala_jax.train.checkpoint import (
    CONFIG_FILE,
    Checkpoints,
    IncompatibleWorkdirError,
    budget_changes,
    check_workdir,
    ensure_writable_workdir,
    sync_processes,
)
from eala_jax.train.config import Config, config_to_dict, validate_config
from eala_jax.train.evaluate import evaluate_split
from eala_jax.train.metric_writers import MetricWriter
from eala_jax.train.prepare import PreparedData, build_model, prepare_data
from eala_jax.train.results import TEST_WINDOWS_FILE, write_results
from eala_jax.train.session import MEASUREMENTS, Session, TrainingDivergedError
from eala_jax.train.state import LoopState

__all__ = [
    "TEST_WINDOWS_FILE",
    "PreparedData",
    "TrainingDivergedError",
    "build_model",
    "prepare_data",
    "train_and_evaluate",
]


def _is_primary() -> bool:
    """Process 0: the one that prints, logs and writes the results files (all save checkpoints)."""
    return jax.process_index() == 0


def _say(*args: Any, **kwargs: Any) -> None:
    """`print` on process 0 only."""
    if _is_primary():
        print(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# One run: what is built once, and the phases that share it
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Run(Session):
    """The parts of one `train_and_evaluate` call that stay fixed while it trains: the `Session`
    and the workdir's checkpoints and outputs."""

    workdir: Path
    checkpoints: Checkpoints
    writer: MetricWriter | None = None
    iterator: Any = None  # the training batches (grain), from the restored position

    @classmethod
    def build(cls, config: Config, workdir: Path) -> _Run:  # type: ignore[override]
        t = config.train
        parts = cls.build_parts(config)
        return cls(
            **parts, workdir=workdir, checkpoints=Checkpoints(workdir, keep=t.keep_checkpoints)
        )

    def open_outputs(self, loop: LoopState) -> None:
        """The metric files (process 0; rewritten to the restored history) and this process's rows
        of the training batches from the restored data position."""
        if _is_primary():
            self.writer = MetricWriter(self.workdir, tensorboard=self.config.tensorboard)
            self.writer.rewrite(loop.history)
        self.iterator = self.train_batches()
        if loop.data_state is None or loop.finished:  # a finished run only evaluates
            return
        try:
            self.iterator.set_state(loop.data_state)
        except ValueError as err:  # grain compares the sampler, which names the rows per process
            raise IncompatibleWorkdirError(
                f"the data position saved in {self.workdir} does not fit this run's loader over "
                f"{jax.process_count()} process(es); resume with as many processes as the run "
                f"that saved it ({str(err).splitlines()[0]})"
            ) from err

    def save(self, host_state: Any, loop: LoopState) -> None:
        """A resumable checkpoint of `host_state` and `loop`, with the iterator's position (every
        process calls it; the positions are equal, process 0's is written)."""
        loop.data_state = self.iterator.get_state()
        self.checkpoints.save(loop.step, host_state, loop=loop)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.checkpoints.close()


def train_and_evaluate(
    config: Config, workdir: str | Path, *, stop_at_step: int | None = None
) -> dict[str, Any] | None:
    """Train `config` in `workdir` (resuming from its latest checkpoint) and evaluate the best
    model.

    Returns the results dict (also written to `workdir/results.json`), or None when
    `stop_at_step` (a preemption drill for tests: stop as if killed, right after that global step,
    without saving anything more) ends the call early. Raises ValueError (or a subclass) for bad
    input before any training (`WorkdirNotWritableError` for a workdir that cannot be created or
    written), `TrainingDivergedError` when the loss turns non-finite, `CheckpointSaveError` when a
    checkpoint cannot be written (the earlier ones stay intact: rerun to resume).
    """
    validate_config(config)
    workdir = ensure_writable_workdir(workdir)  # before the data is loaded
    check_workdir(config, workdir)
    changed = budget_changes(config, workdir)
    run = _Run.build(config, workdir)
    try:
        state, loop = _restore(run, changed)
        sync_processes("eala_jax: workdir checked")  # all have read the config 0 replaces
        if _is_primary():
            (workdir / CONFIG_FILE).write_text(json.dumps(config_to_dict(config), indent=2) + "\n")
        run.open_outputs(loop)
        if not loop.finished and not _train(run, run.dp.put_state(state), loop, stop_at_step):
            return None
        return _finish(run, loop)
    finally:
        run.close()


def _restore(run: _Run, changed: dict[str, tuple[Any, Any]]) -> tuple[Any, LoopState]:
    """The newest readable checkpoint's (host state, loop state) with the stop decision taken
    again under this run's budget; the fresh ones for a new workdir."""
    if run.checkpoints.latest_step() is None:
        return run.initial_state, LoopState()
    _, state, loop = run.checkpoints.restore_newest_readable(
        run.initial_state, warn=lambda message: _say(f"warning: {message}", file=sys.stderr)
    )
    _say(f"Resuming {run.workdir} from step {loop.step} (epoch {loop.epoch}).")
    if changed:
        _say(
            "Changed on resume: "
            + "; ".join(f"{k} {saved!r} -> {now!r}" for k, (saved, now) in changed.items())
            + "."
        )
    # A run stopped at max_epochs or by patience goes on when the budget now allows it; one past
    # a lowered budget stops (and its best checkpoint is tested).
    loop.decide_stop(patience=run.config.train.patience, max_epochs=run.config.train.max_epochs)
    return state, loop


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
class _Pending:
    """Measurements of the steps since the last fetch, still on the device."""

    def __init__(self) -> None:
        self.measurements: list[dict[str, jax.Array]] = []

    def fetch(self, run: _Run, loop: LoopState) -> dict[str, float]:
        """Bring them to the host in one transfer, check them in step order and add their losses
        to the epoch's; returns the newest. Raises `TrainingDivergedError` naming the first step
        whose loss, gradient norm or parameter norm is not finite."""
        fetched = jax.device_get(self.measurements)
        self.measurements = []
        first = loop.step - len(fetched) + 1  # the steps since the last fetch, all in this epoch
        for offset, m in enumerate(fetched):
            m = {k: float(v) for k, v in m.items()}
            if not all(math.isfinite(m[k]) for k in MEASUREMENTS):
                step = first + offset
                raise TrainingDivergedError(
                    f"non-finite training measurements at step {step} (epoch {loop.epoch + 1}, "
                    f"step {loop.step_in_epoch - (loop.step - step)} of the epoch): "
                    f"loss={m['loss']}, grad_norm={m['grad_norm']}, "
                    f"param_norm={m['param_norm']}, lr={m['lr']}. Stopped; the last good "
                    f"checkpoint (step {run.checkpoints.latest_step()}) is kept in "
                    f"{run.workdir / 'checkpoints'}"
                )
            loop.epoch_loss_sum += m["loss"]
            loop.epoch_loss_count += 1
        return m


def _train(run: _Run, state: Any, loop: LoopState, stop_at_step: int | None) -> bool:
    """Epochs until early stopping or `max_epochs`; False if the preemption drill stopped it."""
    t = run.config.train
    pending = _Pending()
    while loop.epoch < t.max_epochs:
        bar = tqdm(
            total=run.steps_per_epoch,
            initial=loop.step_in_epoch,
            desc=f"epoch {loop.epoch + 1}",
            disable=not (run.config.progress_bar and _is_primary()),
            leave=False,
            dynamic_ncols=True,
        )
        tick, ticks = time.perf_counter(), 0
        with bar:
            while loop.step_in_epoch < run.steps_per_epoch:
                batch = run.dp.put_batch(next(run.iterator))
                state, measurements = run.dp.update(state, batch, run.scaler, run.dropout_key)
                pending.measurements.append(measurements)
                loop.step += 1
                loop.step_in_epoch += 1
                ticks += 1
                bar.update(1)
                epoch_end = loop.step_in_epoch == run.steps_per_epoch
                save = bool(t.checkpoint_every_steps) and not epoch_end
                save = save and loop.step % t.checkpoint_every_steps == 0
                drill = stop_at_step is not None and loop.step >= stop_at_step
                if loop.step % t.log_every == 0 or epoch_end or save or drill:
                    m = pending.fetch(run, loop)  # waits for the devices; raises on NaN
                    rate = ticks / max(time.perf_counter() - tick, 1e-9)
                    bar.set_postfix(
                        loss=f"{m['loss']:.3f}", lr=f"{m['lr']:.1e}", steps_per_s=f"{rate:.2f}"
                    )
                if save:
                    loop.epoch_time_s += time.perf_counter() - tick
                    run.save(run.dp.host_state(state), loop)
                    tick, ticks = time.perf_counter(), 0
                if drill:
                    return False
            loop.epoch_time_s += time.perf_counter() - tick
        _end_epoch(run, state, loop)
        if loop.finished:
            break
    loop.finished = True
    loop.stop_reason = loop.stop_reason or "max_epochs"
    return True


def _end_epoch(run: _Run, state: Any, loop: LoopState) -> None:
    """Validate, log the epoch's row, keep the best checkpoint, decide whether to stop, save."""
    t = run.config.train
    val, _, _ = evaluate_split(run, state, run.splits.val)
    train_loss = loop.epoch_loss_sum / max(loop.epoch_loss_count, 1)
    epoch_time = loop.epoch_time_s
    improved = loop.end_epoch(val["mae_mean"])
    row = {
        "epoch": loop.epoch,
        "step": loop.step,
        "train_loss": train_loss,
        "val_mae": val["mae_mean"],
        "val_rmse": val["rmse_mean"],
        "val_mape": val["mape_mean"],
        "lr": float(run.dp.options.schedule(loop.step - 1)),
        "epoch_time_s": epoch_time,
        "steps_per_s": run.steps_per_epoch / max(epoch_time, 1e-9),
    }
    loop.history.append(row)
    if _is_primary():
        run.writer.log(row)
        tqdm.write(
            f"epoch {row['epoch']:3d}  step {row['step']:6d}  train_loss {train_loss:.4f}  val "
            f"MAE {row['val_mae']:.4f}{'  (best)' if improved else ''}  lr {row['lr']:.1e}  "
            f"{epoch_time:.1f}s ({row['steps_per_s']:.2f} steps/s)"
        )
        sys.stdout.flush()  # one line per epoch reaches a log file as it happens
    host = run.dp.host_state(state)
    if improved:
        run.checkpoints.save_best(loop.step, host, val_mae=float(val["mae_mean"]))
    loop.decide_stop(patience=t.patience, max_epochs=t.max_epochs)
    run.save(host, loop)


# --------------------------------------------------------------------------------------------
# Evaluation and results
# --------------------------------------------------------------------------------------------
def _finish(run: _Run, loop: LoopState) -> dict[str, Any]:
    """Test the best checkpoint, add the baselines, write results.json/.md and the plots (process
    0); every process returns the results."""
    config, splits = run.config, run.splits
    best = run.checkpoints.restore_best(run.initial_state)
    best_state = run.dp.put_state(jax.tree.map(np.asarray, best))
    # Every window's prediction on both splits: the forecast record fits its intervals on
    # validation and scores them on test; the plot shows test.
    test_result, test_predictions, test_windows = evaluate_split(
        run, best_state, splits.test, keep_predictions=True, per_window=True
    )
    val_result, val_predictions, _ = evaluate_split(
        run, best_state, splits.val, keep_predictions=True
    )
    baselines = functools.partial(evaluate_baselines, scaler=splits.scaler, average=run.average)
    test_tables = {"model": test_result, **baselines(splits, "test")}
    val_tables = {"model": val_result, **baselines(splits, "val")}
    temporal, spatial = config.model.temporal_attention.name, config.model.spatial_attention.name
    times = [row["epoch_time_s"] for row in loop.history]
    results = {
        "name": config.name,
        "data": config.data.name,
        "temporal_attention": temporal,
        "spatial_attention": spatial,
        "epochs": loop.epoch,
        "steps": loop.step,
        "best_epoch": loop.best_epoch,
        "stop_reason": loop.stop_reason,
        "time_per_epoch_s": float(np.median(times)) if times else None,
        "first_val_mae": loop.history[0]["val_mae"] if loop.history else None,
        "best_val_mae": loop.best_val_mae,
        "num_parameters": run.num_params,
        "data_notes": run.notes,
        "seasonal_table": {
            "day_of_year_term": run.average.year is not None,
            "val_mae": run.average.year_choice,  # None where the term was not tried
        },
        "in_steps": config.data.in_steps,
        "out_steps": config.data.out_steps,
        "test": test_tables,
        "val": val_tables,
        "history": loop.history,
    }
    if not _is_primary():
        return results
    write_results(
        run.workdir,
        config,
        results,
        val=val_predictions,
        test=test_predictions,
        test_windows=test_windows,
        run=run,
    )
    return results
