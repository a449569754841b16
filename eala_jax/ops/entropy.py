"""Entropy of softmax attention rows: the exact value (chunked) and EALA's linear-time estimates.

For each query, the softmax distribution `p_j = softmax_j(s_j)` over its scores
`s_j = scale·q·k_j` (valid keys only) has entropy `H = log Z − E_p[s]`. The estimators below
(docs/method.md step 3) approximate it from key statistics without forming the T×S score matrix.
Internally each gives the entropy deficit `log M − Ĥ`, from which θ* is computed without the
float32 cancellation of `log M − Ĥ` at small σ (docs/method.md step 5).
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable, Mapping
from typing import Literal, NamedTuple, get_args

import jax
import jax.numpy as jnp

from eala_jax.ops import _validation
from eala_jax.ops._chunks import chunked
from eala_jax.ops._numerics import safe_sqrt
from eala_jax.ops.clusters import CLUSTER_SIZE, clusters_entropy
from eala_jax.ops.statistics import (
    KeyStatistics,
    centred_third_moment,
    cubic_form,
    key_statistics,
    score_moments,
)

Array = jax.Array
EstimatorName = Literal["gaussian", "cumulant3", "segments", "random_features", "clusters", "exact"]
# Chosen from `python -m benchmarks.estimator_error` (docs/estimators.md): on random inputs the
# Gaussian estimate is as accurate overall as "cumulant3" (mean |Ĥ − H| 0.49 vs 0.49 nats; cumulant3
# is better on broad maps, worse on sharp ones) at 1/d of its per-query cost (O(d²) vs O(d³)).
DEFAULT_ESTIMATOR: EstimatorName = "gaussian"
_NEG = -1e30  # a finite "minus infinity": keeps gradients free of inf - inf.


def softmax_entropy(
    q: Array,
    k: Array,
    *,
    key_mask: Array | None = None,
    scale: float | None = None,
    chunk_size: int = 512,
) -> Array:
    """Exact entropy of each query's softmax over the valid keys, `[B, T, H]` (nats).

    `q: [B, T, H, D]`, `k: [B, S, H, D]`, `key_mask: [B, S]` (True = valid). An online
    log-sum-exp over key chunks keeps memory at O(T·chunk) instead of O(T·S); time O(T·S·D).
    A row with no valid key has entropy 0.
    """
    _validation.check_options(scale=scale, chunk_size=chunk_size)
    x = _validation.attention_inputs(q, k, None, key_mask, causal=False, scale=scale)
    dtype = _validation.statistics_dtype(x.q.dtype)
    out = _exact_entropy(
        x.q.astype(dtype), x.k.astype(dtype), x.key_mask, scale=x.scale, chunk_size=chunk_size
    )
    return out[0] if x.unbatched else out


def estimate_entropy(
    q: Array,
    k: Array,
    *,
    estimator: EstimatorName = DEFAULT_ESTIMATOR,
    key_mask: Array | None = None,
    scale: float | None = None,
    num_segments: int = 32,
    num_features: int = 64,
    rng: Array | None = None,
    projection: Array | None = None,
    chunk_size: int = 512,
) -> Array:
    """Linear-time estimate Ĥ of each query's softmax entropy, `[B, T, H]` (nats), in [0, log M].

    Estimators (docs/method.md step 3; d = head dim, M valid keys):
      "gaussian":         clip(log M − σ²/2, 0, log M).                         O((T+S)·d²)
      "cumulant3":        clip(log M − σ²/2 − κ₃/3, 0, log M).                  O((T+S)·d³)
      "segments":         random-energy model over `num_segments` blocks of     O(S·d² + T·n·d²)
                          consecutive valid keys (masked keys are absent keys;
                          n ≥ M: one key per block, the exact entropy).
      "random_features":  FAVOR+ estimates of Z and Σ e^s s (`num_features`
                          features from `rng`, or a given `projection: [r, d]`). O((T+S)·r·d)
      "clusters":         log-normal model per cluster of ~8 similar keys          O(T·(S/8+d)·d
                          (a principal-direction tree, ops/clusters.py): S/8       + S·d²)
                          centres and one d×d form per query.
      "exact":            the chunked exact entropy (quadratic; for reference).  O(T·S·d)
    """
    _validation.check_options(
        scale=scale, num_segments=num_segments, num_features=num_features, chunk_size=chunk_size
    )
    x = _validation.attention_inputs(q, k, None, key_mask, causal=False, scale=scale)
    q, k, key_mask, scale_value, unbatched = x.q, x.k, x.key_mask, x.scale, x.unbatched
    check_estimator_arrays(estimator, rng=rng, projection=projection, head_dim=q.shape[-1])
    dtype = _validation.statistics_dtype(q.dtype)
    q, k = (
        jnp.asarray(q, dtype),
        jnp.asarray(k, dtype),
    )  # NumPy inputs: the scans index q with tracers
    stats = key_statistics(k, k[..., :1], key_mask)
    _, sigma2 = score_moments(q, stats, scale_value)
    deficit = entropy_deficit(
        q,
        k,
        key_mask,
        stats,
        sigma2,
        estimator=estimator,
        scale=scale_value,
        num_segments=num_segments,
        num_features=num_features,
        rng=rng,
        projection=projection,
        chunk_size=chunk_size,
    )
    out = jnp.log(jnp.maximum(stats.count, 1.0))[:, None, :] - deficit
    return out[0] if unbatched else out


def check_estimator_arrays(
    estimator: str, *, rng: Array | None, projection: Array | None, head_dim: int
) -> None:
    """Raises ValueError for an estimator that needs random features (`Estimator.random_features`)
    given neither `rng` nor a `projection` `[r, head_dim]`. The arrays of a call, not options: the
    options (the estimator's name, `num_segments`, `num_features`) are checked where they are built
    (`EalaOptions`, `_validation.check_options`)."""
    if not estimator_entry(estimator).random_features:
        return
    if projection is None and rng is None:
        raise ValueError(f"estimator {estimator!r} needs rng=<PRNG key> or projection=[r, d]")
    if projection is not None and (projection.ndim != 2 or projection.shape[1] != head_dim):
        raise ValueError(
            f"projection must have shape [num_features, head_dim={head_dim}], got "
            f"{projection.shape}"
        )


class DeficitInputs(NamedTuple):
    """What an estimator may read (`Estimator.deficit`): the score variances `sigma2: [B, T, H]`
    and `log_count = log max(M, 1)`, `[B, 1, 1]` or `sigma2`'s shape, always; the rest only
    outside EALA's rows (None there, see `Estimator.variance_only`): the valid-key count `count`,
    `q: [B, T, H, D]`, `k: [B, S, H, D]`, `key_mask: [B, S]` or None, the key statistics `stats`
    (None on EALA's explicit-score route), the centred masked scores `centred: [B, T, H, S]` with
    `valid: [B, S]` on that route (S ≤ D; else None), and the static options."""

    sigma2: Array
    log_count: Array
    count: Array | None = None
    q: Array | None = None
    k: Array | None = None
    key_mask: Array | None = None
    stats: KeyStatistics | None = None
    centred: Array | None = None
    valid: Array | None = None
    scale: float = 1.0
    num_segments: int = 32
    num_features: int = 64
    rng: Array | None = None
    projection: Array | None = None
    chunk_size: int = 512


class Estimator(NamedTuple):
    """One entropy estimator of the dispatch table `ESTIMATOR_TABLE`.

    `deficit(x: DeficitInputs) -> [B, T, H]` is its entropy deficit `log M − Ĥ` before the clip to
    [0, log M]. The flags say how EALA runs it: `variance_only`, it reads `sigma2` and `log_count`
    alone, so EALA forms it inside its rows (`variance_deficit`: the hand-written backward pass,
    the causal scan) rather than apart, and causal EALA supports it; `reads_scores`, it reads
    `centred` on EALA's explicit-score route (S ≤ D) where given (the others read the key
    statistics there too); `random_features`, it needs `rng` or `projection`.
    """

    deficit: Callable[[DeficitInputs], Array]
    variance_only: bool = False
    reads_scores: bool = False
    random_features: bool = False


def entropy_deficit(
    q: Array,
    k: Array,
    key_mask: Array | None,
    stats: KeyStatistics | None,
    sigma2: Array,
    *,
    estimator: EstimatorName,
    scale: float,
    num_segments: int = 32,
    num_features: int = 64,
    rng: Array | None = None,
    projection: Array | None = None,
    chunk_size: int = 512,
    centred_scores: tuple[Array, Array] | None = None,
) -> Array:
    """Entropy deficit `log M − Ĥ` `[B, T, H]`, in [0, log M], given the key statistics and score
    variances EALA has already computed: the estimator's formula from `ESTIMATOR_TABLE`, clipped.
    The moment estimators form it directly (`σ²/2 [+ κ₃/3]`), not as a difference of two numbers
    near log M.

    `centred_scores=(c, valid)`, the centred masked scores `c: [B, T, H, S]` and `valid: [B, S]`,
    is given by EALA's explicit-score route (S ≤ D); the estimators that read scores
    (`Estimator.reads_scores`) then read κ₃ and H from them (O(T·S) per head) and `stats` may be
    None.
    """
    entry = estimator_entry(estimator)
    if centred_scores is not None and entry.reads_scores:
        centred, valid = centred_scores
        count = jnp.sum(valid.astype(sigma2.dtype), axis=1)[:, None, None]  # [B, 1, 1]
    else:
        centred, valid, count = None, None, stats.count[:, None, :]
    log_count = jnp.log(jnp.maximum(count, 1.0))  # [B, 1, 1]
    inputs = DeficitInputs(
        sigma2,
        log_count,
        count,
        q,
        k,
        key_mask,
        stats,
        centred,
        valid,
        scale,
        num_segments,
        num_features,
        rng,
        projection,
        chunk_size,
    )
    return jnp.clip(entry.deficit(inputs), 0.0, log_count)


def variance_deficit(estimator: str, sigma2: Array, log_count: Array) -> Array:
    """The entropy deficit, in [0, log M], of a `variance_only` estimator from σ² and log M alone
    (the Gaussian one: `clip(σ²/2, 0, log M)`, docs/method.md step 3); shapes broadcast."""
    entry = estimator_entry(estimator)
    if not entry.variance_only:
        raise ValueError(f"estimator {estimator!r} reads more than the score variance")
    return jnp.clip(entry.deficit(DeficitInputs(sigma2, log_count)), 0.0, log_count)


def _cumulant3_deficit(x: DeficitInputs) -> Array:
    """`σ²/2 + κ₃/3`: κ₃ from the keys' third central moment, or from the explicit scores."""
    if x.centred is None:
        t3 = centred_third_moment(x.k, x.key_mask, x.stats.mean_k, x.stats.count)
        kappa3 = x.scale**3 * cubic_form(x.q, t3)
    else:
        kappa3 = jnp.sum(x.centred**3, axis=-1) / jnp.maximum(x.count, 1.0)
    return 0.5 * x.sigma2 + kappa3 / 3.0


def _segments_deficit(x: DeficitInputs) -> Array:
    entropy = _segments_entropy(x.q, x.k, x.key_mask, scale=x.scale, num_segments=x.num_segments)
    return x.log_count - entropy


def _random_features_deficit(x: DeficitInputs) -> Array:
    projection = x.projection
    if projection is None:
        projection = jax.random.normal(x.rng, (x.num_features, x.q.shape[-1]), x.q.dtype)
    entropy = _random_feature_entropy(
        x.q, x.k, x.key_mask, projection.astype(x.q.dtype), scale=x.scale
    )
    return x.log_count - entropy


def _clusters_deficit(x: DeficitInputs) -> Array:
    entropy = clusters_entropy(x.q, x.k, x.key_mask, scale=x.scale, cluster_size=CLUSTER_SIZE)
    return x.log_count - entropy


def _exact_deficit(x: DeficitInputs) -> Array:
    if x.centred is None:
        entropy = _exact_entropy(x.q, x.k, x.key_mask, scale=x.scale, chunk_size=x.chunk_size)
    else:
        entropy = _entropy_of_scores(x.centred, x.valid, x.count)
    return x.log_count - entropy


def estimator_entry(name: str) -> Estimator:
    """The table entry of estimator `name`; ValueError listing the estimators otherwise."""
    try:
        return ESTIMATOR_TABLE[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown entropy estimator {name!r}; expected one of {ESTIMATORS}"
        ) from None


def _entropy_of_scores(scores: Array, valid: Array, count: Array) -> Array:
    """Exact softmax entropy `log Σ e^s − Σ p s` over the valid keys of explicit scores
    `[B, T, H, S]` (shift-invariant: centred scores serve); 0 for a row with no valid key."""
    keep = valid[:, None, None, :]
    logits = jnp.where(keep, scores, -1e30)  # finite: no inf − inf in empty rows' gradient
    log_z = jax.nn.logsumexp(logits, axis=-1)
    p = jnp.where(keep, jnp.exp(logits - log_z[..., None]), 0.0)
    return jnp.where(count > 0, log_z - jnp.sum(p * scores, axis=-1), 0.0)


@functools.partial(jax.jit, static_argnames=("scale", "chunk_size"))
def _exact_entropy(
    q: Array, k: Array, key_mask: Array | None, *, scale: float, chunk_size: int
) -> Array:
    batch, num_keys = k.shape[:2]
    chunk = max(1, min(chunk_size, num_keys))
    valid = jnp.ones((batch, num_keys), bool) if key_mask is None else key_mask

    def step(carry, chunk_in):
        run_max, total, tilted = carry
        k_c, m_c = chunk_in
        s = scale * jnp.einsum("bthd,blhd->bthl", q, k_c)
        keep = m_c[:, None, None, :]
        s = jnp.where(keep, s, _NEG)
        new_max = jnp.maximum(run_max, jnp.max(s, axis=-1))
        correction = jnp.exp(run_max - new_max)
        p = jnp.where(keep, jnp.exp(s - new_max[..., None]), 0.0)
        total = total * correction + jnp.sum(p, axis=-1)
        tilted = tilted * correction + jnp.sum(p * jnp.where(keep, s, 0.0), axis=-1)
        return (new_max, total, tilted), None

    init = (
        jnp.full(q.shape[:-1], _NEG, q.dtype),
        jnp.zeros(q.shape[:-1], q.dtype),
        jnp.zeros(q.shape[:-1], q.dtype),
    )
    xs = (chunked(k, chunk), chunked(valid, chunk))
    (run_max, total, tilted), _ = jax.lax.scan(step, init, xs)
    has_key = total > 0
    safe_total = jnp.where(has_key, total, 1.0)
    entropy = run_max + jnp.log(safe_total) - tilted / safe_total
    return jnp.where(has_key, jnp.maximum(entropy, 0.0), 0.0)


def _segments_entropy(
    q: Array, k: Array, key_mask: Array | None, *, scale: float, num_segments: int
) -> Array:
    """log Z − E_p[s] from a random-energy model per block of consecutive valid keys (docs/method.md
    step 3).

    The M valid keys of a row, in order, are cut into blocks of `max(1, ⌈M / num_segments⌉)` keys
    (the last may be shorter), so a masked key is exactly an absent one, and `num_segments ≥ M`
    gives one key per block: the exact entropy. Each key is gathered by its rank among the valid
    keys into a static grid of `min(num_segments, S)` blocks × `⌈S / min(num_segments, S)⌉` slots,
    which holds the blocks whatever M is. O(S·log S) for the ranks, O(S·d²) for the blocks'
    statistics and O(T·n·d²) for the queries.
    """
    batch, num_keys, heads, dim = k.shape
    slots = min(num_segments, num_keys)
    slot_length = -(-num_keys // slots)
    valid = jnp.ones((batch, num_keys), bool) if key_mask is None else key_mask
    count = jnp.sum(valid, axis=1, dtype=jnp.int32)  # [B]
    length = jnp.maximum(1, -(-count // num_segments))  # [B] keys per block
    position = jnp.arange(slot_length)
    rank = jnp.arange(slots)[None, :, None] * length[:, None, None] + position  # [B, n, L]
    used = (position < length[:, None, None]) & (rank < count[:, None, None])
    by_rank = jnp.argsort(~valid, axis=1, stable=True)  # valid keys first, in their order
    source = jnp.take_along_axis(
        by_rank, jnp.minimum(rank, num_keys - 1).reshape(batch, -1), axis=1
    )
    k_seg = jnp.take_along_axis(k, source[:, :, None, None], axis=1).reshape(
        batch, slots, slot_length, heads, dim
    )
    w_seg = used.astype(q.dtype)
    counts = jnp.sum(w_seg, axis=2)  # [B, n]
    safe_counts = jnp.maximum(counts, 1.0)
    means = jnp.einsum("bcl,bclhd->bchd", w_seg, k_seg) / safe_counts[:, :, None, None]
    centred = (k_seg - means[:, :, None]) * w_seg[..., None, None]
    covs = jnp.einsum("bclhd,bclhe->bchde", centred, centred) / safe_counts[:, :, None, None, None]

    def step(carry, seg):
        run_max, weight, tilted = carry
        n_c, mean_c, cov_c = seg  # [B], [B, H, D], [B, H, D, D]
        m_c = scale * jnp.einsum("bthd,bhd->bth", q, mean_c)
        v_c = jnp.maximum(scale * scale * jnp.einsum("bthd,bhde,bthe->bth", q, cov_c, q), 0.0)
        log_n = jnp.log(jnp.maximum(n_c, 1.0))[:, None, None]
        threshold = 2.0 * log_n
        frozen = v_c > threshold
        edge = m_c + safe_sqrt(v_c * threshold)
        ell = jnp.where(frozen, edge, log_n + m_c + 0.5 * v_c)
        tilt = jnp.where(frozen, edge, m_c + v_c)
        present = (n_c > 0)[:, None, None]
        ell = jnp.where(present, ell, _NEG)
        new_max = jnp.maximum(run_max, ell)
        correction = jnp.exp(run_max - new_max)
        w = jnp.where(present, jnp.exp(ell - new_max), 0.0)
        return (new_max, weight * correction + w, tilted * correction + w * tilt), None

    init = (
        jnp.full(q.shape[:-1], _NEG, q.dtype),
        jnp.zeros(q.shape[:-1], q.dtype),
        jnp.zeros(q.shape[:-1], q.dtype),
    )
    seg_inputs = (jnp.moveaxis(counts, 1, 0), jnp.moveaxis(means, 1, 0), jnp.moveaxis(covs, 1, 0))
    (run_max, weight, tilted), _ = jax.lax.scan(step, init, seg_inputs)
    safe_weight = jnp.where(weight > 0, weight, 1.0)
    return run_max + jnp.log(safe_weight) - tilted / safe_weight


def _random_feature_entropy(
    q: Array, k: Array, key_mask: Array | None, projection: Array, *, scale: float
) -> Array:
    """log Ẑ − Ê[s] with FAVOR+ positive features `φ(x) = exp(w·x' − ‖x'‖²/2)`, `x' = √scale·x`."""
    root = math.sqrt(scale)
    log_phi_q = positive_feature_logits(q * root, projection)  # [B, T, H, r]
    log_phi_k = positive_feature_logits(k * root, projection)  # [B, S, H, r]
    shift_q = jax.lax.stop_gradient(jnp.max(log_phi_q, axis=-1, keepdims=True))
    phi_q = jnp.exp(log_phi_q - shift_q)
    phi_k, shift_k = shifted_key_features(log_phi_k, key_mask)
    sum_phi_k = jnp.sum(phi_k, axis=1)  # [B, H, r]
    sum_phi_k_k = jnp.einsum("bshr,bshd->bhrd", phi_k, k)  # [B, H, r, D]
    z_scaled = jnp.einsum("bthr,bhr->bth", phi_q, sum_phi_k)
    tilted = scale * jnp.einsum("bthr,bhrd,bthd->bth", phi_q, sum_phi_k_k, q)
    # Ẑ = 0 (no valid key, or every feature product underflowed): Ĥ = 0. The `where` sits on the
    # divisor too, so the discarded branch has no 0/0 in its gradient.
    has_mass = z_scaled > 0
    safe_z = jnp.where(has_mass, z_scaled, 1.0)
    log_z = jnp.log(safe_z) + shift_q[..., 0] + shift_k[..., 0] - math.log(projection.shape[0])
    return jnp.where(has_mass, log_z - tilted / safe_z, 0.0)


def shifted_key_features(log_phi_k: Array, key_mask: Array | None) -> tuple[Array, Array]:
    """Key features `exp(log φ_k − c)`, exactly 0 at masked keys, `[B, S, H, r]`, and the shift
    `c`, `[B, 1, H, 1]`: the largest valid logit of each (batch, head), 0 where no key is valid.

    The exponent is masked before `exp`, so no discarded branch overflows: `where(mask, exp(x), 0)`
    with `x` = +1e30 at a masked key has a NaN gradient (0 · inf) even though its value is finite.
    `c` carries no gradient; it cancels between numerator and denominator.
    """
    keep = (jnp.ones(log_phi_k.shape[:2], bool) if key_mask is None else key_mask)[:, :, None, None]
    top = jnp.max(jnp.where(keep, log_phi_k, _NEG), axis=(1, 3), keepdims=True)
    shift = jax.lax.stop_gradient(jnp.where(jnp.any(keep, axis=1, keepdims=True), top, 0.0))
    return jnp.exp(jnp.where(keep, log_phi_k - shift, _NEG)), shift


def positive_feature_logits(x: Array, projection: Array) -> Array:
    """`w_f·x − ‖x‖²/2` for each feature row `w_f` of `projection: [r, D]`; `x: [..., D] -> [...,
    r]`."""
    return jnp.einsum("...d,rd->...r", x, projection) - 0.5 * jnp.sum(x * x, axis=-1, keepdims=True)


#: The estimator dispatch, name -> `Estimator` (docs/method.md step 3): the one place a new
#: estimator is added (with its name in `EstimatorName`, which the options check against).
ESTIMATOR_TABLE: Mapping[str, Estimator] = types.MappingProxyType(
    {
        "gaussian": Estimator(lambda x: 0.5 * x.sigma2, variance_only=True, reads_scores=True),
        "cumulant3": Estimator(_cumulant3_deficit, reads_scores=True),
        "segments": Estimator(_segments_deficit),
        "random_features": Estimator(_random_features_deficit, random_features=True),
        "clusters": Estimator(_clusters_deficit),
        "exact": Estimator(_exact_deficit, reads_scores=True),
    }
)
ESTIMATORS: tuple[str, ...] = get_args(EstimatorName)
if set(ESTIMATORS) != set(ESTIMATOR_TABLE):
    raise ImportError(
        f"EstimatorName {ESTIMATORS} and ESTIMATOR_TABLE {tuple(ESTIMATOR_TABLE)} differ"
    )
