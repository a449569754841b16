"""ELinFormer: the STAEformer backbone (Liu et al., CIKM 2023) with the attention chosen by name.

Input `x [B, T_in, N, 3]` holds (scaled value, time of day in [0, 1), day of week 0..6). The
embeddings are concatenated: input projection 1 -> `input_embedding_dim`, time-of-day embedding
(`steps_per_day` x `tod_embedding_dim`), day-of-week embedding (7 x `dow_embedding_dim`) and an
adaptive spatio-temporal embedding `(T_in, N, adaptive_embedding_dim)`; their sum of widths is the
model dim (24 + 24 + 24 + 80 = 152 by default); a width of 0 leaves an embedding out. Then
`num_temporal_layers` post-norm attention blocks over T (nodes folded into the batch),
`num_spatial_layers` over N (time folded into the batch), and a projection from `(N, T_in *
model_dim)` to `(N, T_out)`. The output is in the *scaled* units of the input value; inverse-scale
it outside the model.

With `temporal_attention="softmax", spatial_attention="softmax"` this is STAEformer; with `"eala"`
(the default) it is ELinFormer; other names give the linear baselines.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from eala_jax.models.attention import SelfAttention, attention_function, check_attention_name

__all__ = ["AttentionBlock", "ELinFormer"]


class AttentionBlock(nnx.Module):
    """Post-norm block: `x = LN(x + drop(attn(x)))`, `x = LN(x + drop(FFN(x)))`; `[B, L, D] -> [B,
    L, D]`.

    `use_flax_mha=True` builds the attention as `nnx.MultiHeadAttention` with the named op as its
    `attention_fn` instead of this package's `SelfAttention` (same maths, flax's projections).
    """

    def __init__(
        self,
        model_dim: int,
        *,
        num_heads: int,
        feed_forward_dim: int,
        dropout: float,
        attention: str,
        attention_options: Mapping[str, Any] | None = None,
        use_flax_mha: bool = False,
        dtype: jnp.dtype | None = None,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.use_flax_mha = use_flax_mha
        if use_flax_mha:
            self.attention = nnx.MultiHeadAttention(
                num_heads=num_heads,
                in_features=model_dim,
                attention_fn=attention_function(attention, attention_options),
                dtype=dtype,
                param_dtype=param_dtype,
                decode=False,
                rngs=rngs,
            )
        else:
            self.attention = SelfAttention(
                model_dim,
                num_heads=num_heads,
                attention=attention,
                attention_options=attention_options,
                dtype=dtype,
                param_dtype=param_dtype,
                rngs=rngs,
            )
        linear = functools.partial(nnx.Linear, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        norm = functools.partial(
            nnx.LayerNorm, model_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.ff_in = linear(model_dim, feed_forward_dim)
        self.ff_out = linear(feed_forward_dim, model_dim)
        self.norm1, self.norm2 = norm(), norm()
        self.dropout1 = nnx.Dropout(dropout)
        self.dropout2 = nnx.Dropout(dropout)

    def __call__(
        self,
        x: jax.Array,
        *,
        deterministic: bool,
        rngs: nnx.Rngs | None,
        return_diagnostics: bool = False,
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        diag: dict[str, jax.Array] = {}
        if self.use_flax_mha:
            h = self.attention(x, deterministic=True)  # attention dropout off, as in STAEformer
        elif return_diagnostics:
            h, diag = self.attention(x, return_diagnostics=True)
        else:
            h = self.attention(x)
        x = self.norm1(x + self.dropout1(h, deterministic=deterministic, rngs=rngs))
        h = self.ff_out(jax.nn.relu(self.ff_in(x)))
        x = self.norm2(x + self.dropout2(h, deterministic=deterministic, rngs=rngs))
        return (x, diag) if return_diagnostics else x


class ELinFormer(nnx.Module):
    """STAEformer-style forecaster: `x [B, T_in, N, 3] -> [B, T_out, N]` (scaled units).

    Every size is a keyword argument (defaults: docs/method.md, ELinFormer). Parameters are
    `param_dtype` (float32); `dtype=jnp.bfloat16` computes the layers in bfloat16 and returns
    float32.
    """

    def __init__(
        self,
        *,
        num_nodes: int,
        steps_per_day: int,
        in_steps: int = 12,
        out_steps: int = 12,
        input_embedding_dim: int = 24,
        tod_embedding_dim: int = 24,
        dow_embedding_dim: int = 24,
        adaptive_embedding_dim: int = 80,
        feed_forward_dim: int = 256,
        num_heads: int = 4,
        num_temporal_layers: int = 3,
        num_spatial_layers: int = 3,
        dropout: float = 0.1,
        temporal_attention: str = "eala",
        spatial_attention: str = "eala",
        temporal_attention_options: Mapping[str, Any] | None = None,
        spatial_attention_options: Mapping[str, Any] | None = None,
        use_flax_mha: bool = False,
        dtype: jnp.dtype | None = None,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        for name in (temporal_attention, spatial_attention):
            check_attention_name(name)
        for label, value in (
            ("num_nodes", num_nodes),
            ("steps_per_day", steps_per_day),
            ("in_steps", in_steps),
            ("out_steps", out_steps),
        ):
            if int(value) < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self.num_nodes = num_nodes
        self.steps_per_day = steps_per_day
        self.in_steps = in_steps
        self.out_steps = out_steps
        self.dtype = dtype
        self.model_dim = (
            input_embedding_dim + tod_embedding_dim + dow_embedding_dim + adaptive_embedding_dim
        )
        if self.model_dim % num_heads:
            raise ValueError(
                f"model dim {self.model_dim} is not divisible by num_heads={num_heads}"
            )
        common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.input_proj = nnx.Linear(1, input_embedding_dim, **common)
        # A zero width switches an embedding off (e.g. day of week on a set holding one week only).
        self.tod_embedding = (
            nnx.Embed(steps_per_day, tod_embedding_dim, **common) if tod_embedding_dim else None
        )
        self.dow_embedding = (
            nnx.Embed(7, dow_embedding_dim, **common) if dow_embedding_dim else None
        )
        self.adaptive_embedding = nnx.Param(
            nnx.initializers.xavier_uniform()(
                rngs.params(), (in_steps, num_nodes, adaptive_embedding_dim), param_dtype
            )
        )
        block = functools.partial(
            AttentionBlock,
            self.model_dim,
            num_heads=num_heads,
            feed_forward_dim=feed_forward_dim,
            dropout=dropout,
            use_flax_mha=use_flax_mha,
            **common,
        )
        self.temporal_layers = nnx.List(
            [
                block(attention=temporal_attention, attention_options=temporal_attention_options)
                for _ in range(num_temporal_layers)
            ]
        )
        self.spatial_layers = nnx.List(
            [
                block(attention=spatial_attention, attention_options=spatial_attention_options)
                for _ in range(num_spatial_layers)
            ]
        )
        self.output_proj = nnx.Linear(in_steps * self.model_dim, out_steps, **common)

    def embed(self, x: jax.Array) -> jax.Array:
        """`[B, T_in, N, 3] -> [B, T_in, N, model_dim]`: value, time of day, day of week,
        adaptive."""
        batch = x.shape[0]
        value = self.input_proj(x[..., :1])
        tod = jnp.round(x[..., 1] * self.steps_per_day).astype(jnp.int32) % self.steps_per_day
        dow = jnp.clip(jnp.round(x[..., 2]).astype(jnp.int32), 0, 6)
        adaptive = jnp.broadcast_to(
            self.adaptive_embedding[...].astype(value.dtype),
            (batch, *self.adaptive_embedding[...].shape),
        )
        parts = [value]
        if self.tod_embedding is not None:
            parts.append(self.tod_embedding(tod))
        if self.dow_embedding is not None:
            parts.append(self.dow_embedding(dow))
        parts.append(adaptive)
        return jnp.concatenate([p.astype(value.dtype) for p in parts], axis=-1)

    def __call__(
        self,
        x: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
        return_diagnostics: bool = False,
    ) -> jax.Array | tuple[jax.Array, dict[str, dict[str, jax.Array]]]:
        """x `[B, T_in, N, 3]` -> prediction `[B, T_out, N]` float32 (scaled units).

        Training passes `deterministic=False, rngs=nnx.Rngs(dropout=key)`. With
        `return_diagnostics=True` also returns `{"temporal_0": {...}, "spatial_0": {...}, ...}`
        of per-layer mean entropies (see `SelfAttention`).
        """
        if (
            x.ndim != 4
            or x.shape[1] != self.in_steps
            or x.shape[2] != self.num_nodes
            or x.shape[3] < 3
        ):
            raise ValueError(
                f"expected x of shape [B, {self.in_steps}, {self.num_nodes}, 3], got "
                f"{tuple(x.shape)}"
            )
        batch, steps, nodes = x.shape[:3]
        h = self.embed(x)  # [B, T, N, D]
        dim = h.shape[-1]
        diagnostics: dict[str, dict[str, jax.Array]] = {}
        # Temporal attention: nodes folded into the batch, [B*N, T, D].
        h = jnp.swapaxes(h, 1, 2).reshape(batch * nodes, steps, dim)
        for i, layer in enumerate(self.temporal_layers):
            h = layer(
                h, deterministic=deterministic, rngs=rngs, return_diagnostics=return_diagnostics
            )
            if return_diagnostics:
                h, diagnostics[f"temporal_{i}"] = h
        # Spatial attention: time folded into the batch, [B*T, N, D].
        h = jnp.swapaxes(h.reshape(batch, nodes, steps, dim), 1, 2).reshape(
            batch * steps, nodes, dim
        )
        for i, layer in enumerate(self.spatial_layers):
            h = layer(
                h, deterministic=deterministic, rngs=rngs, return_diagnostics=return_diagnostics
            )
            if return_diagnostics:
                h, diagnostics[f"spatial_{i}"] = h
        # Output projection per node: (N, T_in * D) -> (N, T_out).
        h = jnp.swapaxes(h.reshape(batch, steps, nodes, dim), 1, 2).reshape(
            batch, nodes, steps * dim
        )
        out = jnp.swapaxes(self.output_proj(h), 1, 2).astype(jnp.float32)  # [B, T_out, N]
        return (out, diagnostics) if return_diagnostics else out
