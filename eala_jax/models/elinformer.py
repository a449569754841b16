"""ELinFormer: the STAEformer backbone (Liu et al., CIKM 2023) with a typed attention per axis.

`ELinFormer(config: ModelConfig, *, num_nodes, steps_per_day, in_steps, out_steps, rngs)` reads
every size and both attentions from one `ModelConfig`. It is called as
`model(x, time_of_day, day_of_week, *, deterministic)` on a batch of the data contract (see
`eala_jax.data.WindowSource`): `x [B, T_in, N]` z-scored values, `time_of_day, day_of_week [B,
T_in]` int32. The embeddings are concatenated: input projection 1 -> `input_embedding_dim`,
time-of-day embedding (`steps_per_day` x `tod_embedding_dim`), day-of-week embedding (7 x
`dow_embedding_dim`) and an adaptive spatio-temporal embedding `(T_in, N, adaptive_embedding_dim)`;
their sum of widths is the model dim (24 + 24 + 24 + 80 = 152 by default, docs/training.md); a
width of 0 leaves an embedding out. Then `num_temporal_layers` post-norm attention blocks over T
(nodes folded into the batch), `num_spatial_layers` over N (time folded into the batch), and a
projection from `(N, T_in * model_dim)` to `(N, T_out)`. The output `[B, T_out, N]` is in the
z-scored units of `x`; inverse-scale it outside the model.

Long look-backs (docs/architecture.md, "Long look-backs"): `patch_len` / `patch_stride` make the
temporal layers, the adaptive embedding and the head work on L = (T_in - P) // S + 1 patch tokens
instead of T_in steps, and `instance_norm` normalises each window and node by its own input mean
and std ("mean_std", RevIN) or by its last input value ("last", NLinear; "last_std" also divides
by the std), the forecast mapped back. `linear_path` adds a dense map `[T_in] -> [T_out]` of each
node's (normalised) input window, shared by the nodes, to the head's forecast (DLinear / NLinear);
`head_dropout` drops the head's inputs in training.

With `SoftmaxOptions()` on both axes this is STAEformer; with `EalaOptions()` (the default) it is
ELinFormer; the other registered options give the linear baselines (docs/method.md).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec as P

from eala_jax.models.attention import SelfAttention, flax_attention_fn
from eala_jax.models.config import (
    COMPUTE_DTYPES,
    INSTANCE_NORMS,
    SEASONAL_RESIDUALS,
    ModelConfig,
)
from eala_jax.models.layers import as_rows, dropout, layer_norm
from eala_jax.models.local_keys import spatial_local_keys, spatial_table
from eala_jax.models.patching import num_tokens, patch_ends
from eala_jax.ops import AttentionOptions

__all__ = [
    "BATCH_AXIS",
    "COMPUTE_DTYPES",
    "NODE_AXIS",
    "NODE_SHARDED_PARAMETERS",
    "INSTANCE_NORMS",
    "SEASONAL_RESIDUALS",
    "AttentionBlock",
    "ELinFormer",
    "ModelConfig",
    "num_tokens",
    "patch_ends",
]

#: Mesh axes the model's activations are annotated with when the current mesh (`jax.set_mesh`) has a
#: `NODE_AXIS`: batch over `BATCH_AXIS`, sensors over `NODE_AXIS` (docs/training.md, "Sharding the
#: sensors"). Without such a mesh the model carries no annotation.
BATCH_AXIS = "data"
NODE_AXIS = "nodes"
#: Parameters with a sensor axis, and their sharding under node sharding (their optimiser moments
#: follow them); every other parameter is replicated.
NODE_SHARDED_PARAMETERS = {"adaptive_embedding": P(None, NODE_AXIS)}  # [T_in, N, E]

_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}
_INSTANCE_NORM_EPS = 1e-5
assert tuple(_DTYPES) == COMPUTE_DTYPES


def _attention_layer(
    model_dim: int,
    options: AttentionOptions,
    *,
    num_heads: int,
    use_flax_mha: bool,
    dtype: jnp.dtype | None,
    param_dtype: jnp.dtype,
    rngs: nnx.Rngs,
) -> nnx.Module:
    """The attention of one block, for `options` (the one place the model meets the layer API)."""
    if use_flax_mha:
        return nnx.MultiHeadAttention(
            num_heads=num_heads,
            in_features=model_dim,
            attention_fn=flax_attention_fn(options),
            dtype=dtype,
            param_dtype=param_dtype,
            decode=False,
            rngs=rngs,
        )
    return SelfAttention(
        model_dim,
        num_heads=num_heads,
        attention=options,
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
    )


def _apply_dropout(
    layer: nnx.Dropout, x: jax.Array, deterministic: bool, rngs: nnx.Rngs | None
) -> jax.Array:
    """`layers.dropout` at `layer.rate` with a key from `rngs.dropout()`; `x` unchanged when
    `deterministic` or at rate 0. Shared by the blocks and ELinFormer's head."""
    if deterministic or layer.rate == 0:
        return x
    if rngs is None:
        raise ValueError("deterministic=False needs rngs with a dropout stream")
    return dropout(x, layer.rate, rngs.dropout())


class AttentionBlock(nnx.Module):
    """Post-norm block: `x = LN(x + drop(attn(x)))`, `x = LN(x + drop(FFN(x)))`; `[B, L, *G, D] ->`
    the same shape, attention over axis 1 for every index of the group axes `G` (see
    `SelfAttention`); O(B·L·|G|·D·(D + feed_forward_dim)) plus the attention's own cost.

    Layer norm and dropout are `eala_jax.models.layers`' fused forms with the parameters of the
    `nnx.LayerNorm` modules (dropout masks: a hash of each entry's index and a key from
    `rngs.dropout()`); the feed-forward layers run on `[rows, D]`. `use_flax_mha=True` builds the
    attention as `nnx.MultiHeadAttention` with the op as its `attention_fn` instead of this
    package's `SelfAttention` (same maths, flax's projections; group axes are moved next to the
    batch).
    """

    def __init__(
        self,
        model_dim: int,
        *,
        attention: AttentionOptions,
        num_heads: int,
        feed_forward_dim: int,
        dropout: float,
        use_flax_mha: bool = False,
        dtype: jnp.dtype | None = None,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.use_flax_mha = use_flax_mha
        self.attention = _attention_layer(
            model_dim,
            attention,
            num_heads=num_heads,
            use_flax_mha=use_flax_mha,
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
        neighbours: jax.Array | None = None,
        return_diagnostics: bool = False,
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        """`neighbours [L, K]`: the local keys of an "eala_local" attention (None: its window)."""
        diag: dict[str, jax.Array] = {}
        if self.use_flax_mha:
            # nnx.MultiHeadAttention attends over axis -2: group axes are folded into the batch.
            moved = jnp.moveaxis(x, 1, -2)
            flat = moved.reshape(-1, *moved.shape[-2:])
            h = self.attention(flat, deterministic=True)  # attention dropout off, as in STAEformer
            h = jnp.moveaxis(h.reshape(moved.shape), -2, 1)
        elif return_diagnostics:
            h, diag = self.attention(x, neighbours=neighbours, return_diagnostics=True)
        else:
            h = self.attention(x, neighbours=neighbours)
        x = self._norm(self.norm1, x + _apply_dropout(self.dropout1, h, deterministic, rngs))
        rows = as_rows(x)  # dense layers on 2-D operands
        h = self.ff_out(jax.nn.relu(self.ff_in(rows))).reshape(x.shape)
        x = self._norm(self.norm2, x + _apply_dropout(self.dropout2, h, deterministic, rngs))
        return (x, diag) if return_diagnostics else x

    @staticmethod
    def _norm(norm: nnx.LayerNorm, x: jax.Array) -> jax.Array:
        y = layer_norm(x, norm.scale[...], norm.bias[...], norm.epsilon)
        return y if norm.dtype is None else y.astype(norm.dtype)


class ELinFormer(nnx.Module):
    """STAEformer-style forecaster of `config`: `(x [B, T_in, N], time_of_day, day_of_week [B,
    T_in]) -> [B, T_out, N]` (z-scored units).

    Parameters are `param_dtype` (float32); `config.dtype="bfloat16"` computes the layers in
    bfloat16 and returns float32. Cost per call: the attention blocks, O(B·N·T_in·D²) for the
    projections plus each op's own cost over T_in (temporal) and N (spatial).
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        num_nodes: int,
        steps_per_day: int,
        in_steps: int = 12,
        out_steps: int = 12,
        param_dtype: jnp.dtype = jnp.float32,
        adjacency: np.ndarray | None = None,
        rngs: nnx.Rngs,
    ):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        for label, value in (
            ("num_nodes", num_nodes),
            ("steps_per_day", steps_per_day),
            ("in_steps", in_steps),
            ("out_steps", out_steps),
        ):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        config.check()  # fields may have been assigned since it was built
        instance_norm = config.instance_norm
        self.num_tokens = num_tokens(
            in_steps, patch_len=config.patch_len, patch_stride=config.patch_stride
        )
        self.patch_len, self.patch_stride = config.patch_len, config.patch_stride
        self.instance_norm = instance_norm
        self.num_nodes = num_nodes
        self.steps_per_day = steps_per_day
        self.in_steps = in_steps
        self.out_steps = out_steps
        self.model_dim = config.model_dim
        self.remat = config.remat
        dtype = _DTYPES[config.dtype]
        common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.input_proj = nnx.Linear(config.patch_len, config.input_embedding_dim, **common)
        # A zero width switches an embedding off (e.g. day of week on a set holding one week only).
        tod_width, dow_width = config.calendar_widths
        self.tod_embedding = nnx.Embed(steps_per_day, tod_width, **common) if tod_width else None
        self.dow_embedding = nnx.Embed(7, dow_width, **common) if dow_width else None
        self.seasonal_proj = (
            nnx.Linear(1, config.seasonal_embedding_dim, **common)
            if config.seasonal_embedding_dim
            else None
        )
        # The profile at the target steps enters the same channel, projected per node over the
        # horizon and broadcast over the input steps.
        self.seasonal_target_proj = (
            nnx.Linear(out_steps, config.seasonal_embedding_dim, **common)
            if config.seasonal_embedding_dim
            else None
        )
        self.seasonal_residual = config.seasonal_residual
        # Width 0 leaves the adaptive embedding out: no parameter (a zero-size array would break
        # xavier's fan and the checkpoint writer).
        self.adaptive_embedding = (
            nnx.Param(
                nnx.initializers.xavier_uniform()(
                    rngs.params(),
                    (self.num_tokens, num_nodes, config.adaptive_embedding_dim),
                    param_dtype,
                )
            )
            if config.adaptive_embedding_dim
            else None
        )
        self.spatial_local_size = getattr(config.spatial_attention, "num_local", 0)
        self.spatial_local, self.spatial_neighbours = spatial_local_keys(
            config, adjacency, num_nodes, has_embedding=self.adaptive_embedding is not None
        )
        block = functools.partial(
            AttentionBlock,
            self.model_dim,
            num_heads=config.num_heads,
            feed_forward_dim=config.feed_forward_dim,
            dropout=config.dropout,
            use_flax_mha=config.use_flax_mha,
            **common,
        )
        self.temporal_layers = nnx.List(
            [block(attention=config.temporal_attention) for _ in range(config.num_temporal_layers)]
        )
        self.spatial_layers = nnx.List(
            [block(attention=config.spatial_attention) for _ in range(config.num_spatial_layers)]
        )
        self.output_proj = nnx.Linear(self.num_tokens * self.model_dim, out_steps, **common)
        # A fresh model predicts the profile itself, or the last input value: the head starts at
        # zero (its default init gives outputs of about unit std in normalised units).
        if config.seasonal_residual != "none" or instance_norm in ("last", "last_std"):
            for param in (self.output_proj.kernel, self.output_proj.bias):
                param.value = jnp.zeros_like(param.value)
        self.head_dropout = nnx.Dropout(config.head_dropout)
        # Built last and at zero: the other parameters draw the same random numbers as without it,
        # and a fresh model forecasts what the head alone does.
        self.linear_path = (
            nnx.Linear(
                in_steps,
                out_steps,
                kernel_init=nnx.initializers.zeros_init(),
                bias_init=nnx.initializers.zeros_init(),
                **common,
            )
            if config.linear_path
            else None
        )

    def _check_inputs(self, x: jax.Array, time_of_day: jax.Array, day_of_week: jax.Array) -> None:
        if x.ndim != 3 or x.shape[1:] != (self.in_steps, self.num_nodes):
            raise ValueError(
                f"x must be [B, {self.in_steps}, {self.num_nodes}] (batch, in_steps, num_nodes), "
                f"got shape {tuple(x.shape)}"
            )
        for name, value in (("time_of_day", time_of_day), ("day_of_week", day_of_week)):
            if value.shape != x.shape[:2] or not jnp.issubdtype(value.dtype, jnp.integer):
                raise ValueError(
                    f"{name} must be integers of shape [B, {self.in_steps}] = {x.shape[:2]} (the "
                    f"batch contract, docs/data.md), got {value.dtype} {tuple(value.shape)}"
                )

    def embed(
        self,
        x: jax.Array,
        time_of_day: jax.Array,
        day_of_week: jax.Array,
        seasonal: tuple[jax.Array, jax.Array] | None = None,
    ) -> jax.Array:
        """`x [B, T_in, N]`, `time_of_day, day_of_week [B, T_in]` int, `seasonal` (used when
        `seasonal_embedding_dim` > 0): the z-scored seasonal profile at the input and at the target
        steps, `([B, T_in, N], [B, T_out, N])` -> `[B, L, N, model_dim]`: value (of a patch), time
        of day, day of week (of the patch's last step), adaptive, seasonal (input-step profile at
        each token's last step + target-step profile per node); L = `num_tokens` (T_in without
        patching)."""
        self._check_inputs(x, time_of_day, day_of_week)
        if self.seasonal_proj is not None:
            expected = (tuple(x.shape), (x.shape[0], self.out_steps, x.shape[2]))
            got = None if seasonal is None else tuple(tuple(a.shape) for a in seasonal)
            if got != expected:
                raise ValueError(
                    "seasonal_embedding_dim > 0: pass seasonal= (the batch's x_profile and the "
                    f"z-scored y_profile) of shapes {expected}, got {got}"
                )
        patches, time_of_day, day_of_week = self._tokens(x, time_of_day, day_of_week)
        value = self.input_proj(patches)  # [B, L, N, patch_len] -> [B, L, N, E]
        # The calendar rows are gathered per node (indices broadcast to [B, T, N]): the embedding
        # gradient then sums in the same order as in earlier versions, so a seed reproduces their
        # runs to the bit; gathering [B, T] rows and broadcasting differs in the last bits.
        per_node = patches.shape[:3]
        parts = [value]
        if self.tod_embedding is not None:
            parts.append(self.tod_embedding(jnp.broadcast_to(time_of_day[..., None], per_node)))
        if self.dow_embedding is not None:
            parts.append(self.dow_embedding(jnp.broadcast_to(day_of_week[..., None], per_node)))
        if self.adaptive_embedding is not None:
            adaptive = self.adaptive_embedding[...]
            parts.append(jnp.broadcast_to(adaptive, (per_node[0], *adaptive.shape)))
        if self.seasonal_proj is not None:
            at_inputs, at_targets = seasonal
            if self.patch_len != 1 or self.patch_stride != 1:
                at_inputs = at_inputs[:, self._token_ends()]
            target_part = self.seasonal_target_proj(jnp.swapaxes(at_targets, 1, 2))  # [B, N, S]
            parts.append(self.seasonal_proj(at_inputs[..., None]) + target_part[:, None])
        return jnp.concatenate([p.astype(value.dtype) for p in parts], axis=-1)

    def _token_ends(self) -> np.ndarray:
        """int32 `[L]`: the last input step of each token (static)."""
        return patch_ends(self.in_steps, patch_len=self.patch_len, patch_stride=self.patch_stride)

    def _tokens(
        self, x: jax.Array, time_of_day: jax.Array, day_of_week: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """`x [B, T_in, N]` -> patches `[B, L, N, patch_len]` and the calendar of each patch's last
        step `[B, L]` (one gather, O(B·L·N·patch_len)); `x[..., None]` unchanged without
        patching."""
        if self.patch_len == 1 and self.patch_stride == 1:
            return x[..., None], time_of_day, day_of_week
        ends = self._token_ends()
        steps = ends[:, None] + np.arange(1 - self.patch_len, 1)  # [L, patch_len], static
        patches = jnp.moveaxis(x[:, steps], -1, 2)  # [B, L, P, N] -> [B, L, N, P]
        return patches, time_of_day[:, ends], day_of_week[:, ends]

    def __call__(
        self,
        x: jax.Array,
        time_of_day: jax.Array,
        day_of_week: jax.Array,
        *,
        deterministic: bool,
        rngs: nnx.Rngs | None = None,
        return_diagnostics: bool = False,
        seasonal: tuple[jax.Array, jax.Array] | None = None,
    ) -> jax.Array | tuple[jax.Array, dict[str, dict[str, jax.Array]]]:
        """Prediction `[B, T_out, N]` float32 (z-scored units) of a batch of the data contract.

        Training passes `deterministic=False, rngs=nnx.Rngs(dropout=key)`. With
        `return_diagnostics=True` also returns `{"temporal_0": {...}, "spatial_0": {...}, ...}`
        of per-layer mean entropies (see `SelfAttention`). `seasonal`: see `embed`. With
        `seasonal_residual` the output is the deviation from the profile at the target steps, in
        units of the scaler's std ("additive") or as a log factor ("multiplicative"),
        `eala_jax.train.steps` puts the profile back; the head starts at zero, so a fresh model
        predicts the profile (the historical average). With `instance_norm` "last" / "last_std"
        the head starts at zero too: a fresh model forecasts each node's last input value.
        """
        norm = self.instance_norm  # a mode name, resolved once in __init__
        if norm != "none":  # per window and node, over the input steps
            if norm == "mean_std":  # RevIN
                centre = jnp.mean(x, axis=1, keepdims=True)
            else:  # NLinear: the last input value
                centre = x[:, -1:]
            if norm == "last":
                spread = jnp.ones_like(centre)
            else:
                spread = jnp.sqrt(jnp.var(x, axis=1, keepdims=True) + _INSTANCE_NORM_EPS)
            x = (x - centre) / spread
        h = self.embed(x, time_of_day, day_of_week, seasonal)  # [B, L, N, D]
        h = _on_mesh(h, BATCH_AXIS, None, NODE_AXIS)
        batch, steps, nodes, dim = h.shape
        diagnostics: dict[str, dict[str, jax.Array]] = {}
        remat = self.remat and not return_diagnostics
        block = nnx.remat(_call_block, static_argnums=(4, 5)) if remat else _call_block
        flags = (deterministic, return_diagnostics)
        # One layout for all blocks, [B, N, T, D] (the only transpose of the activations).
        # Temporal attention: nodes folded into the batch, [B*N, T, D]. Under node sharding the
        # folded axis is split over both mesh axes (XLA moves the rows with one all-to-all).
        h = jnp.swapaxes(h, 1, 2).reshape(batch * nodes, steps, dim)
        for i, layer in enumerate(self.temporal_layers):
            h = block(layer, _on_mesh(h, (BATCH_AXIS, NODE_AXIS)), rngs, None, *flags)
            if return_diagnostics:
                h, diagnostics[f"temporal_{i}"] = h
        # Spatial attention over axis 1 of [B, N, T, D]: time steps are extra heads (no transpose);
        # sensors stay sharded.
        h = h.reshape(batch, nodes, steps, dim)
        local = spatial_table(
            self.spatial_local,
            self.spatial_neighbours,
            self.adaptive_embedding,
            self.spatial_local_size,
        )
        for i, layer in enumerate(self.spatial_layers):
            h = block(layer, _on_mesh(h, BATCH_AXIS, NODE_AXIS), rngs, local, *flags)
            if return_diagnostics:
                h, diagnostics[f"spatial_{i}"] = h
        # Output projection per node: (N, T_in * D) -> (N, T_out).
        h = _on_mesh(h.reshape(batch, nodes, steps * dim), BATCH_AXIS, NODE_AXIS)
        h = _apply_dropout(self.head_dropout, h, deterministic, rngs)
        out = jnp.swapaxes(self.output_proj(h), 1, 2).astype(jnp.float32)  # [B, T_out, N]
        if self.linear_path is not None:  # [B, N, T_in] -> [B, N, T_out], shared by the nodes
            linear = self.linear_path(jnp.swapaxes(x, 1, 2).astype(out.dtype))
            out = out + jnp.swapaxes(linear, 1, 2).astype(jnp.float32)
        if norm != "none":
            out = out * spread + centre
        out = _on_mesh(out, BATCH_AXIS, None, NODE_AXIS)
        return (out, diagnostics) if return_diagnostics else out


def _call_block(
    layer: AttentionBlock,
    h: jax.Array,
    rngs: nnx.Rngs | None,
    neighbours: jax.Array | None,
    deterministic: bool,
    return_diagnostics: bool,
) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
    """One block's call with positional arguments only, so `nnx.remat` can wrap it (the flags
    static)."""
    return layer(
        h,
        deterministic=deterministic,
        rngs=rngs,
        neighbours=neighbours,
        return_diagnostics=return_diagnostics,
    )


def _on_mesh(x: jax.Array, *spec: str | tuple[str, ...] | None) -> jax.Array:
    """`x` constrained to `PartitionSpec(*spec)` when the current mesh has a `NODE_AXIS` (node
    sharding, `jax.set_mesh`); `x` itself otherwise (one device, or data parallelism alone)."""
    if NODE_AXIS not in jax.sharding.get_abstract_mesh().axis_names:
        return x
    return jax.lax.with_sharding_constraint(x, P(*spec))
