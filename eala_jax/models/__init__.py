"""Flax NNX forecasters over the attention ops, and host-side baseline forecasters."""

from eala_jax.models.attention import (
    ATTENTION_NAMES,
    AttentionBuffer,
    SelfAttention,
    attention_function,
    check_attention_name,
    entropy_of_weights,
)
from eala_jax.models.baselines import (
    HistoricalAverage,
    evaluate_baselines,
    fill_missing,
    last_value_forecast,
)
from eala_jax.models.elinformer import AttentionBlock, ELinFormer, ModelConfig

__all__ = [
    "ATTENTION_NAMES",
    "AttentionBlock",
    "AttentionBuffer",
    "ELinFormer",
    "HistoricalAverage",
    "ModelConfig",
    "SelfAttention",
    "attention_function",
    "check_attention_name",
    "entropy_of_weights",
    "evaluate_baselines",
    "fill_missing",
    "last_value_forecast",
]
