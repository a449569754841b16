"""Baseline attentions with EALA's signature, so a model switches attention by name.

All take `q: [B, T, H, D]`, `k: [B, S, H, D]`, `v: [B, S, H, Dv]` (rank 3 without B also works), an
optional `key_mask: [B, S]`, `dtype`, and their options (`causal`, `scale` and their own) as their
options object (`options=SoftmaxOptions(...)`, ...) or as keywords (others are a TypeError; Flax
modules use `eala_jax.models.attention.flax_attention_fn`). A row with no valid key returns zeros.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from eala_jax.ops import _validation
from eala_jax.ops.causal import causal_kernel_attention, causal_shifted_kernel_attention
from eala_jax.ops.entropy import positive_feature_logits, shifted_key_features
from eala_jax.ops.lln import lln_feature_logits
from eala_jax.ops.options import (
    AttentionOptions,
    LinearOptions,
    LlnOptions,
    PerformerOptions,
    SoftmaxOptions,
    UniformOptions,
    with_option_keywords,
)

Array = jax.Array


def _attention_entry(
    core: Callable[..., Array], options_class: type[AttentionOptions]
) -> Callable[..., Array]:
    """The public op of `core(q, k, v, key_mask, *, <options' fields>, <arrays>)`: the ops'
    shared prologue (`_validation.attention_inputs`), the static options as an `options_class`
    object (`options=`, used as given) or its fields as keywords (built once,
    `AttentionOptions.resolve`), and the output cast to `dtype` (default: q's). `core` gets the
    fields with the resolved `scale`, and its own other keyword-only parameters (arrays such as
    `projection`) when given. Keywords are strict: anything else (Flax's `mask`, `dropout_rng`,
    ...) is a TypeError; Flax modules go through `eala_jax.models.attention.flax_attention_fn`."""

    name = core.__name__.lstrip("_") + "_attention"
    fields = frozenset(options_class.field_names())
    arrays = [
        p.replace(default=None)
        for p in inspect.signature(core).parameters.values()
        if p.kind == inspect.Parameter.KEYWORD_ONLY and p.name not in fields
    ]
    array_names = frozenset(p.name for p in arrays)

    def attention(
        q: Array,
        k: Array,
        v: Array,
        *,
        key_mask: Array | None = None,
        options: AttentionOptions | None = None,
        dtype: Any = None,
        **keywords: Any,
    ) -> Array:
        given = {n: x for n, x in keywords.items() if n in array_names}
        options = options_class.resolve(
            options, {n: x for n, x in keywords.items() if n not in array_names}, op=name
        )
        x = _validation.attention_inputs(
            q, k, v, key_mask, causal=options.causal, scale=options.scale
        )
        out = core(x.q, x.k, x.v, x.key_mask, **{**options.as_kwargs(), "scale": x.scale}, **given)
        out = out.astype(dtype or q.dtype)
        return out[0] if x.unbatched else out

    attention.__name__ = attention.__qualname__ = name
    attention.__doc__, attention.__module__ = core.__doc__, core.__module__
    return with_option_keywords(options_class, extra=arrays)(attention)


def _softmax(
    q: Array,
    k: Array,
    v: Array,
    key_mask: Array | None,
    *,
    causal: bool,
    scale: float,
) -> Array:
    """Exact softmax attention through `jax.nn.dot_product_attention` (XLA). O(T·S·D)."""
    # jax.nn.dot_product_attention wants Dv == D: zero-pad the narrower side (scores are unchanged).
    d, d_v = q.shape[-1], v.shape[-1]
    pad = lambda x, width: jnp.pad(x, [(0, 0)] * 3 + [(0, width - x.shape[-1])])
    q, k, v_padded = pad(q, max(d, d_v)), pad(k, max(d, d_v)), pad(v, max(d, d_v))
    out = jax.nn.dot_product_attention(
        q,
        k,
        v_padded,
        mask=None if key_mask is None else key_mask[:, None, None, :],
        scale=scale,
        is_causal=causal,
    )[..., :d_v]
    if key_mask is None:
        return out
    # Rows without a valid key: jax.nn.dot_product_attention averages the masked values; we return
    # 0.
    if causal:
        has_key = jnp.cumsum(key_mask, axis=1)[:, :, None] > 0  # [B, T, 1]
    else:
        has_key = jnp.any(key_mask, axis=1)[:, None, None]  # [B, 1, 1]
    return jnp.where(has_key[..., None], out, 0.0)


def _linear(
    q: Array,
    k: Array,
    v: Array,
    key_mask: Array | None,
    *,
    causal: bool,
    scale: float,
    chunk_size: int,
) -> Array:
    """Katharopoulos et al.'s linear attention, feature map `elu(x) + 1`. O((T + S)·D·Dv)."""
    del scale
    dtype = _validation.statistics_dtype(q.dtype)
    phi_q = jax.nn.elu(q.astype(dtype)) + 1.0
    phi_k = jax.nn.elu(k.astype(dtype)) + 1.0
    return _kernel_attention(
        phi_q, phi_k, v.astype(dtype), key_mask, causal=causal, chunk_size=chunk_size
    )


def _performer(
    q: Array,
    k: Array,
    v: Array,
    key_mask: Array | None,
    *,
    causal: bool,
    scale: float,
    num_features: int,
    chunk_size: int,
    projection: Array | None = None,
    rng: Array | None = None,
) -> Array:
    """FAVOR+ (Choromanski et al.): positive random features of `exp(scale·q·k)`. O((T + S)·r·(D +
    Dv)).

    Give the features as `projection: [r, D]` (a model draws them once) or `rng` + `num_features`.
    """
    if projection is None:
        if rng is None:
            raise ValueError(
                "performer attention needs projection=[num_features, head_dim] or rng=<PRNG key>"
            )
        projection = jax.random.normal(rng, (num_features, q.shape[-1]))
    if projection.ndim != 2 or projection.shape[1] != q.shape[-1]:
        raise ValueError(
            f"projection must have shape [num_features, head_dim={q.shape[-1]}], got "
            f"{projection.shape}"
        )
    dtype = _validation.statistics_dtype(q.dtype)
    root = math.sqrt(scale)
    projection = projection.astype(dtype)
    log_q = positive_feature_logits(q.astype(dtype) * root, projection)
    log_k = positive_feature_logits(k.astype(dtype) * root, projection)
    # Shifts cancel between numerator and denominator; they only keep exp() in range.
    phi_q = jnp.exp(log_q - jax.lax.stop_gradient(jnp.max(log_q, axis=-1, keepdims=True)))
    phi_k, _ = shifted_key_features(log_k, key_mask)
    return _kernel_attention(
        phi_q, phi_k, v.astype(dtype), key_mask, causal=causal, chunk_size=chunk_size
    )


def _lln(
    q: Array,
    k: Array,
    v: Array,
    key_mask: Array | None,
    *,
    causal: bool,
    scale: float,
    temperature: str | float,
    center_keys: bool,
    chunk_size: int,
) -> Array:
    """LLN attention (Nahshan et al., arXiv 2311.13541): features `exp(τ q)`, `exp(τ (k − k̄))`
    with the moment-matched temperature τ of `eala_jax.ops.lln` (its docstring and docs/method.md,
    "LLN attention", say what departs from the paper; no block-diagonal term). O((T + S)·D·Dv);
    causal: a chunked prefix scan, τ and k̄ of each position from its prefix.
    """
    dtype = _validation.statistics_dtype(q.dtype)
    log_q, log_k = lln_feature_logits(
        q.astype(dtype),
        k.astype(dtype),
        key_mask,
        scale=scale,
        causal=causal,
        temperature=temperature,
        center_keys=center_keys,
    )
    # Shifts cancel between numerator and denominator: per query row, and over the keys one per
    # (batch, head), the largest valid key exponent (causal: the largest so far, rescaling the
    # carried sums as it grows, so a later key never underflows an earlier row).
    phi_q = jnp.exp(log_q - jax.lax.stop_gradient(jnp.max(log_q, axis=-1, keepdims=True)))
    v = v.astype(dtype)
    if causal:
        return causal_shifted_kernel_attention(phi_q, log_k, v, key_mask, chunk_size=chunk_size)
    phi_k, _ = shifted_key_features(log_k, key_mask)
    return _kernel_attention(phi_q, phi_k, v, key_mask, causal=False, chunk_size=chunk_size)


def _uniform(
    q: Array,
    k: Array,
    v: Array,
    key_mask: Array | None,
    *,
    causal: bool,
    scale: float,
    chunk_size: int,
) -> Array:
    """Mean of the valid values (EALA with θ = 0). O(S·Dv)."""
    del scale
    dtype = _validation.statistics_dtype(q.dtype)
    ones_q = jnp.ones(q.shape[:-1] + (1,), dtype)
    ones_k = jnp.ones(k.shape[:-1] + (1,), dtype)
    return _kernel_attention(
        ones_q, ones_k, v.astype(dtype), key_mask, causal=causal, chunk_size=chunk_size
    )


def _kernel_attention(
    phi_q: Array, phi_k: Array, v: Array, key_mask: Array | None, *, causal: bool, chunk_size: int
) -> Array:
    """`o_i = Σ_j (φq_i·φk_j) v_j / Σ_j φq_i·φk_j` over valid (and, if causal, earlier) keys."""
    if key_mask is not None:
        phi_k = phi_k * key_mask[:, :, None, None].astype(phi_k.dtype)
    if causal:
        return causal_kernel_attention(phi_q, phi_k, v, chunk_size=chunk_size)
    # Head-major, with the normaliser as an extra value column: one matrix product per side.
    heads = lambda x: jnp.swapaxes(x, 1, 2)  # [B, L, H, ·] <-> [B, H, L, ·]
    v_ones = jnp.concatenate([v, jnp.ones(v.shape[:-1] + (1,), v.dtype)], axis=-1)
    kv = jnp.einsum("bhsf,bhse->bhfe", heads(phi_k), heads(v_ones))  # [B, H, F, Dv + 1]
    projected = jnp.einsum("bhtf,bhfe->bhte", heads(phi_q), kv)
    num, den = projected[..., :-1], projected[..., -1]
    positive = den > 0
    out = jnp.where(positive[..., None], num / jnp.where(positive, den, 1.0)[..., None], 0.0)
    return heads(out)


softmax_attention = _attention_entry(_softmax, SoftmaxOptions)
linear_attention = _attention_entry(_linear, LinearOptions)
performer_attention = _attention_entry(_performer, PerformerOptions)
lln_attention = _attention_entry(_lln, LlnOptions)
uniform_attention = _attention_entry(_uniform, UniformOptions)
