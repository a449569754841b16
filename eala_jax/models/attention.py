"""Flax side of the attention ops: one adapter for Flax's attention modules and a thin NNX layer.

`flax_attention_fn(options)` is the one place where Flax's calling convention (a `[B, H, T, S]`
`mask`, `bias`, dropout and precision keywords, `is_causal`) meets the ops' strict signature
`op(q, k, v, *, key_mask=, <options>)`. `SelfAttention` owns the projections and the head split and
calls the op chosen by a typed options object (`eala_jax.ops.EalaOptions`, `SoftmaxOptions`, ...),
in the layout of `jax.nn.dot_product_attention`: q `[B, T, H, D]`, k/v `[B, S, H, D]`.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from eala_jax.models.layers import as_rows
from eala_jax.ops import REGISTRY, AttentionOptions, attention_options, get_attention

__all__ = [
    "ATTENTION_NAMES",
    "AttentionBuffer",
    "SelfAttention",
    "check_attention_name",
    "entropy_of_weights",
    "flax_attention_fn",
    "flax_key_mask",
]

#: Names the model accepts for `temporal_attention=` / `spatial_attention=`.
ATTENTION_NAMES: tuple[str, ...] = tuple(REGISTRY)

# Keywords Flax's attention modules pass to `attention_fn` that the adapter drops: the linear ops
# form no T×S weight matrix for attention dropout to act on, compute their statistics in float32
# (or wider) whatever `precision`, and have no weights to sow into `module`.
_IGNORED_FLAX_KEYWORDS = frozenset(
    {
        "dropout_rng",
        "dropout_rate",
        "broadcast_dropout",
        "deterministic",
        "precision",
        "module",
        "force_fp32_for_softmax",
        "qk_attn_weights_einsum",
        "attn_weights_value_einsum",
    }
)


class AttentionBuffer(nnx.Variable):
    """A non-trainable array owned by an attention layer (e.g. the Performer projection)."""


def check_attention_name(name: str) -> None:
    """Raise `ValueError` naming the choices when `name` is not a registered attention."""
    get_attention(name)


def flax_key_mask(mask: Any, *, batch: int, num_keys: int) -> jax.Array:
    """The key mask `[B or 1, S]` (bool) of a Flax attention mask `[B or 1, 1, 1, S]`.

    Only a key mask broadcast over heads and queries can be applied in linear time (it is reduced
    without building a T×S array); any other shape raises ValueError. Flax's
    `make_attention_mask` builds float32 masks: nonzero = keep.
    """
    mask_shape = tuple(getattr(mask, "shape", ()))
    if (
        len(mask_shape) != 4
        or mask_shape[1] != 1
        or mask_shape[2] != 1
        or mask_shape[3] != num_keys
        or mask_shape[0] not in (1, batch)
    ):
        raise ValueError(
            "mask must be a key mask broadcast over heads and queries, shape [batch or 1, 1, 1,"
            f" {num_keys}]; got mask.shape={mask_shape}. Linear attention cannot apply an "
            "arbitrary query×key mask in linear time: pass key_mask=[batch, keys] or "
            "causal=True instead."
        )
    reduced = jnp.asarray(mask)[:, 0, 0, :]
    return reduced if reduced.dtype == jnp.bool_ else reduced != 0


def flax_attention_fn(options: AttentionOptions | str, /, **values: Any) -> Callable[..., Any]:
    """The op of `options` as an `attention_fn` of `nnx.MultiHeadAttention` or linen's
    `MultiHeadDotProductAttention`.

    `options` is a typed options object or an attention name; `values` are option overrides (a
    name's options are built from them, validated) and the op's array arguments (`rng`,
    `projection`). The returned `fn(query, key, value, bias=None, mask=None, **flax_keywords)`
    takes Flax's `[B, T, H, D]` layout (rank 3 too), turns `mask` into `key_mask`
    (`flax_key_mask`: only key masks broadcast over heads and queries; anything else is a
    ValueError), ORs `is_causal` into `causal`, passes `dtype`, refuses a non-None `bias` (no linear
    attention can add a T×S bias), and ignores dropout, `precision` and `module` (no weight matrix
    is formed for dropout to act on or to sow). Any other keyword is a TypeError.
    """
    if isinstance(options, str):
        name = options
        fields = set(REGISTRY[name].options.field_names()) if name in REGISTRY else set()
        options = attention_options(name, {n: x for n, x in values.items() if n in fields})
    else:
        if not isinstance(options, AttentionOptions):
            raise TypeError(
                f"options must be an AttentionOptions object or an attention name, got "
                f"{type(options).__name__}"
            )
        fields = set(options.field_names())
        overrides = {n: x for n, x in values.items() if n in fields}
        if overrides:
            options = options.replace(**overrides)
    function = get_attention(options.name)
    arrays = {n: x for n, x in values.items() if n not in fields}
    accepted = set(inspect.signature(function).parameters) - fields - {"options"}
    unknown = sorted(set(arrays) - accepted)
    if unknown:
        raise TypeError(
            f"flax_attention_fn: {options.name!r} takes no argument(s) {unknown}; valid options:"
            f" {', '.join(options.field_names())}"
        )

    def attention_fn(
        query: jax.Array,
        key: jax.Array,
        value: jax.Array,
        bias: jax.Array | None = None,
        mask: jax.Array | None = None,
        *,
        is_causal: bool = False,
        dtype: Any = None,
        **flax_keywords: Any,
    ) -> jax.Array:
        unknown = sorted(set(flax_keywords) - _IGNORED_FLAX_KEYWORDS)
        if unknown:
            raise TypeError(f"{options.name} attention_fn got unexpected keyword(s) {unknown}")
        if bias is not None:
            raise ValueError(
                f"{options.name} attention cannot add an attention bias (no T×S weights are"
                " formed); got bias"
            )
        key_mask = None
        if mask is not None:
            batched = query.ndim == 4
            key_mask = flax_key_mask(
                mask if batched else jnp.asarray(mask)[None],
                batch=query.shape[0] if batched else 1,
                num_keys=key.shape[-3],
            )
            key_mask = key_mask if batched else key_mask[0]
        return function(
            query,
            key,
            value,
            key_mask=key_mask,
            dtype=dtype,
            options=options.replace(causal=True) if is_causal and not options.causal else options,
            **arrays,
        )

    return attention_fn


def entropy_of_weights(weights: jax.Array) -> jax.Array:
    """Entropy `-sum_j w_j log w_j` over the last axis, counting non-positive weights as zero.

    EALA's affine rows may hold negative entries; they add nothing here (their share is
    reported separately as the negative fraction).
    """
    w = weights.astype(jnp.float32)
    safe = jnp.where(w > 0, w, 1.0)
    return -jnp.sum(jnp.where(w > 0, w * jnp.log(safe), 0.0), axis=-1)


class SelfAttention(nnx.Module):
    """Multi-head self-attention with the attention rule given by a typed options object.

    `SelfAttention(model_dim, *, num_heads, attention=EalaOptions(...), ...)`;
    `__call__(x [B, L, *G, model_dim]) -> same shape`: attention over axis 1, independently for
    every index of the group axes `G` (none, or e.g. the time steps of `[B, N, T, D]` when
    attending over nodes), which the op sees as extra heads, so no transpose is needed.
    O(B·L·|G|·model_dim²) for the projections (dense layers on 2-D operands) plus the op's cost
    with num_heads·|G| heads. With `return_diagnostics=True` it also returns a dict of scalar
    float32 diagnostics (exact softmax entropy of the layer's scores, and for EALA the entropy of
    its weights, its estimate, mean θ and the share of negative weights). Diagnostics form
    `[B, H, L, L]` weights, so they are for analysis only.
    """

    def __init__(
        self,
        model_dim: int,
        *,
        num_heads: int,
        attention: AttentionOptions,
        dtype: jnp.dtype | None = None,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if not isinstance(attention, AttentionOptions):
            raise TypeError(
                "attention must be an options object (e.g. EalaOptions(), or"
                f" attention_options(name, values)), got {attention!r}"
            )
        if model_dim % num_heads:
            raise ValueError(f"model_dim={model_dim} is not divisible by num_heads={num_heads}")
        self.model_dim = model_dim
        self.num_heads = num_heads
        self.head_dim = model_dim // num_heads
        self.attention = attention
        self.dtype = dtype
        linear = functools.partial(
            nnx.Linear, model_dim, model_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.query, self.key, self.value, self.out = linear(), linear(), linear(), linear()
        features = attention.random_features()
        if features is not None:
            # Random features drawn once at init and kept fixed (a buffer, not a parameter).
            self.projection = AttentionBuffer(
                jax.random.normal(rngs.params(), (features, self.head_dim), jnp.float32)
            )
        else:
            self.projection = None

    def _op_arguments(self) -> dict[str, Any]:
        """The op's keywords: the options object itself, and the random features if any."""
        arguments: dict[str, Any] = {"options": self.attention}
        if self.projection is not None:
            arguments["projection"] = self.projection[...]
        return arguments

    def __call__(
        self,
        x: jax.Array,
        *,
        key_mask: jax.Array | None = None,
        neighbours: jax.Array | None = None,
        return_diagnostics: bool = False,
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        """x `[B, L, *G, model_dim]`, key_mask bool `[B, L]` or None -> x's shape. `neighbours`
        int `[L, K]`: the local keys of each position, for "eala_local" (None: its own window)."""
        if x.ndim < 3 or x.shape[-1] != self.model_dim:
            raise ValueError(
                f"x must be [batch, length, ..., {self.model_dim}], got shape {tuple(x.shape)}"
            )
        batch, length = x.shape[:2]
        heads = self.num_heads * math.prod(x.shape[2:-1])
        shape = (batch, length, heads, self.head_dim)
        rows = as_rows(x)  # dense layers on [rows, model_dim] (one 2-D weight-gradient product)
        q, k, v = (y.reshape(shape) for y in self._project_qkv(rows))
        fn = get_attention(self.attention.name)
        arguments = self._op_arguments()
        if neighbours is not None:
            arguments["neighbours"] = neighbours
        stats = None
        if return_diagnostics and self.attention.name == "eala":
            o, stats = fn(q, k, v, key_mask=key_mask, return_stats=True, **arguments)
        else:
            o = fn(q, k, v, key_mask=key_mask, **arguments)
        y = self.out(o.reshape(rows.shape).astype(x.dtype)).reshape(x.shape)
        if not return_diagnostics:
            return y
        return y, self._diagnostics(q, k, key_mask, stats)

    def _project_qkv(self, rows: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """The query, key and value projections of `rows [R, model_dim]` as one product with the
        three kernels side by side (`[model_dim, 3·model_dim]`): `rows` is read once and the
        backward pass is one product per operand instead of three; same sums as three layers."""
        layers = (self.query, self.key, self.value)
        kernel = jnp.concatenate([layer.kernel[...] for layer in layers], axis=1)
        bias = jnp.concatenate([layer.bias[...] for layer in layers])
        dtype = self.dtype or jnp.result_type(rows, kernel)
        qkv = rows.astype(dtype) @ kernel.astype(dtype) + bias.astype(dtype)
        return tuple(jnp.split(qkv, 3, axis=-1))

    def _diagnostics(
        self, q: jax.Array, k: jax.Array, key_mask: jax.Array | None, stats: dict | None
    ) -> dict[str, jax.Array]:
        from eala_jax.ops import softmax_entropy  # diagnostics only

        diag = {"softmax_entropy": jnp.mean(softmax_entropy(q, k, key_mask=key_mask))}
        if self.attention.name == "eala":
            from eala_jax.ops import eala_weights

            weights = eala_weights(q, k, key_mask=key_mask, **self._op_arguments())  # [B, H, T, S]
            diag["eala_entropy"] = jnp.mean(entropy_of_weights(weights))
            diag["negative_fraction"] = jnp.mean((weights < 0).astype(jnp.float32))
            if stats is not None:
                diag["estimated_entropy"] = jnp.mean(stats["entropy"].astype(jnp.float32))
                diag["theta"] = jnp.mean(stats["theta"].astype(jnp.float32))
        return diag
