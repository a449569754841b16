"""Timing of jitted functions: compile apart, warm-up, median of repeats, memory and FLOPs from
XLA."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def measure(
    fn: Callable[..., Any],
    *args: Any,
    repeats: int = 5,
    min_seconds: float = 0.0,
    budget_bytes: float = float("inf"),
    max_seconds: float = 60.0,
) -> dict[str, Any]:
    """Compiles `jax.jit(fn)` for `args`, then times calls after one warm-up call.

    Returns compile seconds, median/min call seconds (`block_until_ready`), the compiled program's
    memory (arguments + outputs + temporaries, bytes) and XLA's FLOP estimate. At least `repeats`
    calls, more while their total stays under `min_seconds`, fewer (at least one) when `repeats`
    calls would take longer than `max_seconds`. A program whose memory exceeds
    `budget_bytes` is not run: `status` says so.
    """
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    compiled_bytes = peak_bytes(compiled)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    xla_flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    result: dict[str, Any] = {
        "compile_s": compile_s,
        "peak_bytes": compiled_bytes,
        "xla_flops": xla_flops,
    }
    if compiled_bytes > budget_bytes:
        result["status"] = (
            f"does not fit: needs {compiled_bytes / 2**30:.1f} GiB > "
            f"{budget_bytes / 2**30:.0f} GiB budget"
        )
        return result
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))  # warm-up
    warm_up_s = time.perf_counter() - start
    if warm_up_s * repeats > max_seconds:  # slow points: as many calls as fit in max_seconds (≥ 1)
        repeats = max(1, int(max_seconds / warm_up_s))
    times: list[float] = []
    while len(times) < repeats or sum(times) < min_seconds:
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
        if len(times) >= 50:
            break
    result.update(
        status="ok", median_s=statistics.median(times), min_s=min(times), calls=len(times)
    )
    return result


def compiled_peak_bytes(fn: Callable[..., Any], *args: Any) -> float:
    """Memory of `jax.jit(fn)` compiled for `args` (arrays or `jax.ShapeDtypeStruct`s), without
    running it."""
    return peak_bytes(jax.jit(fn).lower(*args).compile())


def peak_bytes(compiled: Any) -> float:
    """Arguments + outputs + temporaries − aliased bytes, from XLA's memory analysis (NaN if
    absent)."""
    memory = compiled.memory_analysis()
    if memory is None:
        return float("nan")
    return float(
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
    )


def peak_rss_bytes() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def matmul_flops_per_second(size: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matmul throughput of this device (2·n³ FLOPs per n×n product)."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    result = measure(lambda x, y: x @ y, a, b, repeats=repeats)
    return 2.0 * size**3 / result["median_s"]
