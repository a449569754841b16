"""The attention registry: name -> (op, typed options class), so a model switches attention by name.

fn, options = REGISTRY["eala"]
out = fn(q, k, v, **options(estimator="cumulant3").as_kwargs())
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from eala_jax.ops.baselines import (
    linear_attention,
    lln_attention,
    performer_attention,
    softmax_attention,
    uniform_attention,
)
from eala_jax.ops.eala import eala_attention
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


class Attention(NamedTuple):
    """A registered attention: the op and the dataclass of its static options."""

    function: Callable[..., Any]
    options: type[AttentionOptions]


REGISTRY: Mapping[str, Attention] = types.MappingProxyType(
    {
        options.name: Attention(function, options)
        for function, options in (
            (eala_attention, EalaOptions),
            (softmax_attention, SoftmaxOptions),
            (linear_attention, LinearOptions),
            (performer_attention, PerformerOptions),
            (uniform_attention, UniformOptions),
            (lln_attention, LlnOptions),
            (eala_local_attention, EalaLocalOptions),
        )
    }
)

#: Name -> op, a view of `REGISTRY`.
ATTENTIONS: Mapping[str, Callable[..., Any]] = types.MappingProxyType(
    {name: entry.function for name, entry in REGISTRY.items()}
)


def _entry(name: str) -> Attention:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown attention {name!r}; expected one of {', '.join(REGISTRY)}"
        ) from None


def get_attention(name: str) -> Callable[..., Any]:
    """The attention op registered as `name`; `ValueError` listing the names otherwise."""
    return _entry(name).function


def attention_options(name: str, values: Mapping[str, Any] | None = None) -> AttentionOptions:
    """Validated options of attention `name` from `values` (defaults where absent).

    `ValueError` names the attention, the key and the valid choices.
    """
    return _entry(name).options.from_dict(dict(values or {}))
