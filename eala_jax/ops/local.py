"""`eala_local_attention`: exact softmax over a few local keys per query, EALA over the others,
mixed by the softmax mass each part would have (docs/method.md, "eala_local"; this project's
proposal, not the paper's).

Per query i, the valid keys V split into the local keys L_i (its row of `neighbours`) and the rest
R_i = V \\ L_i, n = |R_i|. The softmax row over V is exactly the mixture
`λ_i softmax_L + (1 − λ_i) softmax_R` with `λ_i = Z_L / (Z_L + Z_R)`; here `Z_L = Σ_L e^s` and
`softmax_L` are exact, and softmax_R is replaced by EALA's affine weights over R,
`(1 + θ_i (s_ij − μ_R)) / n`, with `log Z_R` from the random-energy model of R's score mean μ_R
and variance σ_R² (`log n + μ_R + σ_R²/2`, or `μ_R + σ_R √(2 log n)` beyond σ_R² = 2 log n).
μ_R, σ_R² and `Σ_R (s − μ_R)(v − v̄_R)` come from EALA's key statistics of V minus the local keys'
own terms, O(K·(d + Dv)) per query. θ_i is the entropy equality of R (Gaussian estimate), which is
the θ that makes the whole row's entropy `h(λ) + λ H_L + (1 − λ) H_R` equal its estimate
`h(λ) + λ H_L + (1 − λ) Ĥ_R` (to EALA's second order).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from eala_jax.ops import _validation
from eala_jax.ops._numerics import safe_norm, safe_sqrt
from eala_jax.ops.causal import causal_eala_rows
from eala_jax.ops.entropy import variance_deficit
from eala_jax.ops.neighbours import sliding_window
from eala_jax.ops.options import EalaLocalOptions, with_option_keywords
from eala_jax.ops.statistics import key_statistics, project_queries
from eala_jax.ops.theta import cap_theta, choose_theta

Array = jax.Array
_NEG = -1e30  # a finite "minus infinity" for masked local scores


@with_option_keywords(EalaLocalOptions)
def eala_local_attention(
    q: Array,
    k: Array,
    v: Array,
    neighbours: Any = None,
    *,
    key_mask: Array | None = None,
    options: EalaLocalOptions | None = None,
    return_stats: bool = False,
    dtype: Any = None,
    **keywords: Any,
) -> Array | tuple[Array, dict[str, Array]]:
    """Softmax over each query's local keys plus EALA over its other keys, one distribution.

    Shapes as `eala_attention`: `q: [B, T, H, D]`, `k: [B, S, H, D]`, `v: [B, S, H, Dv]` ->
    `[B, T, H, Dv]` (rank 3 without B also works). `neighbours: [T, K]` integer, row i the key
    indices of query i's local keys, -1 = none; a repeated index counts once; masked keys (and
    with `causal`, keys j > i) are dropped from it. None: a sliding window of `num_local` steps
    (`window`, `ops/neighbours.py`), which needs T == S. Indices must lie in [-1, S): checked
    where `neighbours` is concrete; a traced table's out-of-range entries count as -1.

    Every row's weights are ≥ 0 on the local keys and sum to 1 exactly; the EALA part may hold
    negative weights unless `nonnegative` (docs/method.md step 7). A row with no local key is
    EALA's row (Gaussian estimate); a row whose every valid key is local is the exact softmax.
    Options (`EalaLocalOptions`, or its fields as keywords): `theta`, `theta_gradient`,
    `nonnegative`, `causal` (query i sees keys j ≤ i; prefix statistics in chunks of
    `chunk_size`), `scale`, `num_local`, `window`. `return_stats` also returns {"theta",
    "local_mass" (λ), "entropy" (the row's estimate), "sigma2" (of the non-local scores), "count"},
    each `[B, T, H]`.

    Cost: O((T + S)·D·(D + Dv) + T·K·(D + Dv)) time per head, O(T·K·(D + Dv)) extra memory for
    the gathered local keys and values; nothing T×S.
    """
    options = EalaLocalOptions.resolve(options, keywords, op="eala_local_attention")
    x = _validation.attention_inputs(q, k, v, key_mask, causal=options.causal, scale=options.scale)
    table = _neighbour_table(neighbours, options, queries=x.q.shape[1], keys=x.k.shape[1])
    out, stats = _local_rows(
        x.q, x.k, x.v, x.key_mask, table, options=options, scale=x.scale, need_stats=return_stats
    )
    out = out.astype(dtype or x.q.dtype)
    if x.unbatched:
        out, stats = out[0], {name: value[0] for name, value in stats.items()}
    return (out, stats) if return_stats else out


def _neighbour_table(
    neighbours: Any, options: EalaLocalOptions, *, queries: int, keys: int
) -> Array:
    """The checked `[T, K]` int32 table (the sliding window of the options when None)."""
    if neighbours is None:
        if queries != keys:
            raise ValueError(
                "eala_local_attention without neighbours builds a sliding window, which needs as"
                f" many queries as keys; got q length {queries}, k length {keys}: pass"
                " neighbours=[T, K]"
            )
        return jnp.asarray(
            sliding_window(queries, options.num_local, centred=options.window == "centred")
        )
    shape = tuple(getattr(neighbours, "shape", ()))
    dtype = getattr(neighbours, "dtype", None)
    if (
        len(shape) != 2
        or shape[0] != queries
        or dtype is None
        or not jnp.issubdtype(dtype, jnp.integer)
    ):
        raise ValueError(
            f"neighbours must be an integer array [queries={queries}, K] (-1 = no key); got"
            f" {dtype} {shape}"
        )
    try:
        values = np.asarray(neighbours)
    except jax.errors.TracerArrayConversionError:
        values = None  # traced: out-of-range entries count as -1 (documented)
    if values is not None:
        if values.size and (values.min() < -1 or values.max() >= keys):
            raise ValueError(
                f"neighbours must hold key indices in [0, {keys}) or -1; got values from"
                f" {values.min()} to {values.max()}"
            )
    return jnp.asarray(neighbours, jnp.int32)


def _local_set(table: Array, valid: Array, causal: bool) -> tuple[Array, Array]:
    """Gather indices `[T, K]` (padding clipped to 0) and the local-key indicator `[B, T, K]`:
    in range, valid, the first occurrence in its row, and (causal) not after the query."""
    num_keys = valid.shape[1]
    in_range = (table >= 0) & (table < num_keys)
    index = jnp.where(in_range, table, 0)
    width = table.shape[1]
    earlier = jnp.tril(jnp.ones((width, width), bool), -1)  # entry c' < c
    repeated = jnp.any(
        (index[:, :, None] == index[:, None, :]) & in_range[:, None, :] & earlier, -1
    )
    keep = in_range & ~repeated
    if causal:
        keep = keep & (index <= jnp.arange(table.shape[0])[:, None])
    return index, keep[None] & valid[:, index]


def _log_partition(count: Array, mean: Array, sigma2: Array) -> Array:
    """Random-energy-model `log Σ e^s` of `count` scores with mean μ and variance σ²:
    `log n + μ + σ²/2` while σ² ≤ 2 log n, else `μ + σ √(2 log n)` (continuous, with a continuous
    derivative); elementwise; meaningful for count ≥ 1."""
    log_n = jnp.log(jnp.maximum(count, 1.0))
    frozen = sigma2 > 2.0 * log_n
    return jnp.where(
        frozen, mean + safe_sqrt(sigma2) * safe_sqrt(2.0 * log_n), log_n + mean + 0.5 * sigma2
    )


def _binary_entropy(p: Array) -> Array:
    """`−p log p − (1 − p) log(1 − p)`, 0 at p ∈ {0, 1}, finite gradients there."""
    xlogx = lambda x: jnp.where(x > 0, x * jnp.log(jnp.where(x > 0, x, 1.0)), 0.0)
    return -xlogx(p) - xlogx(1.0 - p)


@functools.partial(jax.jit, static_argnames=("options", "scale", "need_stats"))
def _local_rows(
    q: Array,
    k: Array,
    v: Array,
    key_mask: Array | None,
    table: Array,
    *,
    options: EalaLocalOptions,
    scale: float,
    need_stats: bool,
) -> tuple[Array, dict[str, Array]]:
    """Output `[B, T, H, Dv]` (float32 or wider) and, with `need_stats`, row statistics."""
    dtype = _validation.statistics_dtype(q.dtype)
    q, k, v = q.astype(dtype), k.astype(dtype), v.astype(dtype)
    valid = jnp.ones(k.shape[:2], bool) if key_mask is None else key_mask
    # Keys relative to the first valid key k_0: every score moves by scale·q_i·k_0, which cancels
    # in the softmax, in s − μ and in log Z_L − log Z_R, and the raw scores the local part reads
    # stay small, so a large key mean costs no precision (as in the causal scan).
    first = jnp.argmax(valid, axis=1)
    k = k - jnp.take_along_axis(k, first[:, None, None, None], axis=1)
    # Moments of all visible keys per query: μ, σ², M, v̄ and W = Σ_j (s_j − μ)(v_j − v̄).
    if options.causal:
        rows = causal_eala_rows(
            q,
            k,
            v,
            key_mask,
            scale=scale,
            deficit_fn=lambda sigma2, log_count: jnp.zeros_like(sigma2),
            theta_fn=lambda deficit, sigma2: jnp.zeros_like(sigma2),
            nonnegative=False,
            chunk_size=options.chunk_size,
            parts=True,
        )
        mean, sigma2, count = rows.mean_score, rows.sigma2, rows.count
        mean_v, weighted = rows.mean_v, rows.weighted
    else:
        stats = key_statistics(k, v, key_mask)
        mu, var, projected = project_queries(q, stats, scale)
        mean, sigma2 = jnp.swapaxes(mu, 1, 2), jnp.swapaxes(var, 1, 2)  # [B, T, H]
        weighted = jnp.swapaxes(projected, 1, 2)  # [B, T, H, Dv]
        count = jnp.broadcast_to(stats.count[:, :, None], mean.shape)
        mean_v = stats.mean_v[:, None]  # [B, 1, H, Dv]

    index, local = _local_set(table, valid, options.causal)  # [T, K], [B, T, K]
    k_local, v_local = k[:, index], v[:, index]  # [B, T, K, H, ·]
    keep = local[..., None]  # [B, T, K, 1]
    s_local = scale * jnp.einsum("bthd,btkhd->btkh", q, k_local)  # [B, T, K, H]
    n_local = jnp.sum(local, axis=-1).astype(dtype)[..., None]  # [B, T, 1]
    # Exact softmax over the local keys.
    top = jnp.max(jnp.where(keep, s_local, _NEG), axis=2)  # [B, T, H]
    e_local = jnp.where(
        keep, jnp.exp(jnp.where(keep, s_local, top[:, :, None]) - top[:, :, None]), 0
    )
    z_local = jnp.sum(e_local, axis=2)
    has_local = n_local > 0
    log_z_local = top + jnp.log(jnp.where(has_local, z_local, 1.0))
    p_local = e_local / jnp.where(has_local, z_local, 1.0)[:, :, None]
    out_local = jnp.einsum("btkh,btkhe->bthe", p_local, v_local)
    entropy_local = log_z_local - jnp.sum(p_local * s_local, axis=2)

    # The rest R = V \ L from the moments of V minus the local keys' terms.
    n_rest = count - n_local
    has_rest = n_rest > 0
    safe_rest = jnp.where(has_rest, n_rest, 1.0)
    d_local = jnp.where(keep, s_local - mean[:, :, None], 0.0)  # s_j − μ
    vc_local = jnp.where(keep[..., None], v_local - mean_v[:, :, None], 0.0)  # v_j − v̄
    shift = -jnp.sum(d_local, axis=2) / safe_rest  # μ_R − μ
    mean_rest = mean + shift
    sigma2_rest = jnp.maximum(
        (count * sigma2 - jnp.sum(d_local * d_local, axis=2)) / safe_rest - shift * shift, 0.0
    )
    shift_v = -jnp.sum(vc_local, axis=2) / safe_rest[..., None]  # v̄_R − v̄
    weighted_rest = (
        weighted
        - jnp.einsum("btkh,btkhe->bthe", d_local, vc_local)
        - (n_rest * shift)[..., None] * shift_v
    )  # Σ_R (s − μ_R)(v − v̄_R)
    log_rest = jnp.log(safe_rest)
    deficit = variance_deficit("gaussian", sigma2_rest, log_rest)
    theta = choose_theta(
        deficit, sigma2_rest, theta=options.theta, theta_gradient=options.theta_gradient
    )
    if options.nonnegative:
        # |s_j − μ_R| ≤ scale·‖q‖·‖k_j − k̄_R‖ ≤ scale·‖q‖·(r + ‖k̄ − k̄_R‖), r = max_V ‖k_j − k̄‖.
        mean_k = (
            jnp.sum(valid[..., None, None] * k, 1)
            / jnp.maximum(jnp.sum(valid, 1), 1).astype(dtype)[:, None, None]
        )  # [B, H, D]
        radius = jnp.max(jnp.where(valid[..., None], safe_norm(k - mean_k[:, None]), 0.0), 1)
        kc_local = jnp.where(keep[..., None], k_local - mean_k[:, None, None], 0.0)
        offset = safe_norm(jnp.sum(kc_local, axis=2) / safe_rest[..., None])  # ‖k̄_R − k̄‖
        theta = cap_theta(theta, scale * safe_norm(q) * (radius[:, None] + offset))
    out_rest = mean_v + shift_v + (theta / safe_rest)[..., None] * weighted_rest

    # λ = Z_L / (Z_L + Z_R): 0 without local keys, 1 without other keys.
    logit = log_z_local - _log_partition(n_rest, mean_rest, sigma2_rest)
    mass = jnp.where(has_rest, jnp.where(has_local, jax.nn.sigmoid(logit), 0.0), 1.0)
    out = mass[..., None] * out_local + (1.0 - mass)[..., None] * out_rest
    out = jnp.where((count > 0)[..., None], out, 0.0)
    if not need_stats:
        return out, {}
    entropy_rest = log_rest - deficit
    entropy = _binary_entropy(mass) + mass * entropy_local + (1.0 - mass) * entropy_rest
    entropy = jnp.where(count > 0, entropy, 0.0)
    return out, dict(theta=theta, local_mass=mass, entropy=entropy, sigma2=sigma2_rest, count=count)
