"""The devices a run spans and how its batches split over them: the mesh ("data", "nodes") over
the global devices, the checks of `train.num_devices` / `train.batch_size` / `train.microbatches`
/ `train.mesh_shape` against the devices there are, and which rows of a global batch each process
feeds (`row_blocks`). Used by `eala_jax.train.sharding` and checked by the loop before any data is
loaded."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from eala_jax.models.elinformer import NODE_AXIS

__all__ = [
    "DATA_AXIS",
    "PARALLEL_MODES",
    "PMAP_AXIS",
    "RowBlocks",
    "check_batch_divisible",
    "check_mesh_shape",
    "check_microbatches",
    "make_mesh",
    "mesh_devices",
    "resolve_device_count",
    "row_blocks",
]

#: Values of `train.parallel`.
PARALLEL_MODES = ("jit", "pmap", "none")
DATA_AXIS = "data"
PMAP_AXIS = "batch"


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
