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

from typing import Any, NamedTuple

import jax
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


def mesh_devices(num_devices: int | None = None) -> list[jax.Device]:
    """The devices a run spans: every process's (`jax.devices()`) under several processes or for
    None, else the first `num_devices` of this process."""
    if num_devices is None or jax.process_count() > 1:
        return jax.devices()
    return jax.devices()[:num_devices]


def make_mesh(num_devices: int | None = None, *, mesh_shape: tuple[int, int] | None = None) -> Mesh:
    """The run's 2-D mesh ("data", "nodes") (`AxisType.Auto`) over `mesh_devices(num_devices)`:
    `(devices, 1)`, or `mesh_shape=(data, nodes)` over them (checked against their count)."""
    devices = mesh_devices(num_devices)
    shape = (len(devices), 1) if mesh_shape is None else tuple(mesh_shape)
    check_mesh_shape(shape, len(devices))
    # Auto axes: shardings are given at the jit boundary and XLA propagates them inside (the model
    # code needs no annotations, e.g. for its embedding gathers, except under node sharding).
    return jax.make_mesh(
        shape,
        (DATA_AXIS, NODE_AXIS),
        axis_types=(jax.sharding.AxisType.Auto,) * 2,
        devices=devices,
    )


class RowBlocks(NamedTuple):
    """How the rows of a global batch are fed under a mesh: in `count` equal blocks, this process
    feeding block `index` (the rows of the "data" coordinates its devices hold); `owners[b]`, the
    first process that feeds block `b` (the one whose rows are kept when processes gather)."""

    index: int
    count: int
    owners: tuple[int, ...]


def row_blocks(mesh: Mesh) -> RowBlocks:
    """This process's `RowBlocks` under `mesh`. Raises ValueError naming `train.mesh_shape` when
    the processes' "data" coordinates are not equal contiguous blocks (a layout whose rows no
    per-process loader can feed)."""
    rows: dict[int, set[int]] = {}
    for i, line in enumerate(np.asarray(mesh.devices).reshape(mesh.devices.shape[0], -1)):
        for device in line:
            rows.setdefault(device.process_index, set()).add(i)
    blocks = sorted({tuple(sorted(r)) for r in rows.values()})
    size = len(blocks[0])
    expected = [tuple(range(b * size, (b + 1) * size)) for b in range(len(blocks))]
    if blocks != expected or len(blocks) * size != mesh.devices.shape[0]:
        raise ValueError(
            f"train.mesh_shape={tuple(mesh.devices.shape)}: the processes hold 'data' rows "
            f"{[list(b) for b in blocks]}, which are not equal contiguous blocks; choose a shape "
            "whose 'data' axis is a multiple of the process count, or 1"
        )
    index = blocks.index(tuple(sorted(rows[jax.process_index()])))
    owners = tuple(min(p for p, r in rows.items() if tuple(sorted(r)) == b) for b in blocks)
    return RowBlocks(index, len(blocks), owners)


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
    """Runs the update and eval steps of `eala_jax.train.steps` in one mode, built once per run.

    `update(state, batch, scaler, key)` and `evaluate(state, batch, scaler)` call
    `steps.update_step` / `steps.eval_step` with `graphdef` and `options` as static arguments:
    both are hashable by value, so `jax.jit`'s (and `jax.pmap`'s) own cache gives an equal run
    in the same process the compiled steps of the first. `put_state`/`host_state` move the split
    NNX state in and out of the mode's layout (host state is what gets checkpointed).
    `num_devices` counts this process's devices (every process uses all of its own under several).
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
        if mesh_shape is not None and mode != "jit":
            raise ValueError(
                f"train.mesh_shape={mesh_shape} needs train.parallel='jit', got {mode!r}"
            )
        self.mode = mode
        self.num_devices = 1 if mode == "none" else num_devices
        self.graphdef = graphdef
        self.options = options
        self.mesh = None
        self.blocks = RowBlocks(0, 1, (0,))
        self._update = self._evaluate = None
        if mode == "pmap":
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
            return
        self.mesh = make_mesh(self.num_devices, mesh_shape=mesh_shape)
        self.blocks = row_blocks(self.mesh)
        self._replicated = NamedSharding(self.mesh, P())
        # The steps are built by `put_state` / `lower_update`, from the state's layout.

    @property
    def node_sharded(self) -> bool:
        """Whether the sensors are split over devices (the model's annotations switched on)."""
        return self.mesh is not None and self.mesh.shape[NODE_AXIS] > 1

    @property
    def data_size(self) -> int:
        """Devices along the batch: each holds `B / data_size` rows of a global batch."""
        return self.num_devices if self.mesh is None else self.mesh.shape[DATA_AXIS]

    def local_rows(self, global_rows: int) -> int:
        """Rows of a global batch of `global_rows` that this process feeds (its `RowBlocks`)."""
        return global_rows // self.blocks.count

    # -- layout ---------------------------------------------------------------------------
    def put_state(self, state: Tree) -> Tree:
        """Host (or single-device) state -> this mode's layout."""
        if self.mode == "pmap":
            n = self.num_devices
            return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), state)
        return jax.device_put(state, self._mesh_steps(state))

    def _mesh_steps(self, state: Tree) -> Tree:
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

    def batch_sharding(self, ndim: int) -> NamedSharding | None:
        """Where `put_batch` puts a batch array of rank `ndim` (None under pmap)."""
        return None if self.mesh is None else NamedSharding(self.mesh, _batch_spec(ndim))

    def lower_update(self, state: Tree, batch: dict, scaler: StandardScaler, key: jax.Array) -> Any:
        """The update step lowered for these arguments, which may be `jax.ShapeDtypeStruct`s (with
        `batch_sharding`'s shardings on the batch): `.compile().memory_analysis()` gives the memory
        per device without running it. The state is laid out as `put_state` lays it out."""
        if self.mesh is not None:
            layout = self._mesh_steps(state)
            state = jax.tree.map(
                lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, layout
            )
        return self._update.lower(state, batch, scaler, key, self.graphdef, self.options, None)

    def host_state(self, state: Tree) -> Tree:
        """This mode's layout -> one copy as host numpy arrays (for checkpoints and comparisons).
        A collective under several processes (sensors sharded across them are gathered): every
        process calls it."""
        if self.mode == "pmap":
            state = jax.tree.map(lambda x: x[0], state)
        return jax.tree.map(_to_host, state)

    def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """A host batch (this process's rows, `local_rows`, every sensor) -> the mode's layout:
        each device gets its rows and sensors."""
        size = next(iter(batch.values())).shape[0]
        if self.mode == "pmap":
            n = self.num_devices
            if size % n:
                raise ValueError(f"batch of {size} rows does not split over {n} devices")
            return {
                k: np.asarray(v).reshape(n, size // n, *np.shape(v)[1:]) for k, v in batch.items()
            }
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

    # -- compute --------------------------------------------------------------------------
    def put_scaler(self, scaler: StandardScaler) -> StandardScaler:
        """The scaler as float32 scalars on the devices (replicated), placed once per run."""
        scaler = jax.tree.map(np.float32, scaler)
        return jax.device_put(scaler, None if self.mesh is None else self._replicated)

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
        put, every sensor; the whole prediction with one process)."""
        sums, pred = self._evaluate(state, batch, scaler, self.graphdef)
        if self.mode == "pmap":
            sums, pred = jax.device_get((sums, pred))
            sums = jax.tree.map(lambda x: np.sum(x, axis=0), sums)
            return sums, np.asarray(pred).reshape(-1, *np.shape(pred)[2:])
        return jax.device_get(sums), _local_rows(pred)


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
