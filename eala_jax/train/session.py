"""`Session`: what one training run builds once (the data, the model and optimiser as a split host
state, the device path with its jitted steps), without a workdir; and `Session.train_steps`, the
loop's optimiser steps from any state for a fixed number of steps.

The training loop (`eala_jax.train.loop`) extends it with the workdir's checkpoints and outputs;
a caller that starts from a state of its own (fine-tuning a converted model, `experiments.convert`)
uses it directly:

    session = Session.build(config)
    state = session.dp.put_state(host_state)  # e.g. session.initial_state
    state = session.train_steps(state, session.train_batches(), 100)
    result, _, _ = evaluate_split(session, state, session.splits.test)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from flax import nnx

from eala_jax.data import ForecastSplits, make_loader
from eala_jax.models import ELinFormer
from eala_jax.models.baselines import HistoricalAverage
from eala_jax.train.config import Config
from eala_jax.train.memory import check_memory
from eala_jax.train.mesh import (
    check_batch_divisible,
    check_mesh_shape,
    check_microbatches,
    make_mesh,
    mesh_devices,
    resolve_device_count,
    row_blocks,
)
from eala_jax.train.prepare import build_model, data_line, prepare_data
from eala_jax.train.sharding import DataParallel
from eala_jax.train.steps import StepOptions, build_optimizer, learning_rate_schedule

__all__ = ["MEASUREMENTS", "Session", "TrainingDivergedError"]

MEASUREMENTS = ("loss", "grad_norm", "param_norm")  # checked for NaN / inf


class TrainingDivergedError(FloatingPointError):
    """A non-finite loss, gradient or parameter norm stopped the run (the message names the
    step)."""


def _say(*args: Any, **kwargs: Any) -> None:
    """`print` on process 0 only."""
    if jax.process_index() == 0:
        print(*args, **kwargs)


@dataclasses.dataclass
class Session:
    """The parts of one run that stay fixed while it trains (`build`)."""

    config: Config  # resolved for the data (recipe, calendar widths)
    series: Any
    splits: ForecastSplits
    steps_per_epoch: int
    eval_batch_size: int  # rows of each evaluation batch this process puts (its share)
    num_params: int
    dp: DataParallel  # the jitted (or pmapped) update and eval steps, built once
    initial_state: Any  # host numpy state of the fresh model and optimiser (also the template)
    scaler: Any  # the training scaler, on the devices
    dropout_key: jax.Array
    average: HistoricalAverage  # the training split's seasonal table
    notes: list[str]  # which recipe and calendar features, and why

    @classmethod
    def build_parts(cls, config: Config) -> dict[str, Any]:
        """The fields of a session of `config` (`build`), as keywords (for subclasses that add
        their own)."""
        t = config.train
        num_devices = resolve_device_count(t.num_devices, t.parallel)
        # The mesh spans every process's devices: shapes are checked against the global count.
        total = 1 if t.parallel == "none" else len(mesh_devices(num_devices))
        if t.mesh_shape is None:
            check_batch_divisible(t.batch_size, num_devices)
        else:
            check_mesh_shape(t.mesh_shape, total, batch_size=t.batch_size)
            row_blocks(make_mesh(num_devices, mesh_shape=t.mesh_shape))  # feedable by processes
        check_microbatches(t, num_devices)
        series, splits, config, notes, average = prepare_data(config)
        t = config.train  # the recipe may set the loss
        if t.mesh_shape is not None:
            check_mesh_shape(t.mesh_shape, total, num_nodes=splits.num_nodes)
        _say(data_line(config, series, splits))
        for note in notes:
            _say(note)
        steps_per_epoch = len(splits.train) // t.batch_size
        if steps_per_epoch < 1:
            raise ValueError(
                f"train.batch_size={t.batch_size} is larger than the training split "
                f"({len(splits.train)} windows)"
            )
        if t.max_steps_per_epoch is not None:
            steps_per_epoch = min(steps_per_epoch, t.max_steps_per_epoch)
        schedule = learning_rate_schedule(
            t.learning_rate,
            milestones=t.milestones,
            decay=t.lr_decay,
            steps_per_epoch=steps_per_epoch,
        )
        tx = build_optimizer(
            schedule,
            optimizer=t.optimizer,
            weight_decay=t.weight_decay,
            max_grad_norm=t.max_grad_norm,
        )

        def make() -> tuple[ELinFormer, nnx.Optimizer]:
            model = build_model(
                config,
                num_nodes=splits.num_nodes,
                steps_per_day=splits.steps_per_day,
                rngs=nnx.Rngs(params=t.seed),
                adjacency=series.adjacency,
            )
            return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

        graphdef, state = nnx.split(nnx.eval_shape(make))  # shapes: memory is checked first
        dp = DataParallel(
            t.parallel,
            num_devices,
            graphdef=graphdef,
            options=StepOptions(
                schedule, loss=t.loss, huber_delta=t.huber_delta, microbatches=t.microbatches
            ),
            mesh_shape=t.mesh_shape,
        )
        # Rounded up to a multiple of the devices along the batch; this process's rows of it.
        eval_rows = math.ceil(t.eval_batch_size / dp.data_size) * dp.data_size
        eval_batch_size = dp.local_rows(eval_rows)
        scaler = dp.put_scaler(splits.scaler)
        dropout_key = jax.random.fold_in(jax.random.PRNGKey(t.seed), 1)
        if t.check_memory:  # before the model exists: InsufficientMemoryError if it cannot fit
            window = splits.train[0]
            _say(check_memory(config, dp, state, window, scaler, dropout_key, eval_rows=eval_rows))
        model, optimizer = make()
        num_params = int(sum(np.size(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))
        state = nnx.state((model, optimizer))
        return dict(
            config=config,
            series=series,
            splits=splits,
            steps_per_epoch=steps_per_epoch,
            eval_batch_size=eval_batch_size,
            num_params=num_params,
            dp=dp,
            initial_state=jax.tree.map(np.asarray, state),
            scaler=scaler,
            dropout_key=dropout_key,
            average=average,
            notes=notes,
        )

    @classmethod
    def build(cls, config: Config) -> Session:
        """Load the data of `config` (checked against the devices first), resolve the config for
        it, build the fresh model and optimiser (`train.seed`), the learning-rate schedule and the
        device path; with `train.check_memory`, refuse a run that cannot fit before the model
        exists (`InsufficientMemoryError`)."""
        return cls(**cls.build_parts(config))

    def train_batches(self, seed: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """This process's rows of the shuffled training batches, endless (grain), in the order of
        `seed` (default `train.seed`)."""
        t = self.config.train
        loader = make_loader(
            self.splits.train,
            batch_size=self.dp.local_rows(t.batch_size),
            shuffle=True,
            seed=t.seed if seed is None else seed,
            num_epochs=None,
            drop_remainder=True,
            shard_index=self.dp.blocks.index,
            shard_count=self.dp.blocks.count,
        )
        return iter(loader)

    def train_steps(
        self, state: Any, batches: Iterator[dict[str, np.ndarray]], num_steps: int
    ) -> tuple[Any, list[dict[str, float]]]:
        """`num_steps` optimiser steps (the loop's `dp.update`, dropout on) from `state` (in the
        device path's layout, `dp.put_state`; donated) on the next batches of `batches`.

        Returns the new state and each step's measurements (loss, grad_norm, param_norm, lr),
        fetched once at the end; `TrainingDivergedError` names the first step of this call whose
        loss, gradient norm or parameter norm is not finite. The learning rate follows the
        session's schedule at the state's own optimiser step count.
        """
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
            raise ValueError(f"num_steps must be a non-negative integer, got {num_steps!r}")
        pending = []
        for _ in range(num_steps):
            batch = self.dp.put_batch(next(batches))
            state, measurements = self.dp.update(state, batch, self.scaler, self.dropout_key)
            pending.append(measurements)
        rows = [{k: float(v) for k, v in m.items()} for m in jax.device_get(pending)]
        for step, m in enumerate(rows, 1):
            if not all(math.isfinite(m[k]) for k in MEASUREMENTS):
                raise TrainingDivergedError(
                    f"non-finite training measurements at step {step} of {num_steps}: "
                    f"loss={m['loss']}, grad_norm={m['grad_norm']}, "
                    f"param_norm={m['param_norm']}, lr={m['lr']}"
                )
        return state, rows
