"""Evaluation of a model state over every window of a split, on the run's devices and processes:
metric sums of each global batch, and on request the predictions and per-window error sums of all
windows, assembled in window order on process 0."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils

from eala_jax.data import make_eval_loader
from eala_jax.metrics import WINDOW_KEYS, MetricAccumulator, window_sums
from eala_jax.train.mesh import RowBlocks

__all__ = ["Predictions", "all_windows", "evaluate_split"]


class Predictions(NamedTuple):
    """Predictions of every window of a split with their targets, `[W, T_out, N]` each."""

    pred: np.ndarray
    target: np.ndarray
    mask: np.ndarray


def evaluate_split(
    run: Any, state: Any, source: Any, *, keep_predictions: bool = False, per_window: bool = False
) -> tuple[dict[str, Any], Predictions | None, dict[str, np.ndarray] | None]:
    """Metrics over every window of `source`, and on request the predictions of all of them and
    their per-window error sums (`metrics.window_sums`, `[W]` each).

    Each process evaluates its strided share of the windows (`make_eval_loader`, padded batches,
    the same number on every process); the metric sums of each global batch come back summed over
    all processes. Predictions and window sums (on request: collectives, so every process asks)
    are assembled in window order and kept on process 0 only (None elsewhere).
    """
    accumulator = MetricAccumulator()
    kept: list[tuple[np.ndarray, ...]] = []
    windows: list[dict[str, np.ndarray]] = []
    loader = make_eval_loader(
        source,
        batch_size=run.eval_batch_size,
        shard_index=run.dp.blocks.index,
        shard_count=run.dp.blocks.count,
    )
    for batch, num_valid in loader:
        sums, pred = run.dp.evaluate(state, run.dp.put_batch(batch), run.scaler)
        accumulator.add(sums)
        if keep_predictions or per_window:
            arrays = tuple(np.asarray(a)[:num_valid] for a in (pred, batch["y"], batch["y_mask"]))
            if keep_predictions:
                kept.append(arrays)
            if per_window:
                windows.append(window_sums(*arrays))
    predictions = per_window_sums = None
    if keep_predictions:
        local = (np.concatenate(a) for a in zip(*kept, strict=True))
        predictions = Predictions(*(all_windows(a, len(source), run.dp.blocks) for a in local))
    if per_window:
        per_window_sums = {
            key: all_windows(np.concatenate([w[key] for w in windows]), len(source), run.dp.blocks)
            for key in WINDOW_KEYS
        }
    if jax.process_index() != 0:
        return accumulator.result(), None, None
    return accumulator.result(), predictions, per_window_sums


def all_windows(local: np.ndarray, num_windows: int, blocks: RowBlocks) -> np.ndarray:
    """This process's windows `[W_b, ...]` (`make_eval_loader`'s strided share of its row block
    b: windows b, b + count, ...) -> all `num_windows` in order, on every process. A collective:
    every process calls it."""
    if blocks.count == 1:  # every process evaluated every window
        return local
    rows = math.ceil(num_windows / blocks.count)  # the largest share; the others are padded to it
    padded = np.zeros((rows, *local.shape[1:]), local.dtype)
    padded[: len(local)] = local
    gathered = np.asarray(multihost_utils.process_allgather(padded))  # [P, rows, ...]
    gathered = gathered[list(blocks.owners)]  # one process per block, in block order
    # Window k * count + b is row k of block b.
    return np.swapaxes(gathered, 0, 1).reshape(rows * blocks.count, *local.shape[1:])[:num_windows]
