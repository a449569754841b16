"""Causal (prefix) forms of the linear attentions: `lax.scan` over key chunks, dense inside a chunk.

Memory is O(chunk² + chunk·d²) per head instead of O(T·S); no Python loop over time steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from eala_jax.ops._chunks import chunked, unchunked
from eala_jax.ops._numerics import safe_norm
from eala_jax.ops.statistics import KeyStatistics, key_statistics, merge_statistics
from eala_jax.ops.theta import cap_theta, eala_output

Array = jax.Array


def _kernel_chunk(
    fq: Array, fk: Array, v_c: Array, kv: Array, k_sum: Array, lower: Array
) -> tuple[Array, Array, Array]:
    """One chunk of the causal kernel attention: the outputs of its rows `[B, C, H, Dv]` (dense
    within the chunk under the lower-triangular `lower [C, C]`, plus the carried sums `kv [B, H,
    F, Dv]`, `k_sum [B, H, F]` of the keys before it; zeros for a zero denominator) and the sums
    with this chunk's keys added."""
    scores = jnp.einsum("bphf,bjhf->bhpj", fq, fk) * lower
    num = jnp.einsum("bhpj,bjhe->bphe", scores, v_c) + jnp.einsum("bphf,bhfe->bphe", fq, kv)
    den = jnp.sum(scores, axis=-1).transpose(0, 2, 1) + jnp.einsum("bphf,bhf->bph", fq, k_sum)
    safe = jnp.where(den > 0, den, 1.0)
    out = jnp.where((den > 0)[..., None], num / safe[..., None], 0.0)
    kv = kv + jnp.einsum("bjhf,bjhe->bhfe", fk, v_c)
    k_sum = k_sum + jnp.sum(fk, axis=1)
    return kv, k_sum, out


def causal_kernel_attention(phi_q: Array, phi_k: Array, v: Array, *, chunk_size: int) -> Array:
    """`o_i = Σ_{j≤i} (φq_i·φk_j) v_j / Σ_{j≤i} φq_i·φk_j` for `phi_q, phi_k: [B, T, H, F]`, `v: [B,
    T, H, Dv]`.

    Masked keys must already carry `φk = 0`. A row with a zero denominator returns zeros.
    Time O(T·(chunk + F)·Dv), memory O(chunk² + F·Dv) per head.
    """
    length = phi_q.shape[1]
    chunk = max(1, min(chunk_size, length))
    lower = jnp.tril(jnp.ones((chunk, chunk), phi_q.dtype))

    def step(carry, inputs):
        kv, k_sum = carry
        fq, fk, v_c = inputs
        kv, k_sum, out = _kernel_chunk(fq, fk, v_c, kv, k_sum, lower)
        return (kv, k_sum), out

    batch, _, heads, features = phi_q.shape
    init = (
        jnp.zeros((batch, heads, features, v.shape[-1]), v.dtype),
        jnp.zeros((batch, heads, features), v.dtype),
    )
    _, out = jax.lax.scan(
        step, init, (chunked(phi_q, chunk), chunked(phi_k, chunk), chunked(v, chunk))
    )
    return unchunked(out, length)


def causal_shifted_kernel_attention(
    phi_q: Array, log_phi_k: Array, v: Array, key_mask: Array | None, *, chunk_size: int
) -> Array:
    """`causal_kernel_attention` from the key features' logarithms, `log_phi_k: [B, T, H, F]`,
    for features that `exp` would take out of range (LLN's): the keys of each chunk are shifted by
    the largest valid `log φk` seen so far (per batch and head), and the carried sums are rescaled
    when that maximum grows, as an online softmax does. A row's shift is then the maximum over
    the keys up to the end of its own chunk, never a later chunk's, so a large later key does not
    underflow an earlier row's features (chunk_size=1: each row's own prefix maximum). Masked keys
    get φk = 0. The shifts carry no gradient; they cancel exactly. Cost as
    `causal_kernel_attention`.
    """
    length = phi_q.shape[1]
    chunk = max(1, min(chunk_size, length))
    lower = jnp.tril(jnp.ones((chunk, chunk), phi_q.dtype))
    valid = jnp.ones(log_phi_k.shape[:2], bool) if key_mask is None else key_mask
    floor = -1e30  # the running maximum before any valid key: a finite "minus infinity"

    def step(carry, inputs):
        kv, k_sum, top = carry  # top: [B, H], the largest valid log φk so far
        fq, lk, v_c, m_c = inputs
        keep = m_c[:, :, None, None]
        chunk_top = jnp.max(jnp.where(keep, lk, floor), axis=(1, 3))
        new_top = jax.lax.stop_gradient(jnp.maximum(top, chunk_top))
        shift = jnp.where(new_top > 0.5 * floor, new_top, 0.0)  # 0 while no key is valid
        rescale = jnp.exp(top - shift)  # 0 from the floor, ≤ 1 otherwise
        kv = kv * rescale[..., None, None]
        k_sum = k_sum * rescale[..., None]
        fk = jnp.exp(jnp.where(keep, lk - shift[:, None, :, None], floor))
        kv, k_sum, out = _kernel_chunk(fq, fk, v_c, kv, k_sum, lower)
        return (kv, k_sum, new_top), out

    batch, _, heads, features = phi_q.shape
    init = (
        jnp.zeros((batch, heads, features, v.shape[-1]), v.dtype),
        jnp.zeros((batch, heads, features), v.dtype),
        jnp.full((batch, heads), floor, v.dtype),
    )
    inputs = (
        chunked(phi_q, chunk),
        chunked(log_phi_k, chunk),
        chunked(v, chunk),
        chunked(valid, chunk),
    )
    _, out = jax.lax.scan(step, init, inputs)
    return unchunked(out, length)


class CausalRows(NamedTuple):
    """Per-query outputs of causal EALA; every field `[B, T, H]` except `out: [B, T, H, Dv]`, and
    with `parts` the prefix mean value `mean_v` and `weighted = Σ_{j≤i} (s_ij − μ_i)(v_j − v̄_i)`,
    both `[B, T, H, Dv]` (None without)."""

    out: Array
    theta: Array
    entropy: Array
    sigma2: Array
    mean_score: Array
    count: Array
    mean_v: Array | None = None
    weighted: Array | None = None


def causal_eala_rows(
    q: Array,
    k: Array,
    v: Array,
    key_mask: Array | None,
    *,
    scale: float,
    deficit_fn: Callable[[Array, Array], Array],
    theta_fn: Callable[[Array, Array], Array],
    nonnegative: bool,
    chunk_size: int,
    parts: bool = False,
) -> CausalRows:
    """Causal EALA with the Gaussian entropy estimate: each query i sees the valid keys j ≤ i.

    docs/method.md step 8. The keys of earlier chunks are carried as centred statistics (merged
    with Chan's update). Inside a chunk, the scores and values are centred on the chunk's own
    means and each query's prefix moments over the chunk's visible keys are formed densely (chunk ×
    chunk, two passes); the two sets then merge, per query, with the same pairwise update in score
    space. Nothing is a raw second moment about zero, and the keys are first taken relative to the
    row's first valid key `k_0` (the results do not depend on this origin; the carried means then
    stay small, so they round no worse than the spread), so a large key mean costs no precision.
    `deficit_fn(sigma2, log_count) -> deficit` gives the entropy deficit `log M − Ĥ` of each row
    (the Gaussian one is `min(σ²/2, log M)`) and `theta_fn(deficit, sigma2) -> theta` maps it to θ.
    With `nonnegative`, θ is capped by `1 / (scale·‖q‖·r)` with `r = max_{j≤i} ‖k_j − k_0‖ +
    ‖k̄_i − k_0‖ ≥ max_{j≤i} ‖k_j − k̄_i‖` (looser than the non-causal bound, still a guarantee;
    `k_0` is in every non-empty prefix, so θ_i never depends on a later key). `parts` also
    returns each row's `mean_v` and `weighted` (for `eala_local_attention`, which mixes them
    itself). Time O(T·(chunk + d)·(d + Dv)).
    """
    batch, length, heads, dim = q.shape
    chunk = max(1, min(chunk_size, length))
    valid = jnp.ones((batch, length), bool) if key_mask is None else key_mask
    first = jnp.argmax(valid, axis=1)  # the first valid key (0 where there is none)
    origin = jnp.take_along_axis(k, first[:, None, None, None], axis=1)  # [B, 1, H, D]
    k = k - origin
    lower = jnp.tril(jnp.ones((chunk, chunk), q.dtype))
    to_rows = lambda x: jnp.moveaxis(x, 1, 2)  # [B, H, L] -> [B, L, H]

    def step(carry, inputs):
        stats, max_norm = carry  # statistics of the valid keys of earlier chunks
        q_c, k_c, v_c, m_c = inputs  # [B, L, H, D], [B, L, H, D], [B, L, H, Dv], [B, L]
        w = m_c.astype(q.dtype)
        local = key_statistics(k_c, v_c, m_c)  # this chunk's keys, centred on their own mean
        kc = k_c - local.mean_k[:, None]
        vc = v_c - local.mean_v[:, None]
        visible = lower[None, None] * w[:, None, None, :]  # [B, 1, L, L]
        # Set b: the chunk's visible keys of each query, in scores relative to q·k̄_chunk.
        z = scale * jnp.einsum("bphd,bjhd->bhpj", q_c, kc)
        count_b = jnp.cumsum(w, axis=1)[:, None, :]  # [B, 1, L]
        mean_z = jnp.sum(visible * z, axis=-1) / jnp.maximum(count_b, 1.0)
        dz = visible * (z - mean_z[..., None])
        comoment_zz = jnp.sum(dz * dz, axis=-1)  # [B, H, L]
        comoment_zv = jnp.einsum("bhpj,bjhe->bphe", dz, vc)  # [B, L, H, Dv]
        mean_vc = (
            jnp.cumsum(w[..., None, None] * vc, axis=1)
            / to_rows(jnp.maximum(count_b, 1.0))[..., None]
        )
        # Set a: the carry, projected on each query.
        count_a = stats.count[:, :, None]  # [B, 1, 1]
        mean_a = scale * jnp.einsum("bphd,bhd->bhp", q_c, stats.mean_k)
        comoment_a = scale * scale * jnp.einsum("bphd,bhde,bphe->bhp", q_c, stats.comoment_kk, q_c)
        comoment_av = scale * jnp.einsum("bphd,bhde->bphe", q_c, stats.comoment_kv)
        # Chan's merge of a and b per query: δ = mean_b − mean_a, weight n_a·n_b/n.
        count = count_a + count_b
        safe_count = jnp.maximum(count, 1.0)
        frac_b = count_b / safe_count
        cross = count_a * frac_b
        delta_s = scale * jnp.einsum("bphd,bhd->bhp", q_c, local.mean_k - stats.mean_k) + mean_z
        delta_v = (local.mean_v - stats.mean_v)[:, None] + mean_vc  # [B, L, H, Dv]
        sigma2 = jnp.maximum((comoment_a + comoment_zz + cross * delta_s**2) / safe_count, 0.0)
        comoment_sv = comoment_av + comoment_zv + to_rows(cross * delta_s)[..., None] * delta_v
        mean_score = mean_a + frac_b * delta_s
        mean_v = stats.mean_v[:, None] + to_rows(frac_b)[..., None] * delta_v
        log_count = jnp.log(safe_count)
        deficit = deficit_fn(sigma2, log_count)
        theta = theta_fn(deficit, sigma2)
        if nonnegative:
            norms = jnp.where(m_c[..., None], safe_norm(k_c), 0.0)  # [B, L, H]
            prefix_max = jnp.maximum(max_norm[:, None], jax.lax.cummax(norms, axis=1))
            mean_kc = (
                jnp.cumsum(w[..., None, None] * kc, axis=1)
                / to_rows(jnp.maximum(count_b, 1.0))[..., None]
            )
            prefix_mean = stats.mean_k[:, None] + to_rows(frac_b)[..., None] * (
                (local.mean_k - stats.mean_k)[:, None] + mean_kc
            )
            radius = to_rows(prefix_max + safe_norm(prefix_mean))  # [B, H, L]
            theta = cap_theta(theta, scale * to_rows(safe_norm(q_c)) * radius)
            max_norm = jnp.maximum(max_norm, jnp.max(norms, axis=1))
        out = eala_output(mean_v, to_rows(theta), comoment_sv, to_rows(count))
        rows = (
            out,
            to_rows(theta),
            to_rows(log_count - deficit),
            to_rows(sigma2),
            to_rows(mean_score),
            jnp.broadcast_to(to_rows(count), out.shape[:-1]),
        )
        if parts:
            rows = (*rows, mean_v, comoment_sv)
        return (merge_statistics(stats, local), max_norm), rows

    d_v = v.shape[-1]
    zeros = lambda *shape: jnp.zeros(shape, q.dtype)
    init_stats = KeyStatistics(
        zeros(batch, 1),
        zeros(batch, heads, dim),
        zeros(batch, heads, dim, dim),
        zeros(batch, heads, d_v),
        zeros(batch, heads, dim, d_v),
    )
    inputs = (chunked(q, chunk), chunked(k, chunk), chunked(v, chunk), chunked(valid, chunk))
    # Checkpointed: the backward pass recomputes each chunk instead of storing its residuals.
    _, rows = jax.lax.scan(jax.checkpoint(step), (init_stats, zeros(batch, heads)), inputs)
    rows = CausalRows(*(unchunked(r, length) for r in rows))
    return rows._replace(
        mean_score=rows.mean_score + scale * jnp.einsum("bthd,bhd->bth", q, origin[:, 0])
    )
