"""Range and choice checks of configuration values, shared by the config sections of every layer
(`eala_jax.models.ModelConfig`, `eala_jax.train.Config`): each raises ValueError naming the key and
what it allows."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["check_choice", "check_range"]


def check_choice(key: str, value: Any, allowed: Iterable[str]) -> None:
    """Raises ValueError naming `key` and the choices unless `value` is one of `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{key}={value!r}; choose one of {', '.join(allowed)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def check_range(
    key: str,
    value: Any,
    *,
    integer: bool,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
    none_ok: bool = False,
) -> None:
    """Raises ValueError naming `key` and its allowed range unless `value` lies in it."""
    if none_ok and value is None:
        return
    if integer:
        kind, fits = "an integer", isinstance(value, int) and not isinstance(value, bool)
    else:
        kind, fits = "a finite number", _is_number(value) and math.isfinite(value)
    if fits and low is not None:
        fits = value > low if open_low else value >= low
    if fits and high is not None:
        fits = value < high if open_high else value <= high
    if fits:
        return
    if low is not None and high is not None:
        where = f"in {'(' if open_low else '['}{_fmt(low)}, {_fmt(high)}{')' if open_high else ']'}"
    elif low is not None:
        where = f"{'>' if open_low else '>='} {_fmt(low)}"
    elif high is not None:
        where = f"{'<' if open_high else '<='} {_fmt(high)}"
    else:
        where = kind
    allowed = where + (" or None" if none_ok else "") + ("" if where == kind else f" ({kind})")
    raise ValueError(f"{key} must be {allowed}, got {value!r}")
