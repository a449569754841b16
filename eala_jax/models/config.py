"""`ModelConfig`: the sizes and attentions of an `ELinFormer` (the `model` section of a training
config), checked in one place when built. No Flax import: configs are read and checked without
building a model."""

from __future__ import annotations

import dataclasses

from eala_jax._checks import check_choice, check_range
from eala_jax.ops import AttentionOptions, EalaOptions

__all__ = ["COMPUTE_DTYPES", "INSTANCE_NORMS", "SEASONAL_RESIDUALS", "ModelConfig"]

#: Names `ModelConfig.dtype` accepts.
COMPUTE_DTYPES = ("float32", "bfloat16")
#: Names `ModelConfig.seasonal_residual` accepts.
SEASONAL_RESIDUALS = ("none", "additive", "multiplicative")
#: Names `ModelConfig.instance_norm` accepts ("mean_std" is RevIN; "last" is NLinear's).
INSTANCE_NORMS = ("none", "mean_std", "last", "last_std")


@dataclasses.dataclass(unsafe_hash=True)
class ModelConfig:
    """Sizes and attentions of an `ELinFormer` (the `model` section of a training config).

    Every field is checked when the config is built or replaced (`check`): choices, ranges, the
    model dim's divisibility by `num_heads` (whichever way "auto" calendar widths resolve), one
    output rescaling. `ELinFormer` runs the same `check` (a field may be assigned after building).
    """

    # Attention per axis: the typed options of a registered op (`eala_jax.ops.REGISTRY`), e.g.
    # EalaOptions(estimator="cumulant3") or SoftmaxOptions(). Its `name` selects the op.
    temporal_attention: AttentionOptions = dataclasses.field(default_factory=EalaOptions)
    spatial_attention: AttentionOptions = dataclasses.field(default_factory=EalaOptions)
    # Embedding widths; their sum is the model dim (152 at paper size, docs/training.md). A
    # calendar width of None is "auto": the training loop keeps the feature (at the width of the
    # input embedding) only where the data's step and training span give it signal
    # (`eala_jax.data.choose_calendar`); a model built without that choice keeps both. 0 = off.
    input_embedding_dim: int = 24
    tod_embedding_dim: int | None = 24
    dow_embedding_dim: int | None = 24
    adaptive_embedding_dim: int = 80
    # The training split's seasonal profile (historical average per sensor and calendar slot,
    # docs/training.md): as an input channel projected to this width (0 = off), and/or as a
    # residual target: "additive" (prediction = profile + output x the scaler's std) or
    # "multiplicative" (profile x exp(output): a slot whose mean is 0 stays 0, for counts);
    # "none" = off.
    seasonal_embedding_dim: int = 0
    seasonal_residual: str = "none"
    feed_forward_dim: int = 256
    num_heads: int = 4
    num_temporal_layers: int = 3
    num_spatial_layers: int = 3
    dropout: float = 0.1
    # Build the attention as nnx.MultiHeadAttention(attention_fn=op) instead of SelfAttention.
    use_flax_mha: bool = False
    # Compute dtype: "float32" or "bfloat16" (parameters stay float32).
    dtype: str = "float32"
    # Rematerialise each attention block in the backward pass (jax.checkpoint through nnx.remat):
    # only the blocks' inputs are kept, at the cost of one more forward pass (on a CPU it needs an
    # XLA flag to save memory, docs/training.md "Sharding the sensors").
    remat: bool = False
    # Long inputs (docs/architecture.md, "Long look-backs"): tokens of `patch_len` consecutive
    # steps every `patch_stride` steps, the last one ending at the last input step (1 and 1: one
    # token a step, as STAEformer). The temporal layers, the adaptive embedding and the output head
    # then see L = (in_steps - patch_len) // patch_stride + 1 tokens instead of in_steps.
    patch_len: int = 1
    patch_stride: int = 1
    # Instance normalisation per window and node, the forecast mapped back (a missing input, 0 in
    # the batch contract, counts as a value): "mean_std" = RevIN without affine weights (Kim et
    # al., ICLR 2022): centred and scaled by the window's input mean and std; "last" = NLinear
    # (Zeng et al., AAAI 2023): the last input value subtracted and added back to the forecast;
    # "last_std": as "last", also divided by the input std; "none" = off. With "last" and
    # "last_std" the output head starts at zero, so a fresh model forecasts the last value.
    instance_norm: str = "none"
    # Long horizons (docs/architecture.md, "Linear look-back path"), keyword-only, both off by
    # default so every earlier config and checkpoint keeps its meaning. `linear_path`: a dense map
    # from the (instance-normalised) input window of each variable to its horizon, `[T_in] ->
    # [T_out]` with weights shared by all variables (DLinear / NLinear), added to the output head's
    # forecast; it starts at zero. `head_dropout`: dropout on the head's input (the last block's
    # `[B, N, L * D]`) in training, as PatchTST's head dropout.
    linear_path: bool = dataclasses.field(default=False, kw_only=True)
    head_dropout: float = dataclasses.field(default=0.0, kw_only=True)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """ValueError (TypeError for an attention that is no options object) naming the key
        unless every field is in its domain."""
        for key in ("temporal_attention", "spatial_attention"):
            value = getattr(self, key)
            if not isinstance(value, AttentionOptions):
                raise TypeError(
                    f"model.{key} must be an attention options object such as EalaOptions() or "
                    f"attention_options({value!r}) (eala_jax.ops), got {type(value).__name__} "
                    f"{value!r}"
                )
        check_choice("model.dtype", self.dtype, COMPUTE_DTYPES)
        check_choice("model.seasonal_residual", self.seasonal_residual, SEASONAL_RESIDUALS)
        check_choice("model.instance_norm", self.instance_norm, INSTANCE_NORMS)
        if self.instance_norm != "none" and self.seasonal_residual != "none":
            raise ValueError(
                "model.instance_norm and model.seasonal_residual both rescale the output; use "
                f"one of them (got {self.instance_norm!r} and {self.seasonal_residual!r})"
            )
        for key in ("linear_path", "use_flax_mha", "remat"):
            if not isinstance(getattr(self, key), bool):
                value = getattr(self, key)
                raise ValueError(
                    f"model.{key} must be True or False, got {type(value).__name__} {value!r}"
                )
        if self.use_flax_mha and "eala_local" in (
            self.temporal_attention.name,
            self.spatial_attention.name,
        ):
            raise ValueError(
                "model.use_flax_mha=True cannot pass eala_local its neighbour tables; use"
                " use_flax_mha=False with eala_local"
            )
        spatial = self.spatial_attention
        if (
            spatial.name == "eala_local"
            and spatial.spatial_keys == "embedding"
            and not self.adaptive_embedding_dim
            and self.num_spatial_layers
        ):
            raise ValueError(
                "model.spatial_attention: eala_local with spatial_keys='embedding' needs"
                " model.adaptive_embedding_dim > 0 (its nodes' neighbours come from that embedding)"
            )
        for key, low, none_ok in (
            ("input_embedding_dim", 1, False),
            ("tod_embedding_dim", 0, True),
            ("dow_embedding_dim", 0, True),
            ("adaptive_embedding_dim", 0, False),
            ("seasonal_embedding_dim", 0, False),
            ("feed_forward_dim", 1, False),
            ("num_heads", 1, False),
            ("num_temporal_layers", 0, False),
            ("num_spatial_layers", 0, False),
            ("patch_len", 1, False),
            ("patch_stride", 1, False),
        ):
            check_range(f"model.{key}", getattr(self, key), integer=True, low=low, none_ok=none_ok)
        check_range("model.dropout", self.dropout, integer=False, low=0, high=1, open_high=True)
        check_range(
            "model.head_dropout", self.head_dropout, integer=False, low=0, high=1, open_high=True
        )
        # An "auto" calendar width (None) may turn out on (at the input embedding's width, as
        # `model_dim` counts it) or off: every outcome must fit the heads.
        autos = sum(w is None for w in (self.tod_embedding_dim, self.dow_embedding_dim))
        for off in range(autos + 1):
            dim = self.model_dim - off * self.input_embedding_dim
            if dim % self.num_heads:
                raise ValueError(
                    f"model dim {dim} (sum of embedding dims"
                    + (", with the auto calendar widths resolved" if autos else "")
                    + f") is not divisible by num_heads={self.num_heads}"
                )

    @property
    def model_dim(self) -> int:
        """Sum of the embedding widths: the width of every attention block."""
        return (
            self.input_embedding_dim
            + self.calendar_widths[0]
            + self.calendar_widths[1]
            + self.adaptive_embedding_dim
            + self.seasonal_embedding_dim
        )

    @property
    def calendar_widths(self) -> tuple[int, int]:
        """(time of day, day of week) widths, an "auto" (None) one at the input embedding's."""
        return tuple(  # type: ignore[return-value]
            self.input_embedding_dim if w is None else w
            for w in (self.tod_embedding_dim, self.dow_embedding_dim)
        )

    @property
    def uses_profile(self) -> bool:
        """Whether the model reads the seasonal profile (``x_profile`` / ``y_profile`` windows)."""
        return bool(self.seasonal_embedding_dim) or self.seasonal_residual != "none"
