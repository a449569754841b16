"""Flax NNX forecasters over the attention ops, and host-side baseline forecasters."""

from eala_jax.models.attention import (
    ATTENTION_NAMES,
    AttentionBuffer,
    SelfAttention,
    check_attention_name,
    entropy_of_weights,
    flax_attention_fn,
    flax_key_mask,
)
from eala_jax.models.baselines import (
    BASELINE_NAMES,
    HistoricalAverage,
    evaluate_baselines,
    fill_missing,
    last_value_forecast,
    seasonal_naive_forecast,
    seasonal_periods,
    seasonal_profile,
)
from eala_jax.models.config import ModelConfig
from eala_jax.models.elinformer import AttentionBlock, ELinFormer

__all__ = [
    "ATTENTION_NAMES",
    "AttentionBlock",
    "BASELINE_NAMES",
    "AttentionBuffer",
    "ELinFormer",
    "HistoricalAverage",
    "ModelConfig",
    "SelfAttention",
    "check_attention_name",
    "entropy_of_weights",
    "flax_attention_fn",
    "flax_key_mask",
    "evaluate_baselines",
    "fill_missing",
    "last_value_forecast",
    "seasonal_naive_forecast",
    "seasonal_periods",
    "seasonal_profile",
]
