"""The feature maps of LLN attention (Linear Log-Normal attention; Nahshan, Kampeas & Haleva,
*Linear Log-Normal Attention with Unbiased Concentration*, ICLR 2024, arXiv 2311.13541).

LLN is kernel attention with exponential feature maps, `φ_Q(q) = exp(α q)`, `φ_K(k) = exp(β k)`
(element-wise, D features), so the weight of key j in row i is `Σ_c exp(α q_ic + β k_jc)`
normalised over the keys. Its temperatures come from moment matching: softmax's weights
`exp(s_ij)` are modelled as log-normal with log-variance `σ_sm²`, LLN's as log-normal too, and the
temperatures are chosen so that the two log-variances agree. Implemented here (per batch element
and head; docs/method.md, "LLN attention"):

- `σ_q²`, `σ_k²`: the per-dimension variance of the queries (all of them) and of the valid keys,
  averaged over the D dimensions (population variances, about each dimension's own mean);
- `σ_sm² = D·scale²·σ_q²·σ_k²`, the variance of `scale·q·k` for independent coordinates
  (`σ_q²·σ_k²` at the default scale 1/√D, the paper's model);
- each of LLN's D terms `exp(α q_c + β k_c)` is log-normal with log-variance
  `σ_t² = α²σ_q² + β²σ_k²`, and their sum is taken as log-normal by Fenton-Wilkinson (match the
  sum's mean and variance): `σ_lln² = log(1 + (e^{σ_t²} − 1)/D)`;
- `σ_lln² = σ_sm²` gives `σ_t² = F(σ_sm²) = log(1 + D·(e^{σ_sm²} − 1))`, and with one temperature
  `α = β = τ`: **`τ = √(F(σ_sm²) / (σ_q² + σ_k²))`** (τ = 0 where both variances are 0);
- the weights: **`w_ij = Σ_c exp(τ q_ic + τ (k_jc − k̄_c))`**, `k̄` the mean of the valid keys
  (`center_keys=True`, the default) or 0 (`center_keys=False`: the paper's `exp(β k)`).

Where this departs from the paper: the paper also matches σ_sm² and σ_lln², but this closed form
(Fenton-Wilkinson for the sum over D, the choice α = β) is this project's reading, not a
transcription of the paper's equations or fitted constants. Centring the keys is this project's:
softmax ignores a shift shared by all keys (it adds a constant to each row's scores), uncentred LLN
turns it into per-dimension factors `e^{τ k̄_c}`, so a key mean that softmax training left
unconstrained (a converted model) would reweight LLN's dimensions; centred, LLN ignores it as
softmax does, and its statistics are the zero-mean model the temperature assumes. The paper's
block-diagonal softmax term (LLN+Diag) is not included. With `causal=True` every statistic of
position t (τ_t, and `k̄` for key t) is that of the prefix 0..t (all queries, the valid keys), so
nothing reads a later position, and key j carries its own τ_j:
`w_ij = Σ_c exp(τ_i q_ic + τ_j (k_jc − k̄_j,c))`, still a query feature times a key feature. (The
causal scan shifts the keys by the running maximum of their exponents, `causal.py`; uncentred, a
large key mean m makes `τ_j·m` grow with j, which that shift absorbs across chunks but not between
the rows of one chunk.)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from eala_jax.ops._numerics import safe_sqrt

Array = jax.Array


def lln_temperature(
    q: Array, k: Array, key_mask: Array | None, *, scale: float, causal: bool
) -> Array:
    """The moment-matched temperature τ of each (batch, head): `[B, 1, H]`, or `[B, T, H]` with
    `causal` (τ_t from the prefix 0..t; T == S). `q: [B, T, H, D]`, `k: [B, S, H, D]`,
    `key_mask: [B, S]` or None. O((T + S)·D)."""
    moments = _prefix_moments if causal else _moments
    _, var_q = moments(q, None)
    _, var_k = moments(k, key_mask)
    return matched_temperature(var_q, var_k, dim=q.shape[-1], scale=scale)


def matched_temperature(var_q: Array, var_k: Array, *, dim: int, scale: float) -> Array:
    """`τ = √(F(σ_sm²)/(σ_q² + σ_k²))`, `σ_sm² = dim·scale²·σ_q²·σ_k²`,
    `F(x) = log(1 + dim·(e^x − 1))` (module docstring); 0 where `σ_q² + σ_k² = 0`, with a finite
    gradient there."""
    x = dim * scale * scale * var_q * var_k
    # log1p(D·expm1(x)) is accurate for small x but overflows for large x; there
    # F = x + log D + log1p(−(1 − 1/D)·e^{−x}). Each branch's input is clamped to its own range.
    small = x < 1.0
    x_small = jnp.where(small, x, 0.0)
    x_large = jnp.where(small, 1.0, x)
    f = jnp.where(
        small,
        jnp.log1p(dim * jnp.expm1(x_small)),
        x_large + math.log(dim) + jnp.log1p(-(1.0 - 1.0 / dim) * jnp.exp(-x_large)),
    )
    total = var_q + var_k
    positive = total > 0
    return safe_sqrt(jnp.where(positive, f / jnp.where(positive, total, 1.0), 0.0))


def lln_feature_logits(
    q: Array,
    k: Array,
    key_mask: Array | None,
    *,
    scale: float,
    causal: bool,
    temperature: str | float,
    center_keys: bool,
) -> tuple[Array, Array]:
    """`log φ_Q = τ·q: [B, T, H, D]` and `log φ_K = τ·(k − k̄): [B, S, H, D]` (`k̄`: the mean of
    the valid keys, causal: of the valid keys 0..j; 0 without `center_keys`), unshifted (the op
    shifts them; for plots, `exp` and normalise). `temperature`: "matched" (`lln_temperature`) or
    a fixed τ ≥ 0. O((T + S)·D)."""
    moments = _prefix_moments if causal else _moments
    k_centred, var_k = moments(k, key_mask)
    if temperature == "matched":
        _, var_q = moments(q, None)
        tau = matched_temperature(var_q, var_k, dim=q.shape[-1], scale=scale)[..., None]
    else:
        tau = jnp.asarray(temperature, q.dtype)
    return tau * q, tau * (k_centred if center_keys else k)


def _moments(x: Array, mask: Array | None) -> tuple[Array, Array]:
    """`x` minus the mean of its rows (axis 1) where `mask`, `[B, L, H, D]`, and their
    per-dimension population variance averaged over the last axis, `[B, 1, H]` (0 where no row is
    valid). Two passes (mean, then centred squares)."""
    w = jnp.ones(x.shape[:2], x.dtype) if mask is None else mask.astype(x.dtype)
    w = w[:, :, None, None]
    count = jnp.maximum(jnp.sum(w, axis=1, keepdims=True), 1.0)
    centred = x - jnp.sum(w * x, axis=1, keepdims=True) / count
    variance = jnp.sum(w * centred * centred, axis=1) / count[:, 0]
    return centred, jnp.mean(variance, axis=-1)[:, None]


def _prefix_moments(x: Array, mask: Array | None) -> tuple[Array, Array]:
    """`_moments` of each prefix 0..t: row t minus the mean of the valid rows 0..t, `[B, L, H, D]`,
    and their variance, `[B, L, H]` (0 before the first valid row). Prefix sums about the first
    valid row (the results do not depend on that origin; it keeps the sums small against the
    spread when the mean is large)."""
    valid = jnp.ones(x.shape[:2], bool) if mask is None else mask
    first = jnp.argmax(valid, axis=1)
    origin = jax.lax.stop_gradient(jnp.take_along_axis(x, first[:, None, None, None], axis=1))
    w = valid.astype(x.dtype)[:, :, None, None]
    y = x - origin
    count = jnp.maximum(jnp.cumsum(w, axis=1), 1.0)
    mean = jnp.cumsum(w * y, axis=1) / count
    second = jnp.cumsum(w * y * y, axis=1) / count
    return y - mean, jnp.mean(jnp.maximum(second - mean * mean, 0.0), axis=-1)
