"""Data-parallel execution of the shared update/eval functions on one or many devices.

Three modes over the same pure functions of `eala_jax.train.steps` (`update_step`, `eval_step`):

- `"jit"` (the main path): `jax.jit` over a `jax.make_mesh((n,), ("data",))` mesh; the batch is a
  global array sharded on axis "data" (`NamedSharding(mesh, P("data"))`), state replicated
  (`P()`) and donated. XLA inserts the gradient all-reduce. This is how current JAX does what
  `jax.pmap` did.
- `"pmap"` (a thin alternative, for users who ask for it): `jax.pmap` over the local devices with
  an explicit `psum` of gradients and counts (axis name "batch"); state carries a leading device
  axis.
- `"none"`: plain `jax.jit` on the default device.

The batch's leading dimension must divide by the device count (checked before training).
Several processes (a pod slice, or 2 on one machine): call `jax.distributed.initialize()` first;
only `"jit"` spans them. Each process puts its own rows of the global batch
(`make_array_from_process_local_data` assembles the global array) and gets back the metric sums of
the whole global batch and its own rows of the prediction (see docs/training.md).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from eala_jax.data.scaler import StandardScaler
from eala_jax.train.steps import StepOptions, eval_step, update_step

__all__ = [
    "DATA_AXIS",
    "PARALLEL_MODES",
    "PMAP_AXIS",
    "DataParallel",
    "check_batch_divisible",
    "make_mesh",
    "resolve_device_count",
]

#: Values of `train.parallel`.
PARALLEL_MODES = ("jit", "pmap", "none")
DATA_AXIS = "data"
PMAP_AXIS = "batch"
Tree = Any


def resolve_device_count(num_devices: int | None, parallel: str = "jit") -> int:
    """Local devices to use: all for None; 1 for `parallel="none"`. Raises if too many, or when
    several processes run anything but `"jit"` on all their devices."""
    available = jax.local_device_count()
    if jax.process_count() > 1:
        if parallel != "jit":
            raise ValueError(
                f"train.parallel={parallel!r} runs within one process, but this run has "
                f"{jax.process_count()} processes; use train.parallel='jit'"
            )
        if num_devices not in (None, available):
            raise ValueError(
                f"train.num_devices={num_devices}: a run over {jax.process_count()} processes "
                f"uses all {available} local devices of each; leave train.num_devices unset"
            )
    if parallel == "none":
        return 1
    n = available if num_devices is None else int(num_devices)
    if not 1 <= n <= available:
        raise ValueError(
            f"train.num_devices={num_devices} but {available} local device(s) are available"
        )
    return n


def check_batch_divisible(
    batch_size: int, num_devices: int, *, key: str = "train.batch_size"
) -> None:
    """Raise ValueError unless `batch_size` splits evenly over the devices (global count under
    multi-host)."""
    total = num_devices * jax.process_count()
    if batch_size % total:
        raise ValueError(
            f"{key}={batch_size} is not divisible by the device count {total}; "
            f"use a multiple of {total} or set train.num_devices"
        )


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh with axis "data" (`AxisType.Auto`) over `num_devices` local devices (all devices
    of all hosts if None)."""
    # Auto axis: shardings are given at the jit boundary and XLA propagates them inside (the model
    # code needs no sharding annotations, e.g. for its embedding gathers).
    auto = (jax.sharding.AxisType.Auto,)
    if num_devices is None or jax.process_count() > 1:
        return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=auto)
    devices = jax.local_devices()[:num_devices]
    return jax.make_mesh((num_devices,), (DATA_AXIS,), axis_types=auto, devices=devices)


class DataParallel:
    """Runs the update and eval steps of `eala_jax.train.steps` in one mode, built once per run.

    `update(state, batch, scaler, key)` and `evaluate(state, batch, scaler)` call
    `steps.update_step` / `steps.eval_step` with `graphdef` and `options` as static arguments:
    both are hashable by value, so `jax.jit`'s (and `jax.pmap`'s) own cache gives an equal run
    in the same process the compiled steps of the first. `put_state`/`host_state` move the split
    NNX state in and out of the mode's layout (host state is what gets checkpointed).
    """

    def __init__(
        self, mode: str, num_devices: int, *, graphdef: nnx.GraphDef, options: StepOptions
    ):
        if mode not in PARALLEL_MODES:
            raise ValueError(
                f"unknown parallel mode {mode!r}; choose one of {', '.join(PARALLEL_MODES)}"
            )
        self.mode = mode
        self.num_devices = 1 if mode == "none" else num_devices
        self.graphdef = graphdef
        self.options = options
        self.mesh = None
        if mode == "jit":
            self.mesh = make_mesh(self.num_devices)
            self._batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
            self._replicated = NamedSharding(self.mesh, P())
            rep, bat = self._replicated, self._batch_sharding
            self._update = jax.jit(
                update_step,
                static_argnums=(4, 5, 6),
                in_shardings=(rep, bat, rep, rep),
                out_shardings=(rep, rep),
                donate_argnums=0,
            )
            self._evaluate = jax.jit(
                eval_step,
                static_argnums=3,
                in_shardings=(rep, bat, rep),
                out_shardings=(rep, bat),
            )
        elif mode == "pmap":
            # The thin alternative: the same step under jax.pmap, gradients and counts psum-ed
            # over the axis PMAP_AXIS inside it, state carrying a leading device axis.
            devices = jax.local_devices()[: self.num_devices]
            self._update = jax.pmap(
                update_step,
                axis_name=PMAP_AXIS,
                in_axes=(0, 0, None, None),
                static_broadcasted_argnums=(4, 5, 6),
                devices=devices,
                donate_argnums=0,
            )
            self._evaluate = jax.pmap(
                eval_step,
                axis_name=PMAP_AXIS,
                in_axes=(0, 0, None),
                static_broadcasted_argnums=3,
                devices=devices,
            )
        else:
            self._update = jax.jit(update_step, static_argnums=(4, 5, 6), donate_argnums=0)
            self._evaluate = jax.jit(eval_step, static_argnums=3)

    # -- layout ---------------------------------------------------------------------------
    def put_state(self, state: Tree) -> Tree:
        """Host (or single-device) state -> this mode's layout."""
        if self.mode == "jit":
            return jax.device_put(state, self._replicated)
        if self.mode == "pmap":
            n = self.num_devices
            return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), state)
        return jax.device_put(state)

    def host_state(self, state: Tree) -> Tree:
        """This mode's layout -> one copy as host numpy arrays (for checkpoints and comparisons)."""
        if self.mode == "pmap":
            state = jax.tree.map(lambda x: x[0], state)
        return jax.tree.map(np.asarray, jax.device_get(state))

    def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """A host batch (this process's rows) -> the mode's layout; leading dim must divide
        evenly."""
        size = next(iter(batch.values())).shape[0]
        if size % self.num_devices:
            raise ValueError(f"batch of {size} rows does not split over {self.num_devices} devices")
        if self.mode == "jit":
            return {
                k: jax.make_array_from_process_local_data(self._batch_sharding, np.asarray(v))
                for k, v in batch.items()
            }
        if self.mode == "pmap":
            n = self.num_devices
            return {
                k: np.asarray(v).reshape(n, size // n, *np.shape(v)[1:]) for k, v in batch.items()
            }
        return {k: jnp.asarray(v) for k, v in batch.items()}

    # -- compute --------------------------------------------------------------------------
    def put_scaler(self, scaler: StandardScaler) -> StandardScaler:
        """The scaler as float32 scalars on the devices (replicated), placed once per run."""
        scaler = jax.tree.map(np.float32, scaler)
        return jax.device_put(scaler, self._replicated if self.mode == "jit" else None)

    def update(
        self, state: Tree, batch: dict, scaler: StandardScaler, key: jax.Array
    ) -> tuple[Tree, dict[str, jax.Array]]:
        """One optimiser step; measurements are scalars (device 0's copy under pmap), left on the
        device (the caller fetches them when it needs them)."""
        axis = PMAP_AXIS if self.mode == "pmap" else None
        state, measurements = self._update(
            state, batch, scaler, key, self.graphdef, self.options, axis
        )
        if self.mode == "pmap":
            measurements = jax.tree.map(lambda x: x[0], measurements)
        return state, measurements

    def evaluate(
        self, state: Tree, batch: dict, scaler: StandardScaler
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Metric sums of the global batch (host numpy, summed over all devices of all processes)
        and this process's rows of the prediction `[B_local, T_out, N]` (those of the batch it
        put; the whole prediction with one process)."""
        sums, pred = self._evaluate(state, batch, scaler, self.graphdef)
        if self.mode == "jit":
            pred = multihost_utils.global_array_to_host_local_array(
                pred, self.mesh, self._batch_sharding.spec
            )
        sums, pred = jax.device_get((sums, pred))
        if self.mode == "pmap":
            sums = jax.tree.map(lambda x: np.sum(x, axis=0), sums)
            pred = np.asarray(pred).reshape(-1, *np.shape(pred)[2:])
        return sums, np.asarray(pred)
