"""Entropy-Aware Linear Attention (docs/method.md steps 1-9) without forming attention weights."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from eala_jax.ops import _validation
from eala_jax.ops._numerics import safe_norm
from eala_jax.ops.causal import causal_eala_rows
from eala_jax.ops.entropy import (
    ESTIMATOR_TABLE,
    check_estimator_arrays,
    entropy_deficit,
    variance_deficit,
)
from eala_jax.ops.fused import statistics_rows
from eala_jax.ops.options import EalaOptions, with_option_keywords
from eala_jax.ops.statistics import key_statistics, score_moments
from eala_jax.ops.theta import choose_theta, eala_output, floor_deficit
from eala_jax.ops.theta import row_map as theta_rows

Array = jax.Array


@with_option_keywords(EalaOptions)
def eala_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    key_mask: Array | None = None,
    options: EalaOptions | None = None,
    return_stats: bool = False,
    rng: Array | None = None,
    projection: Array | None = None,
    dtype: Any = None,
    **keywords: Any,
) -> Array | tuple[Array, dict[str, Array]]:
    """EALA: `o_i = v̄ + θ_i · scale · q_iᵀ C`, with θ_i chosen by entropy equality.

    Shapes as `jax.nn.dot_product_attention`: `q: [B, T, H, D]`, `k: [B, S, H, D]`,
    `v: [B, S, H, Dv]` -> `[B, T, H, Dv]` (rank 3 without B also works). Scores are
    `s_ij = scale·q_i·k_j` with `scale = 1/√D` by default.

    The static options are an `EalaOptions` (`options=`, used as given: it was checked when
    built) or its fields as keywords (`theta=0.5`, checked once here, by building one); keywords
    given with `options` override its fields. Keywords are strict (others are a TypeError); Flax
    modules take the op through `eala_jax.models.attention.flax_attention_fn`, which turns Flax's
    mask into `key_mask`.

    Args:
      key_mask: `[B, S]` boolean, True = valid key. Means run over valid keys only.
      estimator: entropy estimator for θ* (see `estimate_entropy`); causal mode supports "gaussian".
      theta: "optimal" (entropy equality, docs/method.md step 5) or a fixed float >= 0 (1.0: plain
        centred linear weights; 0.0: uniform attention; a negative θ is refused, step 7).
      theta_gradient: if False, θ is treated as a constant in the backward pass.
      nonnegative: cap θ so that every weight is ≥ 0 (docs/method.md step 7).
      min_entropy: floor on the estimate, `Ĥ ← max(Ĥ, min_entropy)` (still at most log M), so θ*
        never sharpens a row below that entropy (docs/method.md step 5); 0.0, the default, changes
        nothing, as Ĥ ≥ 0.
      causal: query i sees keys j ≤ i (needs T == S); chunked prefix sums.
      return_stats: also return {"theta", "entropy", "sigma2", "mean_score", "count"}, each `[B, T,
        H]`.
      num_segments, num_features, rng, projection: options of the "segments" and
        "random_features" estimators.
      chunk_size: key chunk of the causal scan.
      implementation: None (auto), "statistics" (D×D key statistics, O((T+S)·D²)) or "scores" (the
        explicit scores, O(T·S·D)). Auto takes "scores" when S ≤ D, where it is cheaper; both give
        the same result. Causal mode always uses chunked statistics.
      dtype: output dtype (default: q's). Statistics are float32 (or wider) whatever the input
        dtype.

    Cost: O((T + S)·D·(D + Dv)) time and O(D·(D + Dv)) extra memory per head for the Gaussian
    estimate (O((T + S)·D³) for "cumulant3"), against O(T·S·D) and O(T·S) for softmax attention.
    Degenerate rows are finite: one valid key gives its value; no valid key gives zeros; σ = 0 gives
    v̄.
    """
    options = EalaOptions.resolve(options, keywords, op="eala_attention")
    x = _validation.attention_inputs(q, k, v, key_mask, causal=options.causal, scale=options.scale)
    out, stats = _rows(x, x.v, options, rng, projection, need_entropy=return_stats)
    out = out.astype(dtype or x.q.dtype)
    if x.unbatched:
        out, stats = out[0], {name: value[0] for name, value in stats.items()}
    return (out, stats) if return_stats else out


@with_option_keywords(EalaOptions)
def eala_weights(
    q: Array,
    k: Array,
    *,
    key_mask: Array | None = None,
    options: EalaOptions | None = None,
    rng: Array | None = None,
    projection: Array | None = None,
    **keywords: Any,
) -> Array:
    """The explicit EALA weight matrix `a_ij = m_ij (1 + θ_i (s_ij − μ_i)) / M_i`, `[B, H, T, S]`.

    Options as `eala_attention`'s. O(T·S) memory: for tests, plots and diagnostics only.
    `eala_attention` equals `weights @ v`.
    """
    options = EalaOptions.resolve(options, keywords, op="eala_weights")
    x = _validation.attention_inputs(
        q, k, None, key_mask, causal=options.causal, scale=options.scale
    )
    q, k, key_mask, unbatched = x.q, x.k, x.key_mask, x.unbatched
    _, stats = _rows(x, k[..., :1], options, rng, projection, need_entropy=False)
    dtype = _validation.statistics_dtype(q.dtype)
    scores = x.scale * jnp.einsum("bthd,bshd->bhts", q.astype(dtype), k.astype(dtype))
    visible = (
        jnp.ones(scores.shape[-2:], bool)
        if not options.causal
        else jnp.tril(jnp.ones(scores.shape[-2:], bool))
    )
    if key_mask is not None:
        visible = visible & key_mask[:, None, None, :]
    to_heads = lambda x: jnp.moveaxis(x, 1, 2)[..., None]  # [B, T, H] -> [B, H, T, 1]
    count = to_heads(stats["count"])
    weights = (
        1.0 + to_heads(stats["theta"]) * (scores - to_heads(stats["mean_score"]))
    ) / jnp.maximum(count, 1.0)
    weights = jnp.where(visible, weights, 0.0)
    return weights[0] if unbatched else weights


def _rows(
    x: _validation.Inputs,
    v: Array,
    options: EalaOptions,
    rng: Array | None,
    projection: Array | None,
    *,
    need_entropy: bool,
) -> tuple[Array, dict[str, Array]]:
    """`_eala_rows` on prepared inputs `x` (`_validation.attention_inputs`) with checked
    `options`, after the one check of the call's arrays the options cannot hold (`rng` and
    `projection` of a random-features estimator): the one path of `eala_attention` and
    `eala_weights`."""
    check_estimator_arrays(
        options.estimator, rng=rng, projection=projection, head_dim=x.q.shape[-1]
    )
    return _eala_rows(
        x.q,
        x.k,
        v,
        x.key_mask,
        rng,
        projection,
        options=options,
        scale=x.scale,
        need_entropy=need_entropy,
    )


@functools.partial(jax.jit, static_argnames=("options", "scale", "need_entropy"))
def _eala_rows(
    q: Array,
    k: Array,
    v: Array,
    key_mask: Array | None,
    rng: Array | None,
    projection: Array | None,
    *,
    options: EalaOptions,
    scale: float,
    need_entropy: bool,
) -> tuple[Array, dict[str, Array]]:
    """EALA output `[B, T, H, Dv]` (float32 or wider) and per-query statistics `[B, T, H]`;
    `scale` is the resolved score scale (`options.scale`, or 1/√D)."""
    dtype = _validation.statistics_dtype(q.dtype)
    q, k, v = q.astype(dtype), k.astype(dtype), v.astype(dtype)
    theta = options.theta if isinstance(options.theta, str) else float(options.theta)
    min_entropy = float(options.min_entropy)
    row_map = theta_rows(
        theta=theta,
        theta_gradient=options.theta_gradient,
        min_entropy=min_entropy,
        need_entropy=need_entropy,
        estimator=options.estimator,
    )

    if options.causal:
        # The scan has σ² only: a variance-only estimator, or with a fixed θ (EalaOptions refuses
        # the others) the Gaussian estimate for the entropy it reports.
        by_variance = options.estimator
        if not ESTIMATOR_TABLE[by_variance].variance_only:
            by_variance = "gaussian"
        rows = causal_eala_rows(
            q,
            k,
            v,
            key_mask,
            scale=scale,
            deficit_fn=lambda sigma2, log_count: floor_deficit(
                variance_deficit(by_variance, sigma2, log_count), log_count, min_entropy
            ),
            theta_fn=lambda deficit, sigma2: choose_theta(
                deficit, sigma2, theta=theta, theta_gradient=options.theta_gradient
            ),
            nonnegative=options.nonnegative,
            chunk_size=options.chunk_size,
        )
        return rows.out, _stats(rows.theta, rows.entropy, rows.sigma2, rows.mean_score, rows.count)

    valid = jnp.ones(k.shape[:2], bool) if key_mask is None else key_mask
    count = jnp.broadcast_to(
        jnp.sum(valid.astype(dtype), axis=1)[:, None, None], q.shape[:-1]
    )  # [B, T, H]
    log_count = jnp.log(jnp.maximum(count, 1.0))
    estimator = ESTIMATOR_TABLE[options.estimator]
    # Estimators that read q and k beyond σ² form their deficit apart, with their own statistics,
    # differentiated by autodiff; the variance-only one is formed inside the rows (`row_map`).
    estimate_apart = not estimator.variance_only and (theta == "optimal" or need_entropy)
    deficit_options = dict(
        estimator=options.estimator,
        scale=scale,
        num_segments=options.num_segments,
        num_features=options.num_features,
        rng=rng,
        projection=projection,
    )
    use_scores = options.implementation == "scores" or (
        options.implementation is None and k.shape[1] <= q.shape[-1]
    )
    if not use_scores:
        # The statistics route, with its hand-written backward pass (ops/fused.py).
        deficit = None
        if estimate_apart:
            own_stats = key_statistics(k, k[..., :1], key_mask)
            sigma2 = score_moments(q, own_stats, scale)[1]
            deficit = entropy_deficit(q, k, key_mask, own_stats, sigma2, **deficit_options)
        rows = statistics_rows(
            q,
            k,
            v,
            valid.astype(dtype),
            deficit,
            scale=scale,
            row_map=row_map,
            nonnegative=options.nonnegative,
        )
        entropy = log_count - rows.deficit
        return rows.out, _stats(rows.theta, entropy, rows.sigma2, rows.mean_score, count)

    # S ≤ D: the S scores per query are cheaper than the D×D statistics (same maths, exact).
    _, mean_k, mean_v, mean_score, sigma2, centred = _dense_score_moments(q, k, v, valid, scale)
    weighted = jnp.einsum("bths,bshe->bthe", centred, v - mean_v[:, None])
    deficit = None
    if estimate_apart:
        from_scores = estimator.reads_scores
        deficit = entropy_deficit(
            q,
            k,
            key_mask,
            None if from_scores else key_statistics(k, k[..., :1], key_mask),
            sigma2,
            centred_scores=(centred, valid) if from_scores else None,
            **deficit_options,
        )
    bound = None
    if options.nonnegative:
        # Safe norms: a zero vector (one valid key, a zero query) has a finite (zero) gradient.
        spread = safe_norm(k - mean_k[:, None])  # [B, S, H]
        radius = jnp.max(jnp.where(valid[..., None], spread, 0.0), axis=1)  # [B, H]
        bound = scale * safe_norm(q) * radius[:, None]
    theta_value, deficit = row_map(sigma2, deficit, bound, log_count)
    out = eala_output(mean_v[:, None], theta_value, weighted, count)
    return out, _stats(theta_value, log_count - deficit, sigma2, mean_score, count)


def _stats(
    theta: Array, entropy: Array, sigma2: Array, mean_score: Array, count: Array
) -> dict[str, Array]:
    """The per-query statistics `return_stats` gives, each `[B, T, H]`."""
    return dict(theta=theta, entropy=entropy, sigma2=sigma2, mean_score=mean_score, count=count)


def _dense_score_moments(
    q: Array, k: Array, v: Array, valid: Array, scale: float
) -> tuple[Array, ...]:
    """Moments from the explicit `[B, T, H, S]` scores, for S ≤ D where they are the cheaper route.

    Returns count `[B, 1, 1]`, k̄ `[B, H, D]`, v̄ `[B, H, Dv]`, μ and σ² `[B, T, H]`, and the
    centred masked scores `(s − μ)·m` `[B, T, H, S]`. Time O(T·S·(D + Dv)).
    """
    weight = valid.astype(q.dtype)  # [B, S]
    count = jnp.sum(weight, axis=1)[:, None, None]
    safe_count = jnp.maximum(count, 1.0)
    mean_k = jnp.einsum("bs,bshd->bhd", weight, k) / safe_count
    mean_v = jnp.einsum("bs,bshd->bhd", weight, v) / safe_count
    scores = scale * jnp.einsum("bthd,bshd->bths", q, k)
    key_weight = weight[:, None, None, :]
    mean_score = jnp.sum(key_weight * scores, axis=-1) / safe_count
    centred = (scores - mean_score[..., None]) * key_weight
    sigma2 = jnp.sum(centred * centred, axis=-1) / safe_count
    return count, mean_k, mean_v, mean_score, sigma2, centred
