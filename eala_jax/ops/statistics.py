"""Key statistics of EALA (EALA.md steps 1-2): counts, means and centred co-moments.

Everything here is a sum over keys, so statistics of chunks (or devices) merge exactly with the
pairwise update of Chan et al. (`merge_statistics`), never as raw `Σ k kᵀ − M k̄ k̄ᵀ`, which cancels in
float32 when the mean is large against the spread.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class KeyStatistics(NamedTuple):
  """Centred sufficient statistics of the valid keys and values of each (batch, head).

  count: `[B, 1]` number of valid keys M (same for every head).
  mean_k: `[B, H, D]` k̄.      comoment_kk: `[B, H, D, D]` Σ_j (k_j − k̄)(k_j − k̄)ᵀ (not divided by M).
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
  """
  weight = _key_weight(key_mask, k)
  count = jnp.sum(weight, axis=1)  # [B, 1]
  safe = jnp.maximum(count, 1.0)[:, :, None]
  mean_k = jnp.sum(weight[..., None] * k, axis=1) / safe
  mean_v = jnp.sum(weight[..., None] * v, axis=1) / safe
  kc = (k - mean_k[:, None]) * weight[..., None]
  vc = v - mean_v[:, None]
  comoment_kk = jnp.einsum("bshd,bshe->bhde", kc, kc)
  comoment_kv = jnp.einsum("bshd,bshe->bhde", kc, vc)
  return KeyStatistics(count, mean_k, comoment_kk, mean_v, comoment_kv)


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
  comoment_kk = a.comoment_kk + b.comoment_kk + cross * delta_k[..., :, None] * delta_k[..., None, :]
  comoment_kv = a.comoment_kv + b.comoment_kv + cross * delta_k[..., :, None] * delta_v[..., None, :]
  return KeyStatistics(count, mean_k, comoment_kk, mean_v, comoment_kv)


def score_moments(q: Array, stats: KeyStatistics, scale: float) -> tuple[Array, Array]:
  """Mean `μ = scale·q·k̄` and variance `σ² = scale²·qᵀΣ_K q` of each query's scores, `[B, T, H]`.

  Cost O(T·D²) per head.
  """
  mu = scale * jnp.einsum("bthd,bhd->bth", q, stats.mean_k)
  cov = stats.comoment_kk / jnp.maximum(stats.count, 1.0)[:, :, None, None]
  q_cov = jnp.einsum("bthd,bhde->bthe", q, cov)
  sigma2 = jnp.maximum(scale * scale * jnp.einsum("bthe,bthe->bth", q_cov, q), 0.0)
  return mu, sigma2


def centred_third_moment(k: Array, key_mask: Array | None, mean_k: Array, count: Array) -> Array:
  """`T₃ = mean_j (k_j − k̄)^{⊗3}`, `[B, H, D, D, D]`, built in O(S·D³) with O(S·D) extra memory.

  A `lax.scan` over the first tensor index keeps the per-key outer products from materialising.
  """
  weight = _key_weight(key_mask, k)
  kc = (k - mean_k[:, None]) * weight[..., None]  # [B, S, H, D], zero at masked keys
  inv = 1.0 / jnp.maximum(count, 1.0)[:, :, None, None]

  @jax.checkpoint  # recompute the per-key products in the backward pass instead of storing D of them
  def slab(_, a):
    scaled = kc * kc[..., a][..., None]
    return None, jnp.einsum("bshd,bshe->bhde", scaled, kc) * inv

  _, slabs = jax.lax.scan(slab, None, jnp.arange(k.shape[-1]))  # [D, B, H, D, D]
  return jnp.moveaxis(slabs, 0, 2)


def cubic_form(q: Array, t3: Array) -> Array:
  """`T₃(q, q, q)` for every query, `[B, T, H]`, in O(T·D³) with O(T·D) extra memory."""

  @jax.checkpoint
  def term(total, a):
    qt = jnp.einsum("bthd,bhde->bthe", q, t3[:, :, a])
    return total + q[..., a] * jnp.einsum("bthe,bthe->bth", qt, q), None

  total, _ = jax.lax.scan(term, jnp.zeros(q.shape[:-1], q.dtype), jnp.arange(q.shape[-1]))
  return total


def _key_weight(key_mask: Array | None, k: Array) -> Array:
  """`[B, S, 1]` float weights: 1 for valid keys, 0 for masked ones."""
  if key_mask is None:
    return jnp.ones(k.shape[:2] + (1,), k.dtype)
  return key_mask.astype(k.dtype)[:, :, None]
