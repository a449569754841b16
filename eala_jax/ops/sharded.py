"""EALA over keys spread across devices, under `jax.shard_map` (docs/training.md, "Sharding the
sensors").

Every statistic EALA needs of its keys (count, means, centred co-moments) is a sum over keys, so
each device computes them for its own keys (`key_statistics`), the per-device statistics are
gathered (one all-gather of `[B, H, D, D + Dv]` per device) and merged exactly with Chan et al.'s
pairwise update (`merge_statistics`, no raw-moment cancellation). Queries stay local. The result
equals `eala_attention` on all keys at once to float32 rounding.

This is the explicit alternative to letting XLA partition `eala_attention` itself (the default in
`ELinFormer`: with the keys' axis sharded, XLA turns the two passes of `key_statistics` into two
all-reduces); `benchmarks/scale.py` measures both. Gaussian entropy estimate or a fixed θ; no
causal mode (causal keys are time steps, which stay on one device).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from eala_jax.ops import _validation
from eala_jax.ops.options import EalaOptions
from eala_jax.ops.statistics import (
    KeyStatistics,
    key_statistics,
    merge_statistics,
    project_queries,
)
from eala_jax.ops.theta import eala_output, row_map

Array = jax.Array

__all__ = ["gathered_statistics", "node_sharded_eala", "sharded_eala_attention"]


def gathered_statistics(
    k: Array, v: Array, key_mask: Array | None, axis_name: str
) -> KeyStatistics:
    """Statistics of the keys of every device along `axis_name` (call inside `shard_map`).

    `k: [B, S_local, H, D]`, `v: [B, S_local, H, Dv]`, `key_mask: [B, S_local]` or None. One
    all-gather of the local statistics, then a pairwise merge tree (log2 of the device count
    levels, each vectorised over pairs). Cost O(S_local·D·(D + Dv)) plus O(n·D·(D + Dv)) per head.
    """
    local = key_statistics(k, v, key_mask)
    stats = jax.lax.all_gather(local, axis_name)  # every field gains a leading device axis
    merge = jax.vmap(merge_statistics)
    while stats.count.shape[0] > 1:
        n = stats.count.shape[0]
        half = n // 2
        merged = merge(
            jax.tree.map(lambda x, h=half: x[:h], stats),
            jax.tree.map(lambda x, h=half: x[h : 2 * h], stats),
        )
        if n % 2:  # an odd one out joins the next level unmerged
            merged = jax.tree.map(lambda m, x: jnp.concatenate([m, x[-1:]]), merged, stats)
        stats = merged
    return jax.tree.map(lambda x: x[0], stats)


def node_sharded_eala(
    q: Array,
    k: Array,
    v: Array,
    *,
    key_mask: Array | None,
    axis_name: str,
    theta: str | float = "optimal",
    scale: float | None = None,
) -> Array:
    """EALA of local queries against the keys of all devices along `axis_name` (inside
    `shard_map`): `q: [B, T_local, H, D]`, `k, v: [B, S_local, H, D/Dv]` -> `[B, T_local, H, Dv]`.

    Gaussian entropy estimate (`θ* = √(2 min(σ²/2, log M) / σ²)`) or a fixed `theta`; the
    statistics are float32 (or wider). Rows without a valid key anywhere give zeros, as
    `eala_attention`.
    """
    options = _options(theta, scale, op="node_sharded_eala")
    return _node_sharded(q, k, v, key_mask, axis_name, options)


def _options(theta: str | float, scale: float | None, *, op: str) -> EalaOptions:
    """The EALA options of the sharded ops, built (and so checked) once from their keywords."""
    return EalaOptions.resolve(None, dict(theta=theta, scale=scale), op=op)


def _node_sharded(
    q: Array, k: Array, v: Array, key_mask: Array | None, axis_name: str, options: EalaOptions
) -> Array:
    """`node_sharded_eala` with checked `options` (theta and scale; the others at defaults)."""
    x = _validation.attention_inputs(q, k, v, key_mask, causal=False, scale=options.scale)
    dtype = _validation.statistics_dtype(x.q.dtype)
    q32, k32, v32 = (a.astype(dtype) for a in (x.q, x.k, x.v))
    stats = gathered_statistics(k32, v32, x.key_mask, axis_name)
    _, sigma2, weighted = project_queries(q32, stats, x.scale)
    sigma2, weighted = jnp.swapaxes(sigma2, 1, 2), jnp.swapaxes(weighted, 1, 2)  # [B, T, H, ·]
    count = stats.count[:, None, :]  # [B, 1, 1]
    rows = row_map(
        theta=options.theta if isinstance(options.theta, str) else float(options.theta),
        theta_gradient=options.theta_gradient,
        min_entropy=options.min_entropy,
        need_entropy=False,
        estimator=options.estimator,
    )
    theta_value, _ = rows(sigma2, None, None, jnp.log(jnp.maximum(count, 1.0)))
    out = eala_output(stats.mean_v[:, None], theta_value, weighted, count).astype(x.q.dtype)
    return out[0] if x.unbatched else out


def sharded_eala_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    mesh: Mesh,
    key_mask: Array | None = None,
    batch_axis: str | None = "data",
    key_axis: str = "nodes",
    theta: str | float = "optimal",
    scale: float | None = None,
) -> Array:
    """Non-causal self- or cross-attention with the length axis of `q, k, v [B, L, H, D]` sharded
    over the mesh axis `key_axis` (and the batch over `batch_axis`): `node_sharded_eala` under
    `jax.shard_map`. Lengths must divide by the `key_axis` size (pad with masked keys)."""
    size = mesh.shape[key_axis]
    for name, a in (("q", q), ("k", k)):
        if a.shape[1] % size:
            raise ValueError(
                f"{name}.shape[1]={a.shape[1]} is not divisible by the {key_axis!r} mesh axis "
                f"({size} devices); pad with masked keys"
            )
    options = _options(theta, scale, op="sharded_eala_attention")
    spec = P(batch_axis, key_axis)
    masks = () if key_mask is None else (key_mask,)

    def body(q, k, v, *mask):
        return _node_sharded(q, k, v, mask[0] if mask else None, key_axis, options)

    in_specs = (spec, spec, spec) + (spec,) * len(masks)
    return jax.shard_map(body, mesh=mesh, in_specs=in_specs, out_specs=spec)(q, k, v, *masks)
