"""Pure-functional attention ops (no Flax): EALA, entropy estimators and baseline attentions."""

from eala_jax.ops.baselines import (
    linear_attention,
    lln_attention,
    performer_attention,
    softmax_attention,
    uniform_attention,
)
from eala_jax.ops.eala import eala_attention, eala_weights
from eala_jax.ops.entropy import DEFAULT_ESTIMATOR, ESTIMATORS, estimate_entropy, softmax_entropy
from eala_jax.ops.local import eala_local_attention
from eala_jax.ops.options import (
    AttentionOptions,
    EalaLocalOptions,
    EalaOptions,
    LinearOptions,
    LlnOptions,
    PerformerOptions,
    SoftmaxOptions,
    UniformOptions,
)
from eala_jax.ops.registry import (
    ATTENTIONS,
    REGISTRY,
    Attention,
    attention_options,
    get_attention,
)
from eala_jax.ops.statistics import KeyStatistics, key_statistics, merge_statistics
from eala_jax.ops.theta import theta_from_entropy

__all__ = [
    "ATTENTIONS",
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "REGISTRY",
    "Attention",
    "AttentionOptions",
    "EalaLocalOptions",
    "EalaOptions",
    "KeyStatistics",
    "LinearOptions",
    "LlnOptions",
    "PerformerOptions",
    "SoftmaxOptions",
    "UniformOptions",
    "attention_options",
    "eala_attention",
    "eala_local_attention",
    "eala_weights",
    "estimate_entropy",
    "get_attention",
    "key_statistics",
    "linear_attention",
    "lln_attention",
    "merge_statistics",
    "performer_attention",
    "softmax_attention",
    "softmax_entropy",
    "theta_from_entropy",
    "uniform_attention",
]
