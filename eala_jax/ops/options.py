"""Typed, validated options of each attention op: one frozen dataclass per attention.

An options object names its attention (`name`) and holds exactly the op's static keyword options,
so a model or a config carries one typed, hashable value instead of a bag of keywords:

    opts = EalaOptions(estimator="cumulant3")
    out = eala_attention(q, k, v, key_mask=mask, **opts.as_kwargs())

Values are checked when the object is built (`ValueError` naming the field and the valid choices),
so a typo fails where a config is written, not inside tracing: the numeric options (`scale`,
`theta`, `min_entropy`, `chunk_size`, ...) by `_validation.check_options`, the same check the ops
run on their keywords; the others by their annotation. Adding an option means adding a field here
and the keyword to the op (`tests/ops/test_options.py` checks that they agree).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from eala_jax.ops._validation import CHECKED_OPTIONS, check_options
from eala_jax.ops.entropy import EstimatorName

__all__ = [
    "AttentionOptions",
    "EalaOptions",
    "LinearOptions",
    "PerformerOptions",
    "SoftmaxOptions",
    "UniformOptions",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttentionOptions:
    """Options every attention takes: `causal` (query i sees keys j <= i) and the score `scale`
    (None = 1/sqrt(head_dim))."""

    #: Registry name of the attention these options belong to.
    name: ClassVar[str] = ""

    causal: bool = False
    scale: float | None = None

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in CHECKED_OPTIONS:
                check_options(self.name, **{field.name: value})
            else:
                _check_value(f"{self.name}.{field.name}", value, hints[field.name])

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Self:
        """Options from a mapping; `ValueError` listing the valid names for an unknown key."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for attention {cls.name!r}; valid options: "
                f"{', '.join(cls.field_names())}"
            )
        return cls(**dict(values))

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` applied and validated (unknown names are errors)."""
        return type(self).from_dict({**self.as_kwargs(), **changes})

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of the attention op."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class EalaOptions(AttentionOptions):
    """Options of `eala_attention` (see its docstring and docs/method.md)."""

    name: ClassVar[str] = "eala"

    # Entropy estimator for theta*.
    estimator: EstimatorName = "gaussian"
    # "optimal" (entropy equality) or a fixed float >= 0 (1.0: centred linear weights; 0: uniform).
    theta: Literal["optimal"] | float = "optimal"
    # False: theta is a constant in the backward pass.
    theta_gradient: bool = True
    # Cap theta so that no weight is negative.
    nonnegative: bool = False
    # Floor on the entropy estimate: Ĥ ← max(Ĥ, min_entropy) (0.0 changes nothing).
    min_entropy: float = 0.0
    # Key blocks of the "segments" estimator.
    num_segments: int = 32
    # Random features of the "random_features" estimator.
    num_features: int = 64
    # Key chunk of the causal scan.
    chunk_size: int = 64
    # None (auto), "statistics" (D x D key statistics) or "scores" (explicit scores, for S <= D).
    implementation: Literal["statistics", "scores"] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class SoftmaxOptions(AttentionOptions):
    """Options of `softmax_attention` (exact, quadratic)."""

    name: ClassVar[str] = "softmax"


@dataclasses.dataclass(frozen=True, kw_only=True)
class LinearOptions(AttentionOptions):
    """Options of `linear_attention` (elu + 1 feature map)."""

    name: ClassVar[str] = "linear"

    chunk_size: int = 64


@dataclasses.dataclass(frozen=True, kw_only=True)
class PerformerOptions(AttentionOptions):
    """Options of `performer_attention` (FAVOR+ positive random features)."""

    name: ClassVar[str] = "performer"

    num_features: int = 64
    chunk_size: int = 64


@dataclasses.dataclass(frozen=True, kw_only=True)
class UniformOptions(AttentionOptions):
    """Options of `uniform_attention` (mean of the visible values)."""

    name: ClassVar[str] = "uniform"

    chunk_size: int = 64


def _check_value(key: str, value: Any, annotation: Any) -> None:
    """`ValueError` naming `key` unless `value` fits `annotation`."""
    if not _fits(value, annotation):
        raise ValueError(f"{key}={value!r}; expected {_describe(annotation)}")


def _fits(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return any(
            value == choice and type(value) is type(choice) for choice in annotation.__args__
        )
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    raise TypeError(f"no check for annotation {annotation!r}")


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in annotation.__args__)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    return {bool: "a boolean", int: "an integer", float: "a finite number"}[annotation]
