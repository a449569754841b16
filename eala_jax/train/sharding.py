"""Execution of the shared update/eval functions on one or many devices, of one or many processes.

One path over a mesh, and a thin legacy alternative, over the same pure functions of
`eala_jax.train.steps` (`update_step`, `eval_step`):

- `"jit"` (the main path) and `"none"`: `jax.jit` over a 2-D mesh ("data", "nodes") built with
  `jax.make_mesh` over the global devices (`jax.devices()`): `(devices, 1)` for data parallelism,
  `train.mesh_shape=(data, nodes)` to shard the sensors too, `(1, 1)` for `"none"`. The batch is a
  global array, its rows over "data" and the sensor axis of every `[B, T, N]` array over "nodes";
  the per-sensor parameters (`NODE_SHARDED_PARAMETERS`) and their Adam moments over "nodes",
  everything else replicated; the state is donated. XLA inserts the gradient all-reduce and, under
  node sharding (traced under `jax.set_mesh`, which switches on the model's activation
  annotations, `eala_jax.models.elinformer.NODE_AXIS`), the spatial attention's partial key
  statistics' all-reduces (docs/training.md, "Sharding the sensors").
- `"pmap"` (a thin alternative, for users who ask for it): `jax.pmap` over the local devices with
  an explicit `psum` of gradients and counts (axis name "batch"); state carries a leading device
  axis. One process only.

Several processes (a pod slice, or 2 on one machine): call `jax.distributed.initialize()` first.
The mesh spans every process's devices; each process feeds the rows of the global batch that its
devices hold (`RowBlocks`: with a mesh whose "data" axis does not split over the processes, such as
`(1, nodes)`, several processes feed the same rows, each its devices' sensors) and gets back the
metric sums of the whole global batch and its rows of the prediction (see docs/training.md).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from eala_jax.data.scaler import StandardScaler
from eala_jax.models.elinformer import NODE_AXIS, NODE_SHARDED_PARAMETERS
from eala_jax.train.mesh import (
    DATA_AXIS,
    PARALLEL_MODES,
    PMAP_AXIS,
    RowBlocks,
    check_batch_divisible,
    check_mesh_shape,
    check_microbatches,
    make_mesh,
    mesh_devices,
    resolve_device_count,
    row_blocks,
)
from eala_jax.train.steps import StepOptions, eval_step, update_step

__all__ = [
    "DATA_AXIS",
    "PARALLEL_MODES",
    "PMAP_AXIS",
    "DataParallel",
    "MeshParallel",
    "PmapParallel",
    "RowBlocks",
    "check_batch_divisible",
    "check_mesh_shape",
    "check_microbatches",
    "make_mesh",
    "mesh_devices",
    "node_sharded_state",
    "resolve_device_count",
    "row_blocks",
]

Tree = Any


def node_sharded_state(state: Tree, mesh: Mesh) -> Tree:
    """`NamedSharding`s for the split (model, optimiser) state under `mesh`: the leaves of the
    parameters in `NODE_SHARDED_PARAMETERS` (and their Adam moments, found by the same name in
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
    """Batch arrays under the mesh: `[B, T, N]` arrays over ("data", -, "nodes"), the calendar
    `[B, T]` over "data"."""
    return P(DATA_AXIS, None, NODE_AXIS) if ndim == 3 else P(DATA_AXIS)


class DataParallel:
    """Runs the update and eval steps of `eala_jax.train.steps` in one mode, built once per run:
    `DataParallel(mode, ...)` is a `MeshParallel` for "jit" / "none" and a `PmapParallel` for
    "pmap", with one interface.

    `update(state, batch, scaler, key)` and `evaluate(state, batch, scaler)` call
    `steps.update_step` / `steps.eval_step` with `graphdef` and `options` as static arguments:
    both are hashable by value, so `jax.jit`'s (and `jax.pmap`'s) own cache gives an equal run
    in the same process the compiled steps of the first. `put_state`/`host_state` move the split
    NNX state in and out of the mode's layout (host state is what gets checkpointed).
    `num_devices` counts this process's devices (every process uses all of its own under several).
    """

    mesh: Mesh | None = None
    #: This process's rows of a global batch (`RowBlocks`); one block with one process.
    blocks: RowBlocks = RowBlocks(0, 1, (0,))

    def __new__(cls, mode: str, *args: Any, **kwargs: Any) -> DataParallel:
        if cls is DataParallel:
            if mode not in PARALLEL_MODES:
                raise ValueError(
                    f"unknown parallel mode {mode!r}; choose one of {', '.join(PARALLEL_MODES)}"
                )
            cls = PmapParallel if mode == "pmap" else MeshParallel
        return super().__new__(cls)

    def __init__(
        self,
        mode: str,
        num_devices: int,
        *,
        graphdef: nnx.GraphDef,
        options: StepOptions,
        mesh_shape: tuple[int, int] | None = None,
    ):
        if mesh_shape is not None and mode != "jit":
            raise ValueError(
                f"train.mesh_shape={mesh_shape} needs train.parallel='jit', got {mode!r}"
            )
        self.mode = mode
        self.num_devices = 1 if mode == "none" else num_devices
        self.graphdef = graphdef
        self.options = options

    @property
    def data_size(self) -> int:
        """Devices along the batch: each holds `B / data_size` rows of a global batch."""
        return self.num_devices

    def local_rows(self, global_rows: int) -> int:
        """Rows of a global batch of `global_rows` that this process feeds (its `RowBlocks`)."""
        return global_rows // self.blocks.count

    def put_scaler(self, scaler: StandardScaler) -> StandardScaler:
        """The scaler as float32 scalars on the devices (replicated), placed once per run."""
        return jax.device_put(jax.tree.map(np.float32, scaler), self._scaler_sharding())

    def _scaler_sharding(self) -> NamedSharding | None:
        return None


class MeshParallel(DataParallel):
    """The main path ("jit", and "none" as a 1 x 1 mesh): `jax.jit` over the run's mesh
    (`make_mesh`), the state laid out by `node_sharded_state` and donated, the batch a global
    array over ("data", -, "nodes")."""

    def __init__(self, mode: str, num_devices: int, **kwargs: Any):
        super().__init__(mode, num_devices, **kwargs)
        self.mesh = make_mesh(self.num_devices, mesh_shape=kwargs.get("mesh_shape"))
        self.blocks = row_blocks(self.mesh)
        self._replicated = NamedSharding(self.mesh, P())
        self._update = self._evaluate = None  # built from the state's layout (`_steps_for`)

    @property
    def node_sharded(self) -> bool:
        """Whether the sensors are split over devices (the model's annotations switched on)."""
        return self.mesh.shape[NODE_AXIS] > 1

    @property
    def data_size(self) -> int:
        return self.mesh.shape[DATA_AXIS]

    def _scaler_sharding(self) -> NamedSharding:
        return self._replicated

    def _steps_for(self, state: Tree) -> Tree:
        """Builds the update and eval steps for `state`'s layout (`node_sharded_state`) once;
        returns that layout. Under node sharding they trace under `jax.set_mesh`, which switches
        on the model's activation annotations."""
        layout = node_sharded_state(state, self.mesh)
        if self._update is None:
            rep = self._replicated
            update = jax.jit(
                update_step,
                static_argnums=(4, 5, 6),
                in_shardings=(layout, None, rep, rep),
                out_shardings=(layout, rep),
                donate_argnums=0,
            )
            # The prediction comes back whole along the sensors: each process reads its rows.
            evaluate = jax.jit(
                eval_step,
                static_argnums=3,
                in_shardings=(layout, None, rep),
                out_shardings=(rep, NamedSharding(self.mesh, P(DATA_AXIS))),
            )
            if self.node_sharded:
                update, evaluate = _UnderMesh(update, self.mesh), _UnderMesh(evaluate, self.mesh)
            self._update, self._evaluate = update, evaluate
        return layout

    def put_state(self, state: Tree) -> Tree:
        """Host (or single-device) state -> its layout on the mesh."""
        return jax.device_put(state, self._steps_for(state))

    def host_state(self, state: Tree) -> Tree:
        """The mesh's layout -> one copy as host numpy arrays (for checkpoints and comparisons).
        A collective under several processes (sensors sharded across them are gathered): every
        process calls it."""
        return jax.tree.map(_to_host, state)

    def batch_sharding(self, ndim: int) -> NamedSharding:
        """Where `put_batch` puts a batch array of rank `ndim`."""
        return NamedSharding(self.mesh, _batch_spec(ndim))

    def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """A host batch (this process's rows, `local_rows`, every sensor) -> global arrays: each
        device gets its rows and sensors."""
        size = next(iter(batch.values())).shape[0]
        rows = size * self.blocks.count
        if rows % self.data_size:
            raise ValueError(
                f"a global batch of {rows} rows does not split over {self.data_size} "
                f"'{DATA_AXIS}' devices"
            )
        offset = self.blocks.index * size
        return {
            k: _global_array(np.asarray(v), rows, offset, self.batch_sharding(np.ndim(v)))
            for k, v in batch.items()
        }

    def lower_update(self, state: Tree, batch: dict, scaler: StandardScaler, key: jax.Array) -> Any:
        """The update step lowered for these arguments, which may be `jax.ShapeDtypeStruct`s (with
        `batch_sharding`'s shardings on the batch): `.compile().memory_analysis()` gives the memory
        per device without running it. The state is laid out as `put_state` lays it out."""
        state = self._abstract_layout(state)  # builds the steps for that layout
        return self._update.lower(state, batch, scaler, key, self.graphdef, self.options, None)

    def lower_evaluate(self, state: Tree, batch: dict, scaler: StandardScaler) -> Any:
        """The evaluation step lowered for these arguments, as `lower_update`."""
        state = self._abstract_layout(state)  # builds the steps for that layout
        return self._evaluate.lower(state, batch, scaler, self.graphdef)

    def _abstract_layout(self, state: Tree) -> Tree:
        """`state` as `jax.ShapeDtypeStruct`s laid out as `put_state` lays it out (building the
        steps for that layout)."""
        layout = self._steps_for(state)
        return jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, layout
        )

    def update(
        self, state: Tree, batch: dict, scaler: StandardScaler, key: jax.Array
    ) -> tuple[Tree, dict[str, jax.Array]]:
        """One optimiser step; measurements are scalars left on the device (the caller fetches
        them when it needs them)."""
        return self._update(state, batch, scaler, key, self.graphdef, self.options, None)

    def evaluate(
        self, state: Tree, batch: dict, scaler: StandardScaler
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Metric sums of the global batch (host numpy, summed over all devices of all processes)
        and this process's rows of the prediction `[B_local, T_out, N]` (those of the batch it
        put, every sensor; the whole prediction with one process)."""
        sums, pred = self._evaluate(state, batch, scaler, self.graphdef)
        return jax.device_get(sums), _local_rows(pred)


class PmapParallel(DataParallel):
    """The thin alternative ("pmap", one process): the same steps under `jax.pmap` over the local
    devices, gradients and counts psum-ed over the axis `PMAP_AXIS` inside them, the state
    carrying a leading device axis."""

    def __init__(self, mode: str, num_devices: int, **kwargs: Any):
        super().__init__(mode, num_devices, **kwargs)
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

    def lower_update(self, state: Tree, batch: dict, scaler: StandardScaler, key: jax.Array) -> Any:
        """The update step lowered for these arguments (state and batch with the leading device
        axis), as `MeshParallel.lower_update`."""
        return self._update.lower(state, batch, scaler, key, self.graphdef, self.options, PMAP_AXIS)

    def lower_evaluate(self, state: Tree, batch: dict, scaler: StandardScaler) -> Any:
        """The evaluation step lowered for these arguments."""
        return self._evaluate.lower(state, batch, scaler, self.graphdef)

    def put_state(self, state: Tree) -> Tree:
        """Host state -> one copy per device (a leading device axis)."""
        n = self.num_devices
        return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), state)

    def host_state(self, state: Tree) -> Tree:
        """Device 0's copy as host numpy arrays."""
        return jax.tree.map(lambda x: np.asarray(jax.device_get(x[0])), state)

    def batch_sharding(self, ndim: int) -> None:
        """pmap places the batch by its leading device axis, not by a sharding."""
        return None

    def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A host batch -> `[devices, rows / devices, ...]`."""
        size, n = next(iter(batch.values())).shape[0], self.num_devices
        if size % n:
            raise ValueError(f"batch of {size} rows does not split over {n} devices")
        return {k: np.asarray(v).reshape(n, size // n, *np.shape(v)[1:]) for k, v in batch.items()}

    def update(
        self, state: Tree, batch: dict, scaler: StandardScaler, key: jax.Array
    ) -> tuple[Tree, dict[str, jax.Array]]:
        """One optimiser step; measurements are device 0's scalars, left on the device."""
        state, measurements = self._update(
            state, batch, scaler, key, self.graphdef, self.options, PMAP_AXIS
        )
        return state, jax.tree.map(lambda x: x[0], measurements)

    def evaluate(
        self, state: Tree, batch: dict, scaler: StandardScaler
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Metric sums of the batch (summed over the devices) and its prediction."""
        sums, pred = jax.device_get(self._evaluate(state, batch, scaler, self.graphdef))
        sums = jax.tree.map(lambda x: np.sum(x, axis=0), sums)
        return sums, np.asarray(pred).reshape(-1, *np.shape(pred)[2:])


def _to_host(x: Any) -> np.ndarray:
    """A (possibly sharded, possibly multi-process) array as one host numpy copy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def _global_array(local: np.ndarray, rows: int, offset: int, sharding: NamedSharding) -> jax.Array:
    """The global `[rows, ...]` array of which `local` is rows `[offset, offset + len(local))`,
    laid out by `sharding`: each of this process's devices gets its slice of `local`."""

    def piece(index: tuple[slice, ...]) -> np.ndarray:
        start, stop, _ = index[0].indices(rows)
        return local[(slice(start - offset, stop - offset), *index[1:])]

    return jax.make_array_from_callback((rows, *local.shape[1:]), sharding, piece)


def _local_rows(x: jax.Array) -> np.ndarray:
    """The rows of `x` (sharded over rows only) that this process's devices hold, in order."""
    if x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    pieces = {}
    for shard in x.addressable_shards:
        start = shard.index[0].indices(x.shape[0])[0]
        pieces.setdefault(start, shard.data)
    return np.concatenate([np.asarray(pieces[k]) for k in sorted(pieces)])


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
