"""EALA's statistics route (docs/method.md steps 1-7) as one `jax.custom_vjp`.

Autodiff of the forward pass keeps the centred keys and values `[kc | vc]`, the `[T, D + Dv]`
query projection and several `[T]`-sized intermediates per head. The backward pass below keeps
only the inputs and the `O(D·(D + Dv))` key statistics, and recomputes the centred keys; its
memory is that of the inputs and the gradients (docs/method.md, "Hand-written backward pass").

Derivation, per (batch, head); `w_j ∈ {0, 1}` the key mask, `M = Σ_j w_j`, `M' = max(M, 1)`,
`kc_j = w_j (k_j − k̄)`, `vc_j = v_j − v̄`, `A = Σ_j kc_j kc_jᵀ`, `C = Σ_j kc_j vc_jᵀ`, `Σ = A / M'`:

    μ_i  = s q_i·k̄                     σ²_i = max(s² q_iᵀ Σ q_i, 0)        W_i = s q_iᵀ C
    θ_i  = R(σ²_i, δ_i, s‖q_i‖r)        r = max_j w_j ‖k_j − k̄‖  (r only with the cap)
    o_i  = [M > 0] (v̄ + θ_i W_i / M')

with `s` the score scale and `R` the per-row map of `row_theta` (estimate → deficit → floor → θ →
cap). Given cotangents `g_i` of `o_i` (and `ḡθ, ḡσ², ḡδ, ḡμ` of the returned row statistics):

    G_i   = C g_i                                   one product [T, Dv] × [Dv, D]
    dθ_i  = s q_i·G_i / M' + ḡθ_i
    (dσ²_i, dδ_i, db_i) = R's VJP at (dθ_i, ḡδ_i) (elementwise), dσ²_i += ḡσ²_i, masked to σ²_i > 0
    dq_i  = s θ_i G_i / M' + 2 s² dσ²_i Σ q_i + s ḡμ_i k̄ + s r db_i q_i/‖q_i‖
    [dA | dC | dk̄] = Qᵀ [s² dσ² ⊙ Q / M' | s θ ⊙ g / M' | s ḡμ]      one product [D, T] × [T, ·]
    dv̄    = Σ_i g_i,   dr = s Σ_i ‖q_i‖ db_i
    dk_j  = w_j ((dA + dAᵀ) kc_j + dC vc_j + dk̄ / M') + dr (u_j − (w_j / M') Σ_l u_l)
    dv_j  = w_j (dCᵀ kc_j + dv̄ / M')

(`g` is zero on rows without a valid key.) The centring adds nothing more: `Σ_j kc_j = 0` and
`Σ_j w_j vc_j = 0`, so the paths through k̄ and v̄ inside A and C cancel exactly. `u_j` is the unit
vector `kc_j / ‖kc_j‖` at the key(s) attaining the radius r (shared equally among ties, as JAX's
`max`), 0 elsewhere. `dk` and `dv` come from one product `[kc | vc] · [[dA + dAᵀ, dC], [dCᵀ, 0]]`.

What stays with autodiff: the per-row scalar map `R` (elementwise on `[B, H, T]`, differentiated
with `jax.vjp` in the backward pass, so its kinks behave exactly as the forward code's `where`s),
and any entropy estimator other than "gaussian": its deficit is an input `deficit` here, computed
and differentiated outside (`ops/eala.py`).

Cost: forward as before, O((T + S)·D·(D + Dv)); backward four products of the same size. Memory:
inputs, outputs, `[B, H, T]` row statistics and the `[B, H, D, D + Dv]` key statistics.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from eala_jax.ops._numerics import safe_norm
from eala_jax.ops.theta import RowMap, eala_output

Array = jax.Array


class StatisticsRows(NamedTuple):
    """Outputs of `statistics_rows`: `out: [B, T, H, Dv]`, the others `[B, T, H]`."""

    out: Array
    theta: Array
    sigma2: Array
    deficit: Array
    mean_score: Array


def statistics_rows(
    q: Array,
    k: Array,
    v: Array,
    weight: Array,
    deficit: Array | None,
    *,
    scale: float,
    row_map: RowMap,
    nonnegative: bool,
    autodiff: bool = False,
) -> StatisticsRows:
    """Non-causal EALA from key statistics, with the hand-written VJP of this module's docstring.

    `q: [B, T, H, D]`, `k: [B, S, H, D]`, `v: [B, S, H, Dv]`, `weight: [B, S]` (1.0 valid key, 0.0
    masked; no gradient), `deficit: [B, T, H]` the estimator's entropy deficit, or None where
    `row_map` forms it from σ² (the Gaussian estimate). `row_map(sigma2, deficit, bound,
    log_count) -> (theta, deficit)` on `[B, H, T]` arrays (`bound` is None without the cap).
    `autodiff=True` leaves the same forward code to JAX's autodiff (the reference of the tests).
    """
    if autodiff:
        return _forward(q, k, v, weight, deficit, scale, row_map, nonnegative)[0]
    return _rows(q, k, v, weight, deficit, scale, row_map, nonnegative)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _rows(q, k, v, weight, deficit, scale, row_map, nonnegative):
    return _forward_rule(q, k, v, weight, deficit, scale, row_map, nonnegative)[0]


def _heads(x: Array) -> Array:
    """`[B, L, H, ·] <-> [B, H, L, ·]` (also `[B, L, H] <-> [B, H, L]`)."""
    return jnp.swapaxes(x, 1, 2)


def _centred(k_heads: Array, v_heads: Array, w: Array, mean_k: Array, mean_v: Array) -> Array:
    """`[w (k − k̄) | v − v̄]`, `[B, H, S, D + Dv]` (one fused elementwise pass)."""
    return jnp.concatenate(
        [(k_heads - mean_k[:, :, None]) * w, v_heads - mean_v[:, :, None]], axis=-1
    )


def _forward(q, k, v, weight, deficit, scale, row_map, nonnegative):
    dim = q.shape[-1]
    w = weight[:, None, :, None]  # [B, 1, S, 1]
    count = jnp.sum(weight, axis=1)[:, None, None]  # [B, 1, 1]
    safe = jnp.maximum(count, 1.0)
    k_heads, v_heads, q_heads = _heads(k), _heads(v), _heads(q)
    mean_k = jnp.sum(w * k_heads, axis=2) / safe  # [B, H, D]
    mean_v = jnp.sum(w * v_heads, axis=2) / safe
    joint = _centred(k_heads, v_heads, w, mean_k, mean_v)
    comoments = jnp.einsum("bhsd,bhse->bhde", joint[..., :dim], joint)  # [A | C]
    cov = comoments[..., :dim] / safe[..., None]
    comoment_kv = comoments[..., dim:]
    projected = jnp.einsum("bhtd,bhde->bhte", q_heads, jnp.concatenate([cov, comoment_kv], -1))
    sigma2 = jnp.maximum(scale * scale * jnp.sum(projected[..., :dim] * q_heads, axis=-1), 0.0)
    mean_score = scale * jnp.einsum("bhtd,bhd->bht", q_heads, mean_k)
    radius = bound = None
    if nonnegative:
        spread = jnp.where(w[..., 0] > 0, safe_norm(joint[..., :dim]), 0.0)  # [B, H, S]
        radius = jnp.max(spread, axis=-1)  # [B, H]
        bound = scale * safe_norm(q_heads) * radius[..., None]
    deficit_heads = None if deficit is None else _heads(deficit)
    log_count = jnp.log(safe)
    theta, deficit_out = row_map(sigma2, deficit_heads, bound, log_count)
    out = eala_output(mean_v[:, :, None], theta, scale * projected[..., dim:], count)
    rows = StatisticsRows(
        _heads(out), _heads(theta), _heads(sigma2), _heads(deficit_out), _heads(mean_score)
    )
    return rows, (mean_k, mean_v, cov, comoment_kv, sigma2, radius)


def _backward_block(scale, row_map, nonnegative, inputs, statistics, cotangents):
    q, k, v, weight, deficit = inputs
    mean_k, mean_v, cov, comoment_kv, sigma2, radius = statistics
    g_out, g_theta, g_sigma2, g_deficit, g_mean = cotangents
    dim = q.shape[-1]
    w = weight[:, None, :, None]
    count = jnp.sum(weight, axis=1)[:, None, None]
    safe = jnp.maximum(count, 1.0)
    has_key = count > 0  # [B, 1, 1]
    q_heads = _heads(q)
    g = jnp.where(has_key[..., None], _heads(g_out), 0.0)  # [B, H, T, Dv]
    # Per-row map, recomputed and differentiated by JAX (elementwise on [B, H, T]).
    q_norm = bound = None
    if nonnegative:
        q_norm = safe_norm(q_heads)
        bound = scale * q_norm * radius[..., None]
    deficit_heads = None if deficit is None else _heads(deficit)
    (theta, _), row_vjp = jax.vjp(
        lambda *x: row_map(*x, jnp.log(safe)), sigma2, deficit_heads, bound
    )
    big_g = jnp.einsum("bhte,bhde->bhtd", g, comoment_kv)  # G_i = C g_i
    d_theta = scale * jnp.sum(q_heads * big_g, axis=-1) / safe + _heads(g_theta)
    d_sigma2, d_deficit, d_bound = row_vjp((d_theta, _heads(g_deficit)))
    d_sigma2 = jnp.where(sigma2 > 0, d_sigma2 + _heads(g_sigma2), 0.0)
    g_mean = _heads(g_mean)
    theta_over = theta / safe
    d_q = (
        (scale * theta_over)[..., None] * big_g
        + (2.0 * scale * scale * d_sigma2)[..., None] * jnp.einsum("bhtd,bhde->bhte", q_heads, cov)
        + scale * g_mean[..., None] * mean_k[:, :, None]
    )
    right = jnp.concatenate(
        [
            (scale * scale * d_sigma2 / safe)[..., None] * q_heads,
            (scale * theta_over)[..., None] * g,
            scale * g_mean[..., None],
        ],
        axis=-1,
    )
    left = jnp.einsum("bhtd,bhte->bhde", q_heads, right)  # [dA | dC | dk̄]
    d_comoment_kk, d_comoment_kv, d_mean_k = (
        left[..., :dim],
        left[..., dim:-1],
        left[..., -1],
    )
    d_mean_v = jnp.sum(g, axis=2)  # [B, H, Dv]
    k_heads, v_heads = _heads(k), _heads(v)
    joint = _centred(k_heads, v_heads, w, mean_k, mean_v)
    d_v_dim = v.shape[-1]
    kernel = jnp.concatenate(
        [
            jnp.concatenate(
                [d_comoment_kk + jnp.swapaxes(d_comoment_kk, -1, -2), d_comoment_kv], -1
            ),
            jnp.concatenate(
                [
                    jnp.swapaxes(d_comoment_kv, -1, -2),
                    jnp.zeros(d_mean_v.shape[:2] + (d_v_dim, d_v_dim), q.dtype),
                ],
                -1,
            ),
        ],
        -2,
    )  # [B, H, D + Dv, D + Dv]
    d_joint = jnp.einsum("bhsx,bhxy->bhsy", joint, kernel)
    d_k = w * (d_joint[..., :dim] + (d_mean_k / safe)[:, :, None])
    d_v = w * (d_joint[..., dim:] + (d_mean_v / safe)[:, :, None])
    if nonnegative:
        d_radius = scale * jnp.sum(q_norm * d_bound, axis=-1)  # [B, H]
        d_q = (
            d_q
            + (scale * radius[..., None] * d_bound / jnp.where(q_norm > 0, q_norm, 1.0))[..., None]
            * q_heads
            * (q_norm > 0)[..., None]
        )
        d_k = d_k + d_radius[:, :, None, None] * _radius_direction(joint[..., :dim], w, safe)
    d_deficit = None if deficit is None else _heads(d_deficit)
    return _heads(d_q), _heads(d_k), _heads(d_v), d_deficit


def _radius_direction(centred_k: Array, w: Array, safe: Array) -> Array:
    """∂r/∂k for `r = max_j w_j ‖k_j − k̄‖`, `[B, H, S, D]`: the unit vectors at the maximising
    keys (ties share equally), minus their mean over the valid keys (the path through k̄)."""
    norms = safe_norm(centred_k)  # [B, H, S]
    valid = w[..., 0] > 0
    spread = jnp.where(valid, norms, 0.0)
    ties = (spread == jnp.max(spread, axis=-1, keepdims=True)).astype(centred_k.dtype)
    share = ties / jnp.sum(ties, axis=-1, keepdims=True)
    unit = centred_k / jnp.where(norms > 0, norms, 1.0)[..., None] * (norms > 0)[..., None]
    u = (share * valid)[..., None] * unit
    return u - w * jnp.sum(u, axis=2, keepdims=True) / safe[..., None]


# The custom VJP runs over blocks of the batch (`lax.map`) when the batch has at least
# `_MIN_BLOCKED_BATCH` elements: a block holds the largest divisor of the batch whose
# `[b, H, S, D + Dv]` arrays have at most `_BLOCK_ELEMENTS` elements (but two batch elements if the
# batch is even: single-element blocks measured larger and slower).
# This bounds the temporaries by a block's and keeps a block's passes in cache (docs/performance.md
# has the measurements); blocks of a 2-element batch cost more than they save.
_BLOCK_ELEMENTS = 2**20
_MIN_BLOCKED_BATCH = 8


def _batch_blocks(fn, *trees):
    """`fn(*trees)` applied to blocks of the batch axis (axis 0 of every leaf) by `lax.map`, and
    the results concatenated back. Blocks divide the batch, so they are views, not padded copies."""
    q, k, v = trees[0][:3]
    batch = q.shape[0]
    if batch < _MIN_BLOCKED_BATCH:
        return fn(*trees)
    per_element = max(q.shape[1], k.shape[1]) * k.shape[2] * (k.shape[3] + v.shape[3])
    target = max(2, _BLOCK_ELEMENTS // per_element)
    block = max(b for b in range(1, min(batch, target) + 1) if batch % b == 0)
    if block == batch:
        return fn(*trees)
    count = batch // block
    split = lambda x: x.reshape(count, block, *x.shape[1:])
    out = jax.lax.map(lambda xs: fn(*xs), jax.tree.map(split, trees))
    return jax.tree.map(lambda x: x.reshape(batch, *x.shape[2:]), out)


def _forward_rule(q, k, v, weight, deficit, scale, row_map, nonnegative):
    inputs = (q, k, v, weight, deficit)
    rows, statistics = _batch_blocks(
        lambda inputs: _forward(*inputs, scale, row_map, nonnegative), inputs
    )
    return rows, (inputs, statistics)


def _backward(scale, row_map, nonnegative, residuals, cotangents):
    inputs, statistics = residuals
    d_q, d_k, d_v, d_deficit = _batch_blocks(
        functools.partial(_backward_block, scale, row_map, nonnegative),
        inputs,
        statistics,
        cotangents,
    )
    return d_q, d_k, d_v, jnp.zeros_like(inputs[3]), d_deficit


_rows.defvjp(_forward_rule, _backward)
