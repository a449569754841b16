"""A thin Flax NNX self-attention layer over the pure attention ops of `eala_jax.ops`.

The layer owns the projections and the head split; the attention rule itself is looked up by
name in the ops registry (`"eala"`, `"softmax"`, `"linear"`, `"performer"`, `"uniform"`) and
called with the layout of `jax.nn.dot_product_attention`: q `[B, T, H, D]`, k/v `[B, S, H, D]`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from eala_jax.ops import get_attention

__all__ = [
    "ATTENTION_NAMES",
    "AttentionBuffer",
    "SelfAttention",
    "attention_function",
    "check_attention_name",
    "entropy_of_weights",
]

#: Names the model accepts for `temporal_attention=` / `spatial_attention=`.
ATTENTION_NAMES: tuple[str, ...] = ("eala", "softmax", "linear", "performer", "uniform")

# Random-feature count the layer draws a fixed projection with when the op needs one.
_DEFAULT_NUM_FEATURES = 64


class AttentionBuffer(nnx.Variable):
    """A non-trainable array owned by an attention layer (e.g. the Performer projection)."""


def check_attention_name(name: str) -> None:
    """Raise `ValueError` naming the choices when `name` is not a registered attention."""
    try:
        get_attention(name)
    except (KeyError, ValueError) as err:
        raise ValueError(
            f"unknown attention {name!r}; choose one of {', '.join(ATTENTION_NAMES)}"
        ) from err


def attention_function(
    name: str, options: Mapping[str, Any] | None = None
) -> Callable[..., jax.Array]:
    """The op `name` with `options` bound, usable as `nnx.MultiHeadAttention(attention_fn=...)`."""
    check_attention_name(name)
    return functools.partial(get_attention(name), **dict(options or {}))


def entropy_of_weights(weights: jax.Array) -> jax.Array:
    """Entropy `-sum_j w_j log w_j` over the last axis, counting non-positive weights as zero.

    EALA's affine rows may hold negative entries; they add nothing here (their share is
    reported separately as the negative fraction).
    """
    w = weights.astype(jnp.float32)
    safe = jnp.where(w > 0, w, 1.0)
    return -jnp.sum(jnp.where(w > 0, w * jnp.log(safe), 0.0), axis=-1)


class SelfAttention(nnx.Module):
    """Multi-head self-attention with the attention rule chosen by name.

    `__call__(x [B, L, model_dim]) -> [B, L, model_dim]`; with `return_diagnostics=True` it also
    returns a dict of scalar float32 diagnostics (exact softmax entropy of the layer's scores,
    and for EALA the entropy of its weights, its estimate, mean θ and the share of negative
    weights). Diagnostics form `[B, H, L, L]` weights, so they are for analysis only.
    """

    def __init__(
        self,
        model_dim: int,
        *,
        num_heads: int,
        attention: str = "eala",
        attention_options: Mapping[str, Any] | None = None,
        dtype: jnp.dtype | None = None,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if model_dim % num_heads:
            raise ValueError(f"model_dim={model_dim} is not divisible by num_heads={num_heads}")
        check_attention_name(attention)
        self.model_dim = model_dim
        self.num_heads = num_heads
        self.head_dim = model_dim // num_heads
        self.attention = attention
        options = dict(attention_options or {})
        self.options = tuple(sorted(options.items()))
        self.dtype = dtype
        linear = functools.partial(
            nnx.Linear, model_dim, model_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.query, self.key, self.value, self.out = linear(), linear(), linear(), linear()
        needs_features = attention == "performer" or (
            attention == "eala" and options.get("estimator") == "random_features"
        )
        if needs_features and "projection" not in options and "rng" not in options:
            # Random features drawn once at init and kept fixed (a buffer, not a parameter).
            num_features = int(options.get("num_features", _DEFAULT_NUM_FEATURES))
            self.projection = AttentionBuffer(
                jax.random.normal(rngs.params(), (num_features, self.head_dim), jnp.float32)
            )
        else:
            self.projection = None

    def _op_options(self) -> dict[str, Any]:
        options = dict(self.options)
        if self.projection is not None:
            options["projection"] = self.projection[...]
        return options

    def __call__(
        self, x: jax.Array, *, key_mask: jax.Array | None = None, return_diagnostics: bool = False
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        """x `[B, L, model_dim]`, key_mask bool `[B, L]` or None -> `[B, L, model_dim]`."""
        batch, length, _ = x.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        q = self.query(x).reshape(shape)
        k = self.key(x).reshape(shape)
        v = self.value(x).reshape(shape)
        fn = get_attention(self.attention)
        options = self._op_options()
        stats = None
        if return_diagnostics and self.attention == "eala":
            o, stats = fn(q, k, v, key_mask=key_mask, return_stats=True, **options)
        else:
            o = fn(q, k, v, key_mask=key_mask, **options)
        y = self.out(o.reshape(batch, length, self.model_dim).astype(x.dtype))
        if not return_diagnostics:
            return y
        return y, self._diagnostics(q, k, key_mask, stats)

    def _diagnostics(
        self, q: jax.Array, k: jax.Array, key_mask: jax.Array | None, stats: dict | None
    ) -> dict[str, jax.Array]:
        from eala_jax.ops import softmax_entropy  # diagnostics only

        diag = {"softmax_entropy": jnp.mean(softmax_entropy(q, k, key_mask=key_mask))}
        if self.attention == "eala":
            from eala_jax.ops import eala_weights

            accepted = inspect.signature(eala_weights).parameters
            opts = {k_: v_ for k_, v_ in self._op_options().items() if k_ in accepted}
            weights = eala_weights(q, k, key_mask=key_mask, **opts)  # [B, H, T, S]
            diag["eala_entropy"] = jnp.mean(entropy_of_weights(weights))
            diag["negative_fraction"] = jnp.mean((weights < 0).astype(jnp.float32))
            if stats is not None:
                diag["estimated_entropy"] = jnp.mean(stats["entropy"].astype(jnp.float32))
                diag["theta"] = jnp.mean(stats["theta"].astype(jnp.float32))
        return diag
