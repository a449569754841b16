"""Refuse a run whose model or steps cannot fit in memory, before anything large is built.

`check_memory(config, dp, state, ...)` runs in `train_and_evaluate` after the data is loaded and
before the model is initialised, on shapes only (`nnx.eval_shape`):

1. the model and optimiser state (parameters and Adam's two moments) against the memory that
   initialising it takes: one device's on an accelerator; on a CPU the host's, twice (the arrays
   and the host copy the loop keeps as its template);
2. the update and evaluation steps, compiled for the run's batch shapes and device layout
   (`DataParallel.lower_update` / `lower_evaluate`, abstract arguments, nothing runs), each with
   XLA's memory analysis: arguments + outputs + temporaries - donated, per device. On an
   accelerator each device's need is checked against its own free memory; CPU devices share the
   host's, so the needs of all of them (and the host's copies of the state) are added up.

A step that does not fit raises `InsufficientMemoryError` (a ValueError: the command line prints it
as one `error:` line) naming the compiled size, the memory available and the settings that shrink
it. The abstract arguments carry the same shapes and shardings as the loop's real ones, so
`jax.jit`'s cache hands the loop the executables compiled here: the steps compile before training
instead of at the first step and the first validation, and not twice (docs/training.md, "Memory,
checked before training").

Available memory: `device.memory_stats()` (`bytes_limit - bytes_in_use`) on GPU/TPU; on CPU
`MemAvailable` of /proc/meminfo, lowered to a cgroup's remaining limit where one is set. Where
neither is known the check is skipped and says so.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

__all__ = [
    "InsufficientMemoryError",
    "StepMemory",
    "available_memory",
    "check_memory",
    "compiled_memory",
    "host_available_memory",
    "state_bytes",
]

GIB = 2**30
Tree = Any


class InsufficientMemoryError(ValueError):
    """The model or a compiled step needs more memory than the devices (or the host) have; the
    message names the size, the memory available and the settings that shrink it."""


@dataclasses.dataclass(frozen=True)
class StepMemory:
    """XLA's memory analysis of one compiled step, bytes per device."""

    argument: int
    output: int
    temp: int
    alias: int  # outputs written into donated arguments, counted in both

    @property
    def peak(self) -> int:
        """Bytes one device holds while the step runs."""
        return self.argument + self.output + self.temp - self.alias

    @classmethod
    def of(cls, compiled: Any) -> StepMemory | None:
        """From a `jax.stages.Compiled`; None where the backend gives no analysis."""
        stats = compiled.memory_analysis()
        if stats is None:
            return None
        return cls(
            int(stats.argument_size_in_bytes),
            int(stats.output_size_in_bytes),
            int(stats.temp_size_in_bytes),
            int(stats.alias_size_in_bytes),
        )

    def describe(self) -> str:
        donated = f", less {_gib(self.alias)} donated" if self.alias else ""
        return (
            f"arguments {_gib(self.argument)}, outputs {_gib(self.output)}, temporaries "
            f"{_gib(self.temp)}{donated}"
        )


def _gib(size: float) -> str:
    """Bytes in GiB (2**30), or MiB below a tenth of one."""
    return f"{size / GIB:.2f} GiB" if size >= GIB / 10 else f"{size / 2**20:.1f} MiB"


def state_bytes(state: Tree) -> int:
    """Bytes of every array (or `jax.ShapeDtypeStruct`) leaf of `state`."""
    return sum(
        math.prod(x.shape) * np.dtype(x.dtype).itemsize
        for x in jax.tree.leaves(state)
        if hasattr(x, "shape")
    )


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def host_available_memory(root: Path = Path("/")) -> tuple[int, str] | None:
    """(bytes, where from) the host can still give this process: `MemAvailable` of /proc/meminfo
    (the free pages from `os.sysconf` where it cannot be read), lowered to the cgroup's remaining
    limit where one is set (a container's limit may be far below the machine's memory). None if
    unknown. `root`: where /proc and /sys are (tests point it at a fake tree)."""
    available, source = None, ""
    try:
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available, source = int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
                break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            source = "free pages, os.sysconf"
        except (OSError, ValueError, AttributeError):
            return None
    cgroups = (  # (limit, usage): cgroup v2, then v1
        ("sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory.current"),
        (
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    )
    for limit_file, usage_file in cgroups:
        limit, usage = _read_int(root / limit_file), _read_int(root / usage_file)
        if limit is not None and usage is not None and limit - usage < available:
            available, source = max(limit - usage, 0), f"the cgroup's limit (/{limit_file})"
            break
    return available, source


def available_memory(devices: list[Any]) -> tuple[int, str] | None:
    """(bytes, where from) free for one of `devices`' arrays: the smallest `bytes_limit -
    bytes_in_use` of their `memory_stats()` on an accelerator; the host's (shared by all CPU
    devices, `host_available_memory`) on CPU. None where unknown."""
    if devices[0].platform == "cpu":
        return host_available_memory()
    free = []
    for device in devices:
        stats = device.memory_stats() or {}
        if "bytes_limit" not in stats:
            return None
        free.append(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return min(free), f"free of {devices[0].device_kind} memory_stats()['bytes_limit']"


def _abstract_arguments(dp: Any, state: Tree, window: dict[str, Any], rows: int) -> tuple:
    """(state, batch) as `jax.ShapeDtypeStruct`s with the shapes and shardings the loop's
    `put_state` / `put_batch` give the real ones (so jit's cache matches), `rows` rows a batch
    (global)."""
    if dp.mode == "pmap":  # a leading device axis on everything mapped
        n = dp.num_devices
        state = jax.tree.map(lambda x: jax.ShapeDtypeStruct((n, *x.shape), x.dtype), state)
        batch = {
            k: jax.ShapeDtypeStruct((n, rows // n, *np.shape(v)), np.asarray(v).dtype)
            for k, v in window.items()
        }
        return state, batch
    # The state's layout on the mesh is `lower_update` / `lower_evaluate`'s (as `put_state`'s).
    state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    batch = {
        k: jax.ShapeDtypeStruct(
            (rows, *np.shape(v)), np.asarray(v).dtype, sharding=dp.batch_sharding(np.ndim(v) + 1)
        )
        for k, v in window.items()
    }
    return state, batch


def compiled_memory(
    dp: Any,
    state: Tree,
    window: dict[str, Any],
    scaler: Any,
    key: jax.Array,
    *,
    batch_rows: int,
    eval_rows: int,
    steps: tuple[str, ...] = ("update", "evaluation"),
) -> dict[str, StepMemory | None]:
    """{"update": ..., "evaluation": ...} (those of `steps`): the memory per device of `dp`'s
    steps compiled for `state` (shapes) and batches of `batch_rows` / `eval_rows` rows (global) of
    `window`'s arrays (None where the backend gives no analysis). Nothing runs; the executables
    stay in jit's cache, where the loop's calls with the same shapes and layouts find them."""
    sizes = {}
    if "update" in steps:
        abstract_state, batch = _abstract_arguments(dp, state, window, batch_rows)
        compiled = dp.lower_update(abstract_state, batch, scaler, key).compile()
        sizes["update"] = StepMemory.of(compiled)
    if "evaluation" in steps:
        abstract_state, batch = _abstract_arguments(dp, state, window, eval_rows)
        sizes["evaluation"] = StepMemory.of(
            dp.lower_evaluate(abstract_state, batch, scaler).compile()
        )
    return sizes


def _settings(config: Any, *, on_host: bool) -> str:
    """The settings that shrink the steps, with their values now."""
    t, m = config.train, config.model
    update = [
        f"a smaller train.batch_size (now {t.batch_size})",
        f"more train.microbatches (now {t.microbatches}; each device's rows in that many slices, "
        "one after another)",
    ]
    if not m.remat:
        update.append("model.remat=true (recomputes each attention block in the backward pass)")
    text = (
        f"for the update step {', '.join(update)}; for the evaluation step a smaller "
        f"train.eval_batch_size (now {t.eval_batch_size})"
    )
    if not on_host:  # CPU devices share one memory: sharding the sensors over them saves none
        mesh = None if t.mesh_shape is None else list(t.mesh_shape)
        text += (
            f"; for both, train.mesh_shape=[data, nodes] (now {mesh}) to shard the sensors over "
            "the devices"
        )
    return text


def _largest_leaf(state: Tree) -> str:
    """`model.<path> [shape] (size)` of the largest array of the split (model, optimiser)."""
    path, leaf = max(
        jax.tree_util.tree_leaves_with_path(state), key=lambda pl: math.prod(pl[1].shape)
    )
    names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
    names = [{"0": "model", "1": "optimizer"}.get(names[0], names[0]), *names[1:]]
    names = names[:-1] if names[-1] == "value" else names
    return f"{'.'.join(names)} {list(leaf.shape)} ({_gib(state_bytes(leaf))})"


def check_memory(
    config: Any,
    dp: Any,
    state: Tree,
    window: dict[str, Any],
    scaler: Any,
    key: jax.Array,
    *,
    eval_rows: int,
) -> str:
    """Refuse (`InsufficientMemoryError`) a run of `config` whose model and optimiser `state`
    (shapes, e.g. from `nnx.eval_shape`) or whose update / evaluation step, compiled by `dp` (a
    `DataParallel`) for batches of `config.train.batch_size` / `eval_rows` rows (global) of
    `window`'s arrays, needs more memory than there is. `scaler` and `key` are the small arrays
    the loop passes the steps. Returns a log line with the sizes. Costs one compile of each step
    (which the loop's first call of it finds in jit's cache) and no device memory."""
    start = time.perf_counter()
    devices = jax.local_devices()[: dp.num_devices]
    available = available_memory(devices)
    if available is None:
        return "Memory check skipped: this backend reports no memory limit."
    free, source = available
    on_host = devices[0].platform == "cpu"
    where = (
        f"{len(devices)} CPU device(s) sharing this host's memory"
        if on_host
        else f"each of {len(devices)} {devices[0].device_kind} device(s)"
    )
    model_bytes = state_bytes(state)
    init = 2 * model_bytes if on_host else model_bytes
    if init > free:
        raise InsufficientMemoryError(
            f"the model does not fit in memory: its parameters and optimiser state (Adam keeps "
            f"two moments of each parameter) take {_gib(model_bytes)}"
            + (", twice on the host while it is initialised and copied" if on_host else "")
            + f", but {_gib(free)} is available ({source}). Largest array: "
            f"{_largest_leaf(state)}. Shrink the model's widths (model.input_embedding_dim, "
            "model.feed_forward_dim, model.adaptive_embedding_dim, ...); batch settings do not "
            "shrink it. Set train.check_memory=false to try anyway."
        )
    host_copies = 2 * model_bytes if on_host else 0  # the loop's template and a checkpoint's
    sizes = {}
    for name in ("update", "evaluation"):  # one at a time: a refusal spares the other's compile
        sizes |= compiled_memory(
            dp,
            state,
            window,
            scaler,
            key,
            batch_rows=config.train.batch_size,
            eval_rows=eval_rows,
            steps=(name,),
        )
        memory = sizes[name]
        if memory is None:
            return f"Memory check skipped: no memory analysis of the {name} step on this backend."
        need = memory.peak * len(devices) + host_copies if on_host else memory.peak
        if need > free:
            rows = eval_rows if name == "evaluation" else config.train.batch_size
            total = (
                f"; {_gib(need)} in all for {where}, with {_gib(host_copies)} of host copies of "
                "the model and optimiser state"
                if on_host
                else f" on {where}"
            )
            raise InsufficientMemoryError(
                f"the {name} step does not fit in memory: compiled for batches of {rows} rows it "
                f"needs {_gib(memory.peak)} per device ({memory.describe()}){total}, but "
                f"{_gib(free)} is available ({source}). To shrink it: "
                f"{_settings(config, on_host=on_host)}. Set train.check_memory=false to try "
                "anyway."
            )
    return (
        f"Memory: update step {_gib(sizes['update'].peak)}, evaluation step "
        f"{_gib(sizes['evaluation'].peak)} per device, model and optimiser state "
        f"{_gib(model_bytes)}; {_gib(free)} available for {where} ({source}); checked in "
        f"{time.perf_counter() - start:.1f} s."
    )
