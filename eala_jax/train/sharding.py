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

Node sharding (`train.mesh_shape=(data, nodes)`, "jit" mode): a 2-D mesh ("data", "nodes"); the
batch is split over "data" and the sensor axis of every array over "nodes" (the model annotates its
activations, `eala_jax.models.elinformer.NODE_AXIS`), the per-sensor parameters
(`NODE_SHARDED_PARAMETERS`) and their Adam moments over "nodes", everything else replicated. The
spatial attention's key statistics become partial sums plus all-reduces (docs/training.md,
"Sharding the sensors").

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
from eala_jax.models.elinformer import NODE_AXIS, NODE_SHARDED_PARAMETERS
from eala_jax.train.steps import StepOptions, eval_step, update_step

__all__ = [
    "DATA_AXIS",
    "PARALLEL_MODES",
    "PMAP_AXIS",
    "DataParallel",
    "check_batch_divisible",
    "check_mesh_shape",
    "check_microbatches",
    "make_mesh",
    "node_sharded_state",
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


def check_microbatches(train: Any, num_devices: int) -> None:
    """Raise ValueError unless `train.microbatches` divides the rows of `train.batch_size` that
    each device along the batch holds (so every device splits its own rows in place)."""
    if train.parallel == "none":
        along_batch = 1
    elif train.mesh_shape is not None:
        along_batch = train.mesh_shape[0]
    else:
        along_batch = num_devices * jax.process_count()
    rows = train.batch_size // along_batch
    if rows % train.microbatches:
        raise ValueError(
            f"train.microbatches={train.microbatches} does not divide the {rows} rows each "
            f"device holds (train.batch_size={train.batch_size} over {along_batch} devices along "
            "the batch)"
        )


def check_mesh_shape(
    mesh_shape: tuple[int, ...],
    num_devices: int,
    *,
    num_nodes: int | None = None,
    batch_size: int | None = None,
) -> None:
    """Raise ValueError naming `train.mesh_shape` unless it is `(data, nodes)` of positive integers
    whose product is `num_devices`, `nodes` divides `num_nodes` (the sensors are not padded) and
    `data` divides `batch_size` (each where given)."""
    shape = tuple(mesh_shape)
    if len(shape) != 2 or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape
    ):
        raise ValueError(
            f"train.mesh_shape must be (data, nodes), two positive integers, got {mesh_shape!r}"
        )
    data, nodes = shape
    if data * nodes != num_devices:
        raise ValueError(
            f"train.mesh_shape={shape}: data x nodes = {data * nodes} must equal the device count "
            f"{num_devices} (set train.num_devices or change the shape)"
        )
    if num_nodes is not None and num_nodes % nodes:
        raise ValueError(
            f"train.mesh_shape={shape}: the {num_nodes} sensors do not split over {nodes} "
            f"'{NODE_AXIS}' devices; use a divisor of {num_nodes} (sensors are not padded)"
        )
    if batch_size is not None and batch_size % data:
        raise ValueError(
            f"train.mesh_shape={shape}: train.batch_size={batch_size} does not split over {data} "
            f"'{DATA_AXIS}' devices"
        )


def make_mesh(num_devices: int | None = None, *, mesh_shape: tuple[int, int] | None = None) -> Mesh:
    """A 1-D mesh with axis "data" (`AxisType.Auto`) over `num_devices` local devices (all devices
    of all hosts if None); with `mesh_shape=(data, nodes)` a 2-D mesh ("data", "nodes") over them.
    """
    # Auto axis: shardings are given at the jit boundary and XLA propagates them inside (the model
    # code needs no sharding annotations, e.g. for its embedding gathers).
    if mesh_shape is not None:
        count = jax.device_count() if num_devices is None else num_devices
        check_mesh_shape(mesh_shape, count)
        devices = jax.devices() if num_devices is None else jax.local_devices()[:num_devices]
        return jax.make_mesh(
            tuple(mesh_shape),
            (DATA_AXIS, NODE_AXIS),
            axis_types=(jax.sharding.AxisType.Auto,) * 2,
            devices=devices,
        )
    auto = (jax.sharding.AxisType.Auto,)
    if num_devices is None or jax.process_count() > 1:
        return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=auto)
    devices = jax.local_devices()[:num_devices]
    return jax.make_mesh((num_devices,), (DATA_AXIS,), axis_types=auto, devices=devices)


def node_sharded_state(state: Tree, mesh: Mesh) -> Tree:
    """`NamedSharding`s for the split (model, optimiser) state under node sharding: the leaves of
    the parameters in `NODE_SHARDED_PARAMETERS` (and their Adam moments, found by the same name in
    their path) sharded over the mesh's "nodes" axis, every other leaf replicated."""

    nodes = mesh.shape[NODE_AXIS]

    def sharding(path: tuple, leaf: Any) -> NamedSharding:
        names = {getattr(k, "key", getattr(k, "name", None)) for k in path}
        spec = next((s for name, s in NODE_SHARDED_PARAMETERS.items() if name in names), P())
        axis = spec.index(NODE_AXIS) if NODE_AXIS in spec else None
        if axis is not None and leaf.shape[axis] % nodes:
            raise ValueError(
                f"train.mesh_shape: the {leaf.shape[axis]} sensors do not split over {nodes} "
                f"'{NODE_AXIS}' devices; use a divisor of {leaf.shape[axis]}"
            )
        return NamedSharding(mesh, spec)

    return jax.tree_util.tree_map_with_path(sharding, state)


def _batch_spec(ndim: int) -> P:
    """Batch arrays under node sharding: `[B, T, N]` arrays over ("data", -, "nodes"), the
    calendar `[B, T]` over "data"."""
    return P(DATA_AXIS, None, NODE_AXIS) if ndim == 3 else P(DATA_AXIS)


class DataParallel:
    """Runs the update and eval steps of `eala_jax.train.steps` in one mode, built once per run.

    `update(state, batch, scaler, key)` and `evaluate(state, batch, scaler)` call
    `steps.update_step` / `steps.eval_step` with `graphdef` and `options` as static arguments:
    both are hashable by value, so `jax.jit`'s (and `jax.pmap`'s) own cache gives an equal run
    in the same process the compiled steps of the first. `put_state`/`host_state` move the split
    NNX state in and out of the mode's layout (host state is what gets checkpointed).
    """

    def __init__(
        self,
        mode: str,
        num_devices: int,
        *,
        graphdef: nnx.GraphDef,
        options: StepOptions,
        mesh_shape: tuple[int, int] | None = None,
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
        self.mesh_shape = None if mesh_shape is None else tuple(mesh_shape)
        # Rows of a batch go to the "data" devices only (all of them without node sharding).
        self._batch_split = self.num_devices
        if mesh_shape is not None:
            if mode != "jit":
                raise ValueError(
                    f"train.mesh_shape={mesh_shape} needs train.parallel='jit', got {mode!r}"
                )
            self.mesh = make_mesh(self.num_devices, mesh_shape=self.mesh_shape)
            self._batch_split = self.mesh_shape[0]
            self._replicated = NamedSharding(self.mesh, P())
            self._update = self._evaluate = None  # built by put_state, from the state's layout
        elif mode == "jit":
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
        if self.mesh_shape is not None:
            return jax.device_put(state, self._node_sharded_steps(state))
        if self.mode == "jit":
            return jax.device_put(state, self._replicated)
        if self.mode == "pmap":
            n = self.num_devices
            return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), state)
        return jax.device_put(state)

    def _node_sharded_steps(self, state: Tree) -> Tree:
        """Builds the node-sharded update and eval steps for `state`'s layout (`node_sharded_state`)
        once; returns that layout. The steps trace under `jax.set_mesh`, which switches on the
        model's activation annotations."""
        layout = node_sharded_state(state, self.mesh)
        if self._update is None:
            rep = self._replicated
            pred = NamedSharding(self.mesh, P(DATA_AXIS, None, NODE_AXIS))
            update = jax.jit(
                update_step,
                static_argnums=(4, 5, 6),
                in_shardings=(layout, None, rep, rep),
                out_shardings=(layout, rep),
                donate_argnums=0,
            )
            evaluate = jax.jit(
                eval_step,
                static_argnums=3,
                in_shardings=(layout, None, rep),
                out_shardings=(rep, pred),
            )
            self._update = _UnderMesh(update, self.mesh)
            self._evaluate = _UnderMesh(evaluate, self.mesh)
        return layout

    def batch_sharding(self, ndim: int) -> NamedSharding | None:
        """Where `put_batch` puts a batch array of rank `ndim` ("jit" mode; None otherwise)."""
        if self.mesh_shape is not None:
            return NamedSharding(self.mesh, _batch_spec(ndim))
        return self._batch_sharding if self.mode == "jit" else None

    def lower_update(self, state: Tree, batch: dict, scaler: StandardScaler, key: jax.Array) -> Any:
        """The update step lowered for these arguments, which may be `jax.ShapeDtypeStruct`s (with
        `batch_sharding`'s shardings on the batch): `.compile().memory_analysis()` gives the memory
        per device without running it. Under node sharding the state is laid out as `put_state`
        lays it out (under pmap, state and batch carry the leading device axis)."""
        axis = PMAP_AXIS if self.mode == "pmap" else None
        state = self._abstract_layout(state)
        return self._update.lower(state, batch, scaler, key, self.graphdef, self.options, axis)

    def lower_evaluate(self, state: Tree, batch: dict, scaler: StandardScaler) -> Any:
        """The evaluation step lowered for these arguments, as `lower_update`."""
        return self._evaluate.lower(self._abstract_layout(state), batch, scaler, self.graphdef)

    def _abstract_layout(self, state: Tree) -> Tree:
        """Under node sharding, `state` as `jax.ShapeDtypeStruct`s laid out as `put_state` lays it
        out (building the steps for that layout); unchanged otherwise."""
        if self.mesh_shape is None:
            return state
        layout = self._node_sharded_steps(state)
        return jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, layout
        )

    def host_state(self, state: Tree) -> Tree:
        """This mode's layout -> one copy as host numpy arrays (for checkpoints and comparisons)."""
        if self.mode == "pmap":
            state = jax.tree.map(lambda x: x[0], state)
        return jax.tree.map(np.asarray, jax.device_get(state))

    def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """A host batch (this process's rows) -> the mode's layout; leading dim must divide
        evenly."""
        size = next(iter(batch.values())).shape[0]
        if size % self._batch_split:
            raise ValueError(
                f"batch of {size} rows does not split over {self._batch_split} devices"
            )
        if self.mesh_shape is not None:
            return {
                k: jax.make_array_from_process_local_data(
                    self.batch_sharding(np.ndim(v)), np.asarray(v)
                )
                for k, v in batch.items()
            }
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


class _UnderMesh:
    """A jitted function called (and so traced) and lowered with `mesh` as the current mesh
    (`jax.set_mesh`)."""

    def __init__(self, fn: Any, mesh: Mesh):
        self.fn, self.mesh = fn, mesh

    def __call__(self, *args: Any) -> Any:
        with jax.set_mesh(self.mesh):
            return self.fn(*args)

    def lower(self, *args: Any) -> Any:
        with jax.set_mesh(self.mesh):
            return self.fn.lower(*args)
