"""Key statistics of EALA (docs/method.md steps 1-2): counts, means and centred co-moments.

Everything here is a sum over keys, so statistics of chunks (or devices) merge exactly with the
pairwise update of Chan et al. (`merge_statistics`), never as raw `Σ k kᵀ − M k̄ k̄ᵀ`, which cancels
in float32 when the mean is large against the spread.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from eala_jax.ops._chunks import chunked, unchunked

Array = jax.Array


class KeyStatistics(NamedTuple):
    """Centred sufficient statistics of the valid keys and values of each (batch, head).

    count: `[B, 1]` number of valid keys M (same for every head).
    mean_k: `[B, H, D]` k̄.      comoment_kk: `[B, H, D, D]` Σ_j (k_j − k̄)(k_j − k̄)ᵀ (not divided
      by M).
    mean_v: `[B, H, Dv]` v̄.     comoment_kv: `[B, H, D, Dv]` Σ_j (k_j − k̄)(v_j − v̄)ᵀ.
    """

    count: Array
    mean_k: Array
    comoment_kk: Array
    mean_v: Array
    comoment_kv: Array


def key_statistics(k: Array, v: Array, key_mask: Array | None) -> KeyStatistics:
    """Statistics of `k: [B, S, H, D]`, `v: [B, S, H, Dv]` over the keys where `key_mask: [B, S]`.

    Two passes (means, then centred co-moments). Cost O(S·D·(D + Dv)) per head, memory O(D·(D+Dv)).
    Both co-moments come from one head-major matrix product `kcᵀ [kc | vc]`: on a CPU this halves
    the passes over the keys and keeps the backward pass free of per-head transposes.
    """
    dim = k.shape[-1]
    weight = _key_weight(key_mask, k)
    count = jnp.sum(weight, axis=1)  # [B, 1]
    safe = jnp.maximum(count, 1.0)[:, :, None]
    k_heads, v_heads = jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)  # [B, H, S, ·]
    weight_heads = weight[:, None]  # [B, 1, S, 1]
    mean_k = jnp.sum(weight_heads * k_heads, axis=2) / safe
    mean_v = jnp.sum(weight_heads * v_heads, axis=2) / safe
    kc = (k_heads - mean_k[:, :, None]) * weight_heads
    vc = v_heads - mean_v[:, :, None]
    joint = jnp.einsum("bhsd,bhse->bhde", kc, jnp.concatenate([kc, vc], axis=-1))
    return KeyStatistics(count, mean_k, joint[..., :dim], mean_v, joint[..., dim:])


def merge_statistics(a: KeyStatistics, b: KeyStatistics) -> KeyStatistics:
    """Chan et al.'s pairwise merge of two disjoint key sets' statistics. Exact; O(D·(D + Dv))."""
    count = a.count + b.count
    frac_b = (b.count / jnp.maximum(count, 1.0))[:, :, None]  # [B, 1, 1]
    delta_k = b.mean_k - a.mean_k
    delta_v = b.mean_v - a.mean_v
    mean_k = a.mean_k + frac_b * delta_k
    mean_v = a.mean_v + frac_b * delta_v
    # n_a n_b / n = n_a · frac_b.
    cross = (a.count[:, :, None] * frac_b)[..., None]
    comoment_kk = (
        a.comoment_kk + b.comoment_kk + cross * delta_k[..., :, None] * delta_k[..., None, :]
    )
    comoment_kv = (
        a.comoment_kv + b.comoment_kv + cross * delta_k[..., :, None] * delta_v[..., None, :]
    )
    return KeyStatistics(count, mean_k, comoment_kk, mean_v, comoment_kv)


def score_moments(q: Array, stats: KeyStatistics, scale: float) -> tuple[Array, Array]:
    """Mean `μ = scale·q·k̄` and variance `σ² = scale²·qᵀΣ_K q` of each query's scores, `[B, T, H]`.

    Cost O(T·D²) per head.
    """
    mu, sigma2, _ = project_queries(q, stats, scale, with_values=False)
    return jnp.swapaxes(mu, 1, 2), jnp.swapaxes(sigma2, 1, 2)


def project_queries(
    q: Array, stats: KeyStatistics, scale: float, *, with_values: bool = True
) -> tuple[Array, Array, Array | None]:
    """Head-major query side of EALA: μ and σ² `[B, H, T]` and `scale·q_iᵀ C_kv` `[B, H, T, Dv]`.

    One matrix product `q [Σ_K | C_kv]` per head (the value part only `with_values`); O(T·D·(D +
    Dv)).
    """
    dim = q.shape[-1]
    q_heads = jnp.swapaxes(q, 1, 2)  # [B, H, T, D]
    cov = stats.comoment_kk / jnp.maximum(stats.count, 1.0)[:, :, None, None]
    right = jnp.concatenate([cov, stats.comoment_kv], axis=-1) if with_values else cov
    projected = jnp.einsum("bhtd,bhde->bhte", q_heads, right)
    mu = scale * jnp.einsum("bhtd,bhd->bht", q_heads, stats.mean_k)
    sigma2 = jnp.maximum(scale * scale * jnp.sum(projected[..., :dim] * q_heads, axis=-1), 0.0)
    return mu, sigma2, scale * projected[..., dim:] if with_values else None


# Elements of the per-chunk outer products (q⊗q or k⊗k) materialised at once by the O(d³) routines:
# 2^25 float32 = 128 MiB. Larger problems are cut into chunks along the sequence axis.
_OUTER_PRODUCT_BUDGET = 2**25


def centred_third_moment(k: Array, key_mask: Array | None, mean_k: Array, count: Array) -> Array:
    """`T₃ = mean_j (k_j − k̄)^{⊗3}`, `[B, H, D, D, D]`, in O(S·D³) time.

    Contracts `(k_j − k̄)^{⊗2}` with `k_j − k̄` over keys as one matrix product per key chunk; the
    chunks bound the outer products' memory and are recomputed, not stored, for the backward pass.
    """
    batch, num_keys, heads, dim = k.shape
    weight = _key_weight(key_mask, k)
    kc = (k - mean_k[:, None]) * weight[..., None]  # [B, S, H, D], zero at masked keys

    def chunk_moment(kc_chunk: Array) -> Array:
        outer = (kc_chunk[..., :, None] * kc_chunk[..., None, :]).reshape(
            *kc_chunk.shape[:-1], dim * dim
        )
        return jnp.einsum("bshx,bshf->bhxf", outer, kc_chunk)

    total = _sum_over_chunks(chunk_moment, kc, per_row=batch * heads * dim * dim)
    return (
        total.reshape(batch, heads, dim, dim, dim) / jnp.maximum(count, 1.0)[:, :, None, None, None]
    )


def cubic_form(q: Array, t3: Array) -> Array:
    """`T₃(q, q, q)` for every query, `[B, T, H]`, in O(T·D³) time (query chunks bound the
    memory)."""
    batch, length, heads, dim = q.shape
    t3_matrix = t3.reshape(batch, heads, dim * dim, dim)

    def chunk_form(q_chunk: Array) -> Array:
        outer = (q_chunk[..., :, None] * q_chunk[..., None, :]).reshape(
            *q_chunk.shape[:-1], dim * dim
        )
        return jnp.einsum(
            "bthf,bthf->bth", jnp.einsum("bthx,bhxf->bthf", outer, t3_matrix), q_chunk
        )

    return _map_over_chunks(chunk_form, q, per_row=batch * heads * dim * dim)


def _chunk_length(length: int, per_row: int) -> int:
    return max(1, min(length, _OUTER_PRODUCT_BUDGET // max(per_row, 1)))


def _sum_over_chunks(fn, x: Array, *, per_row: int) -> Array:
    """`Σ_c fn(x[:, chunk_c])` over chunks of axis 1 (zero-padded: fn must map zero rows to
    zero)."""
    chunk = _chunk_length(x.shape[1], per_row)
    if chunk == x.shape[1]:
        return fn(x)
    chunks = chunked(x, chunk)
    body = jax.checkpoint(lambda total, c: (total + fn(c), None))
    total, _ = jax.lax.scan(body, jnp.zeros_like(jax.eval_shape(fn, chunks[0])), chunks)
    return total


def _map_over_chunks(fn, x: Array, *, per_row: int) -> Array:
    """`fn` applied to chunks of axis 1 and concatenated; `fn: [B, c, ...] -> [B, c, ...]`."""
    chunk = _chunk_length(x.shape[1], per_row)
    if chunk == x.shape[1]:
        return fn(x)
    length = x.shape[1]
    _, out = jax.lax.scan(jax.checkpoint(lambda _, c: (None, fn(c))), None, chunked(x, chunk))
    return unchunked(out, length)


def _key_weight(key_mask: Array | None, k: Array) -> Array:
    """`[B, S, 1]` float weights: 1 for valid keys, 0 for masked ones."""
    if key_mask is None:
        return jnp.ones(k.shape[:2] + (1,), k.dtype)
    return key_mask.astype(k.dtype)[:, :, None]
