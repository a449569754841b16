"""A trained model's parameters under another attention: the config with the attention of one or
both axes replaced (`with_attention`), and a fresh (model, optimiser) state of that config holding
the trained model's leaves (`transplant`).

Every registered attention's layer has the same parameters (the query, key, value and output
projections; `eala_jax.models.attention.SelfAttention`): an attention only adds non-trainable
buffers, such as the Performer's random projection, which `transplant` keeps from the fresh
initialisation and names. The optimiser state stays fresh (Adam moments zero, step 0).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from eala_jax.ops import AttentionOptions
from eala_jax.train.config import Config

__all__ = ["SCOPES", "transplant", "with_attention"]

#: Where `with_attention` puts the new attention: the spatial layers only, or both axes.
SCOPES = ("spatial", "both")
_AXES = {"spatial": ("spatial_attention",), "both": ("temporal_attention", "spatial_attention")}


def with_attention(config: Config, attention: AttentionOptions, *, scope: str) -> Config:
    """`config` with `attention` in the spatial layers (`scope="spatial"`) or in both axes
    (`"both"`); every other field unchanged. ValueError naming the scopes for another one."""
    if scope not in _AXES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")
    if not isinstance(attention, AttentionOptions):
        raise TypeError(f"attention must be an AttentionOptions object, got {attention!r}")
    model = dataclasses.replace(config.model, **{axis: attention for axis in _AXES[scope]})
    return dataclasses.replace(config, model=model)


def axes_of(scope: str) -> tuple[str, ...]:
    """The model config fields (`"spatial_attention"`, ...) that `scope` replaces."""
    if scope not in _AXES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")
    return _AXES[scope]


def _name(path: tuple) -> str:
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return ".".join(parts)


def transplant(trained: Any, fresh: Any) -> tuple[Any, tuple[str, ...]]:
    """`fresh` (the host state `nnx.state((model, optimizer))` of a newly built model) with every
    leaf of its model (item 0) replaced by the leaf of `trained` (a state of the same form, e.g. a
    restored best checkpoint) at the same path; the optimiser (item 1) stays fresh.

    Returns the new state and the paths of the model leaves `trained` lacks, which keep their
    fresh values (e.g. `"0.spatial_layers.0.attention.projection.value"`: the Performer's random
    features). ValueError when a leaf differs in shape or dtype, or when `trained` holds a model
    leaf `fresh` lacks (a trained parameter would be dropped). O(size of the state)."""
    source = {
        _name(path): leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(trained)
        if _name(path[:1]) == "0"
    }
    used: set[str] = set()
    kept: list[str] = []
    problems: list[str] = []

    def pick(path: tuple, leaf: Any) -> Any:
        name = _name(path)
        if _name(path[:1]) != "0":
            return leaf
        if name not in source:
            kept.append(name)
            return leaf
        used.add(name)
        old = source[name]
        if tuple(old.shape) != tuple(leaf.shape) or str(old.dtype) != str(leaf.dtype):
            problems.append(
                f"{name}: trained {tuple(old.shape)} {old.dtype} vs new {tuple(leaf.shape)} "
                f"{leaf.dtype}"
            )
        return old

    state = jax.tree_util.tree_map_with_path(pick, fresh)
    dropped = sorted(set(source) - used)
    if dropped:
        problems.append(f"trained leaves the new model has no place for: {', '.join(dropped)}")
    if problems:
        raise ValueError("cannot transplant the trained model: " + "; ".join(problems))
    return state, tuple(kept)
