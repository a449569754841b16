"""Argument checks shared by every attention op: shapes, masks and dtypes, at trace time."""

from __future__ import annotations

from typing import Any

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


def resolve_key_mask(key_mask: Any, mask: Any, *, batch: int, num_keys: int) -> Array | None:
    """Returns a boolean key mask `[B, S]`, or None, from `key_mask` or a Flax-style `mask`.

    `key_mask` is `[B, S]`, `[S]` or `[1, S]` (True = the key is valid). `mask` is the
    `[batch, heads, T, S]` boolean mask Flax attention modules pass; EALA can only honour it when it
    is a key mask broadcast over heads and queries (size 1 on those axes), which is reduced without
    building a T×S array. Any other pattern raises ValueError: an arbitrary T×S mask cannot be
    applied in linear time.
    """
    if mask is not None:
        mask_shape = tuple(mask.shape)
        if (
            mask.ndim != 4
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
        if (
            reduced.dtype != jnp.bool_
        ):  # Flax's make_attention_mask builds float32 masks: nonzero = keep
            reduced = reduced != 0
        key_mask = (
            reduced
            if key_mask is None
            else jnp.logical_and(_as_key_mask(key_mask, batch, num_keys), reduced)
        )
    if key_mask is None:
        return None
    return _as_key_mask(key_mask, batch, num_keys)


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


# Keywords Flax's attention modules pass to `attention_fn`; linear attentions have no weight matrix
# for dropout to act on and compute in float32, so these are accepted and ignored.
FLAX_KEYWORDS = frozenset(
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
        "bias",
    }
)


def drop_flax_keywords(
    function: str, options: dict[str, Any], accepted: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Removes Flax's ignorable keywords from `options`; TypeError for any keyword not in
    `accepted`.

    A non-None `bias` raises ValueError: no linear attention can add a T×S bias.
    """
    if options.get("bias") is not None:
        raise ValueError(
            f"{function} cannot add an attention bias (no T×S weights are formed); got bias"
        )
    unknown = sorted(set(options) - FLAX_KEYWORDS - accepted)
    if unknown:
        raise TypeError(f"{function} got unexpected keyword argument(s) {unknown}")
    return {name: value for name, value in options.items() if name in accepted}
