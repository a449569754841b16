"""One process of the multi-process training test (tests/train/test_loop_multiprocess.py), which
starts it as `python -m tests.train.multiprocess_worker OUT COORDINATOR NUM_PROCESSES PROCESS_ID`.

The CPU's `DEVICES` devices are split evenly over the processes, which talk over loopback (gloo).
With one process (the reference): the uninterrupted run, through the command line
(`experiments.train --coordinator ...`, which calls `jax.distributed.initialize`), in
`OUT/reference`. With several: the same through the command line but stopped after epoch 1
(`--set train.max_epochs=1`), resumed and stopped again after step `STOP_AT_STEP`, then resumed
to the end, in `OUT/processes`; then two configs it must refuse. `OUT/config.py` (written by the
test) holds `CONFIG`. Each process writes `OUT/<run>_<id>.json` (the results its last run returned,
the plots it drew, the errors, its CPU seconds); a prediction plot saves the arrays it was given
to `OUT/predictions_<run>_<id>.npz` instead of drawing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tests.train.train_helpers import tiny_config

DEVICES = 4  # in all, split evenly over the processes
# 2 epochs of 4 steps of batch 8 (dropout 0.1) on 4 devices in all, checkpoints every 3 steps;
# the stopped run's newest checkpoint is step 6, in the middle of epoch 2.
CONFIG = dataclasses.replace(tiny_config(parallel="jit", checkpoint_every_steps=3), plots=True)
STOP_AT_STEP = 7


@contextlib.contextmanager
def recorded_plots(out: Path, run: str, drawn: list[str]) -> Iterator[None]:
    """Replace the loop's two plots with recorders: each call appends its name to `drawn`; the
    prediction plot saves its arrays to `out/predictions_<run>_<process>.npz` (no PNG drawn)."""
    import jax

    from eala_jax.train import plots

    def learning_curve(history, path, **kwargs):
        drawn.append(f"{run}:learning_curve")

    def predictions(pred, target, mask, path, **kwargs):
        drawn.append(f"{run}:predictions")
        name = f"predictions_{run}_{jax.process_index()}.npz"
        np.savez(out / name, pred=pred, target=target, mask=mask)

    saved = plots.plot_learning_curve, plots.plot_predictions
    plots.plot_learning_curve, plots.plot_predictions = learning_curve, predictions
    try:
        yield
    finally:
        plots.plot_learning_curve, plots.plot_predictions = saved


def main(out: Path, coordinator: str, num_processes: int, process_id: int) -> None:
    import jax

    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", DEVICES // num_processes)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")

    from eala_jax.train import apply_overrides, train_and_evaluate
    from experiments import train as train_cli

    run = "reference" if num_processes == 1 else "processes"
    workdir = out / run
    drawn: list[str] = []
    command = ["--config", str(out / "config.py"), "--workdir", str(workdir)]
    command += ["--coordinator", coordinator, "--num-processes", str(num_processes)]
    command += ["--process-id", str(process_id)]
    if num_processes > 1:  # stopped at the end of epoch 1, as if with a smaller budget
        command += ["--set", "train.max_epochs=1"]
    with recorded_plots(out, run if num_processes == 1 else f"{run}_first", drawn):
        code = train_cli.main(command)
    if code != 0:
        raise SystemExit(f"the command line run failed with status {code}")
    assert jax.process_count() == num_processes and jax.device_count() == DEVICES
    results = None
    if num_processes > 1:
        # Resumed at the epoch end and stopped mid-epoch 2 (newest checkpoint: step 6), then
        # resumed from there to the end.
        assert train_and_evaluate(CONFIG, workdir, stop_at_step=STOP_AT_STEP) is None
        with recorded_plots(out, run, drawn):
            results = train_and_evaluate(CONFIG, workdir)
    errors = {}  # what a multi-process run refuses, before it loads any data
    if num_processes > 1:
        for override in ("train.parallel=pmap", "train.num_devices=1"):
            try:
                train_and_evaluate(apply_overrides(CONFIG, [override]), out / "refused")
            except ValueError as err:
                errors[override] = str(err)
    cpu_s = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    report = {"results": results, "plots": drawn, "errors": errors, "cpu_s": cpu_s}
    (out / f"{run}_{process_id}.json").write_text(json.dumps(_plain(report)))


def _plain(obj):
    """`obj` with numpy values as lists and floats (JSON)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


if __name__ == "__main__":
    folder, address, count, index = sys.argv[1:]
    main(Path(folder), address, int(count), int(index))
