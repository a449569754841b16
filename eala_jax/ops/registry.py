"""Attention functions by name, so a model switches attention with a string."""

from __future__ import annotations

from collections.abc import Callable

from eala_jax.ops.baselines import (
    linear_attention,
    performer_attention,
    softmax_attention,
    uniform_attention,
)
from eala_jax.ops.eala import eala_attention

ATTENTIONS: dict[str, Callable] = {
    "eala": eala_attention,
    "softmax": softmax_attention,
    "linear": linear_attention,
    "performer": performer_attention,
    "uniform": uniform_attention,
}


def get_attention(name: str) -> Callable:
    """The attention function registered as `name` (one of `ATTENTIONS`); ValueError otherwise."""
    try:
        return ATTENTIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown attention {name!r}; expected one of {tuple(ATTENTIONS)}"
        ) from None
