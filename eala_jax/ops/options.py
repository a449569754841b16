"""Typed, validated options of each attention op: one frozen dataclass per attention.

An options object names its attention (`name`) and holds exactly the op's static keyword options,
so a model or a config carries one typed, hashable value instead of a bag of keywords, and hands
it to the op unchanged:

    opts = EalaOptions(estimator="cumulant3")
    out = eala_attention(q, k, v, key_mask=mask, options=opts)

Values are checked once, when the object is built (`ValueError` naming the field and the valid
choices), so a typo fails where a config is written, not inside tracing: the numeric options
(`scale`, `theta`, `min_entropy`, `chunk_size`, ...) by `_validation.check_options`, the others by
their annotation (the estimator's name by `EstimatorName`, the names of the estimator dispatch
`entropy.ESTIMATOR_TABLE`), then the rules between fields (`_check_together`). The ops trust the
object. An op called with raw keywords (`eala_attention(q, k, v, theta=0.5)`) builds the object
from them once (`resolve`), with errors naming the keyword as written (`theta=...`). The ops'
signatures list these fields (`with_option_keywords`): adding an option means adding a field here
and reading it in the op.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Self

from eala_jax.ops._validation import CHECKED_OPTIONS, check_options
from eala_jax.ops.entropy import ESTIMATOR_TABLE, EstimatorName

__all__ = [
    "AttentionOptions",
    "EalaLocalOptions",
    "EalaOptions",
    "LinearOptions",
    "LlnOptions",
    "PerformerOptions",
    "SoftmaxOptions",
    "UniformOptions",
    "with_option_keywords",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttentionOptions:
    """Options every attention takes: `causal` (query i sees keys j <= i) and the score `scale`
    (None = 1/sqrt(head_dim))."""

    #: Registry name of the attention these options belong to.
    name: ClassVar[str] = ""

    causal: bool = False
    scale: float | None = None
    #: Build-time only: errors name a field as the op's keyword (`theta=...`) instead of
    #: `<attention>.theta=...` (set by `resolve` for raw keywords; not a field).
    as_keywords: dataclasses.InitVar[bool] = False

    def __post_init__(self, as_keywords: bool) -> None:
        owner = "" if as_keywords else self.name
        hints = _type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in CHECKED_OPTIONS:
                check_options(owner, **{field.name: value})
            else:
                prefix = f"{owner}." if owner else ""
                _check_value(f"{prefix}{field.name}", value, hints[field.name])
        self._check_together()

    def _check_together(self) -> None:
        """Rules between fields (after each field's own check); ValueError naming them."""

    def random_features(self) -> int | None:
        """How many random features the op draws (the rows of its `projection` argument), or None
        when it takes none."""
        return None

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

    @classmethod
    def resolve(
        cls, options: AttentionOptions | None, keywords: Mapping[str, Any], *, op: str
    ) -> Self:
        """The options an op runs with: `options` itself, unchanged and not checked again, when no
        keyword is given; else built once from `keywords` over `options` (or the defaults). An
        unknown keyword is a TypeError naming `op` (as Python's for a strict signature); a bad
        value a ValueError naming the keyword (`theta=-1.0; expected ...`)."""
        if options is not None and not isinstance(options, cls):
            raise TypeError(f"{op}: options must be {cls.__name__}, got {type(options).__name__}")
        if not keywords:
            return cls() if options is None else options
        unknown = sorted(set(keywords) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"{op} got unexpected keyword argument(s) {unknown}")
        base = {} if options is None else options.as_kwargs()
        return cls(**{**base, **keywords}, as_keywords=True)

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

    def _check_together(self) -> None:
        if (
            self.causal
            and self.theta == "optimal"
            and not ESTIMATOR_TABLE[self.estimator].variance_only
        ):
            supported = " or ".join(repr(n) for n, e in ESTIMATOR_TABLE.items() if e.variance_only)
            raise ValueError(
                f"causal EALA supports estimator={supported} (or a fixed theta); got"
                f" {self.estimator!r}"
            )

    def random_features(self) -> int | None:
        return self.num_features if ESTIMATOR_TABLE[self.estimator].random_features else None


@dataclasses.dataclass(frozen=True, kw_only=True)
class EalaLocalOptions(AttentionOptions):
    """Options of `eala_local_attention`: exact softmax over a few local keys per query, EALA over
    the rest (docs/method.md, "eala_local"); the rest's entropy estimate is the Gaussian one."""

    name: ClassVar[str] = "eala_local"

    # θ of the EALA part: "optimal" (entropy equality over the non-local keys) or a float >= 0.
    theta: Literal["optimal"] | float = "optimal"
    # False: theta is a constant in the backward pass.
    theta_gradient: bool = True
    # Cap theta so that no weight of the EALA part is negative (non-causal only).
    nonnegative: bool = False
    # Key chunk of the causal scan.
    chunk_size: int = 64
    # K: local keys per query of the sliding window the op builds when given no `neighbours`, and
    # of the tables ELinFormer builds (temporal: a window; spatial: graph or embedding neighbours).
    num_local: int = 8
    # That window: the last `num_local` steps ("past") or `num_local` steps around the query.
    window: Literal["past", "centred"] = "past"
    # ELinFormer's spatial local keys (read by the model, not the op): "graph" (the data set's
    # graph, ops/neighbours.py `graph_neighbours`; an error without one), "embedding" (the most
    # similar nodes of the adaptive embedding) or "auto" (the graph when the data set has one).
    spatial_keys: Literal["auto", "graph", "embedding"] = "auto"

    def _check_together(self) -> None:
        if self.causal and self.nonnegative:
            raise ValueError(
                "causal eala_local does not support nonnegative=True (the cap needs the radius of"
                " each query's non-local prefix keys); use nonnegative=False"
            )
        if self.causal and self.window == "centred":
            raise ValueError(
                "causal eala_local needs window='past' (a centred window reads later steps)"
            )


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

    def random_features(self) -> int | None:
        return self.num_features


@dataclasses.dataclass(frozen=True, kw_only=True)
class LlnOptions(AttentionOptions):
    """Options of `lln_attention` (LLN: exponential feature maps, moment-matched temperature)."""

    name: ClassVar[str] = "lln"

    # "matched" (the moment-matched τ of each batch element and head) or a fixed τ >= 0.
    temperature: Literal["matched"] | float = "matched"
    # Features of the keys minus their mean (False: the paper's exp(τ k); see ops/lln.py).
    center_keys: bool = True
    chunk_size: int = 64


@dataclasses.dataclass(frozen=True, kw_only=True)
class UniformOptions(AttentionOptions):
    """Options of `uniform_attention` (mean of the visible values)."""

    name: ClassVar[str] = "uniform"

    chunk_size: int = 64


def with_option_keywords(
    options: type[AttentionOptions], *, extra: Sequence[inspect.Parameter] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the op's signature (`inspect.signature`, `help`) lists the fields of `options`
    as keyword-only parameters with their defaults (after the `extra` ones) in place of its
    `**keywords`, so the options class is the one list of them (`AttentionOptions.resolve` turns
    the keywords into options)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(function)
        fields = [
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type
            )
            for f in dataclasses.fields(options)
        ]
        params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        function.__signature__ = signature.replace(parameters=[*params, *extra, *fields])
        return function

    return decorate


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of an options class (resolved once; ops build options per call)."""
    return typing.get_type_hints(cls)


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
