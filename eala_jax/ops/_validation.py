"""Argument checks shared by every attention op: shapes, masks, dtypes and static options, all at
trace time (nothing here runs in the compiled op)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


def check_qkv(q: Array, k: Array, v: Array | None = None) -> bool:
    """Checks `q: [B, T, H, D]`, `k: [B, S, H, D]`, `v: [B, S, H, Dv]` (rank 3 = no batch axis).

    Returns True when the inputs carry no batch axis (rank 3), so callers can add and drop one.
    Raises ValueError naming the argument and the expected shape.
    """
    arrays = {"q": q, "k": k} if v is None else {"q": q, "k": k, "v": v}
    for name, x in arrays.items():
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"{name} must be an array, got {type(x).__name__}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    ranks = {name: x.ndim for name, x in arrays.items()}
    if len(set(ranks.values())) != 1 or q.ndim not in (3, 4):
        raise ValueError(
            "q, k, v must all have rank 4 [batch, length, heads, head_dim] (or rank 3 without the"
            f" batch axis); got shapes {', '.join(f'{n}={x.shape}' for n, x in arrays.items())}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"head dim of q ({q.shape[-1]}) and k ({k.shape[-1]}) must match; got "
            f"q.shape={q.shape}, k.shape={k.shape}"
        )
    if q.shape[-1] == 0:
        raise ValueError(
            f"q and k must have a non-empty head dim, head_dim >= 1; got q.shape={q.shape},"
            f" k.shape={k.shape}"
        )
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"head count of q ({q.shape[-2]}) and k ({k.shape[-2]}) must match; got "
            f"q.shape={q.shape}, k.shape={k.shape}"
        )
    if q.ndim == 4 and q.shape[0] != k.shape[0]:
        raise ValueError(
            f"batch of q ({q.shape[0]}) and k ({k.shape[0]}) must match; got q.shape={q.shape},"
            f" k.shape={k.shape}"
        )
    if v is not None and v.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            "v must share k's batch, length and heads: expected v.shape[:-1] ="
            f" {k.shape[:-1]}, got v.shape={v.shape}"
        )
    if k.shape[-3] == 0:
        raise ValueError(f"k must hold at least one key (length axis), got k.shape={k.shape}")
    return q.ndim == 3


def resolve_key_mask(key_mask: Any, *, batch: int, num_keys: int) -> Array | None:
    """A boolean key mask `[B, S]` from `key_mask` `[B, S]`, `[S]` or `[1, S]` (True = valid
    key), or None. Flax's `[B, H, T, S]` masks are turned into key masks by the Flax adapter
    (`eala_jax.models.attention.flax_attention_fn`), not here."""
    if key_mask is None:
        return None
    return _as_key_mask(key_mask, batch, num_keys)


class Inputs(NamedTuple):
    """Batched, validated inputs of an attention op (see `attention_inputs`)."""

    q: Array
    k: Array
    v: Array | None
    key_mask: Array | None
    scale: float
    unbatched: bool


def attention_inputs(
    q: Array, k: Array, v: Array | None, key_mask: Any, *, causal: bool, scale: float | None
) -> Inputs:
    """The prologue every attention op shares: checks q/k/v (`check_qkv`), adds a batch axis to
    rank-3 inputs, resolves `key_mask` to `[B, S]` bool, checks that causal attention has T == S,
    and resolves the score scale (None = 1/√D; checked where the options are built, an options
    object or `check_options`). Raises ValueError / TypeError naming the argument.
    """
    unbatched = check_qkv(q, k, v)
    if unbatched:
        q, k = q[None], k[None]
        v = None if v is None else v[None]
    key_mask = resolve_key_mask(key_mask, batch=q.shape[0], num_keys=k.shape[1])
    if causal and q.shape[1] != k.shape[1]:
        raise ValueError(
            f"causal attention needs as many queries as keys; got q length {q.shape[1]},"
            f" k length {k.shape[1]}"
        )
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return Inputs(q, k, v, key_mask, scale, unbatched)


def _as_key_mask(key_mask: Any, batch: int, num_keys: int) -> Array:
    key_mask = jnp.asarray(key_mask)
    if key_mask.dtype != jnp.bool_:
        raise TypeError(f"key_mask must be boolean (True = valid key), got dtype {key_mask.dtype}")
    if key_mask.ndim == 1:
        key_mask = key_mask[None, :]
    if key_mask.ndim != 2 or key_mask.shape[1] != num_keys or key_mask.shape[0] not in (1, batch):
        raise ValueError(
            f"key_mask must have shape [batch={batch}, keys={num_keys}] (or [{num_keys}]); got"
            f" key_mask.shape={tuple(key_mask.shape)}"
        )
    return jnp.broadcast_to(key_mask, (batch, num_keys))


def statistics_dtype(dtype: Any) -> Any:
    """float32 for half-precision inputs, else the input's own float type (float64 stays)."""
    return jnp.promote_types(dtype, jnp.float32)


def _real(value: Any) -> bool:
    """A finite real number (a Python or NumPy scalar; not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    """An integer >= 1 (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


# The static options shared by the ops and their options classes: name -> (accepts, expected).
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "scale": (
        lambda x: x is None or (_real(x) and x > 0),
        "a finite number > 0, or None (1/sqrt(head_dim))",
    ),
    # θ* ≥ 0 always; a negative slope would invert the keys' ranking (docs/method.md step 7).
    "theta": (
        lambda x: (isinstance(x, str) and x == "optimal") or (_real(x) and x >= 0),
        "one of 'optimal' or a finite number >= 0",
    ),
    # LLN's feature temperature α = β = τ (docs/method.md, "LLN attention").
    "temperature": (
        lambda x: (isinstance(x, str) and x == "matched") or (_real(x) and x >= 0),
        "one of 'matched' or a finite number >= 0",
    ),
    "min_entropy": (_real, "a finite number"),
    "chunk_size": (_count, "an integer >= 1"),
    "num_segments": (_count, "an integer >= 1"),
    "num_features": (_count, "an integer >= 1"),
    "num_local": (_count, "an integer >= 1"),
}
#: Names of the options `check_options` checks.
CHECKED_OPTIONS = frozenset(_RULES)


def check_options(owner: str = "", /, **options: Any) -> None:
    """The one check of the static numeric options (`scale`, `theta`, `temperature`,
    `min_entropy`, `chunk_size`, `num_segments`, `num_features`, `num_local`), run by the options
    classes when built (`owner`: the attention's name, which prefixes the message as
    `eala.theta=...`) and by the ops that take no options object (`softmax_entropy`,
    `estimate_entropy`). Raises ValueError naming the option, its value and what was expected.
    Python values only: it runs at trace time.
    """
    prefix = f"{owner}." if owner else ""
    for name, value in options.items():
        accepts, expected = _RULES[name]
        if not accepts(value):
            raise ValueError(f"{prefix}{name}={value!r}; expected {expected}")
