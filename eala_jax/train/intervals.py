"""Split-conformal prediction intervals from validation residuals, and their test coverage.

For a level ``L`` (0.8 = an 80 % interval), horizon step ``h`` and node ``n``, the half-width is
the ``ceil((m + 1)·L)``-th smallest absolute validation residual ``|y - ŷ|`` among the ``m`` valid
targets of that (h, n); the interval is ``ŷ ± q``. Where a node has fewer than
``min_per_node`` valid validation targets at a step, or too few for the level
(``ceil((m + 1)·L) > m``), the residuals of all nodes at that step are pooled. Under exchangeability
of validation and test residuals the coverage is at least ``L``; a shift between the two splits
shows as a test coverage off nominal (`coverage`). NumPy, host side; O(W·T_out·N·log W).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_LEVELS",
    "MIN_PER_NODE",
    "ConformalIntervals",
    "check_levels",
    "conformal_intervals",
    "coverage",
]

DEFAULT_LEVELS = (0.8, 0.95)
#: Valid validation targets a (step, node) needs for its own quantile; pooled over nodes below.
MIN_PER_NODE = 50
INTERVALS_FILE = "intervals.npz"


def check_levels(levels: Sequence[float], option: str = "levels") -> tuple[float, ...]:
    """Levels as floats, each strictly between 0 and 1, distinct; ValueError naming ``option``."""
    try:
        values = tuple(float(v) for v in levels)
    except (TypeError, ValueError):
        raise ValueError(f"{option} must be numbers in (0, 1), got {levels!r}") from None
    if not values or not all(0.0 < v < 1.0 for v in values) or len(set(values)) != len(values):
        raise ValueError(
            f"{option} must be distinct numbers strictly between 0 and 1 (e.g. 0.8 0.95), got "
            f"{levels!r}"
        )
    return values


def level_name(level: float) -> str:
    """``0.8 -> "80"``, ``0.975 -> "97.5"`` (the CSV column suffix)."""
    return f"{100 * level:g}"


@dataclasses.dataclass(frozen=True)
class ConformalIntervals:
    """Half-widths ``[L, T_out, N]`` (data units) at ``levels``; ``pooled [L, T_out, N]`` True
    where the step's residuals were pooled over nodes; ``counts [T_out, N]`` the valid validation
    targets per (step, node)."""

    levels: tuple[float, ...]
    half_width: np.ndarray
    pooled: np.ndarray
    counts: np.ndarray

    def bounds(self, forecast: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of ``forecast [..., T_out, N]`` at ``level`` (one of ``levels``)."""
        if level not in self.levels:
            raise ValueError(
                f"no interval at level {level}: the run has levels {list(self.levels)} (pass "
                "levels= to Forecaster.load to compute others)"
            )
        q = self.half_width[self.levels.index(level)].astype(np.float32)
        return forecast - q, forecast + q

    def save(self, path: str | Path) -> None:
        np.savez(
            path,
            levels=np.asarray(self.levels),
            half_width=self.half_width,
            pooled=self.pooled,
            counts=self.counts,
        )

    @classmethod
    def read(cls, path: str | Path) -> ConformalIntervals:
        with np.load(path) as f:
            return cls(
                tuple(float(v) for v in f["levels"]), f["half_width"], f["pooled"], f["counts"]
            )


def _quantile(sorted_scores: np.ndarray, counts: np.ndarray, level: float) -> np.ndarray:
    """The conformal quantile along axis 0 of scores sorted ascending with NaN last; NaN where
    ``ceil((m + 1)·level) > m``."""
    k = np.ceil((counts + 1) * level).astype(np.int64)  # 1-based rank
    ok = (k <= counts) & (counts > 0)
    index = np.clip(k - 1, 0, sorted_scores.shape[0] - 1)
    q = np.take_along_axis(sorted_scores, index[None], axis=0)[0]
    return np.where(ok, q, np.nan)


def conformal_intervals(
    pred: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    min_per_node: int = MIN_PER_NODE,
) -> ConformalIntervals:
    """Split-conformal half-widths from validation predictions.

    pred, target: ``[W, T_out, N]`` (data units), mask: bool ``[W, T_out, N]`` (valid targets).
    A step with too few valid targets even pooled (``ceil((m + 1)·L) > m``) takes the largest
    residual at that step (then coverage below ``L`` is possible; ``pooled`` is True there).
    """
    levels = check_levels(levels)
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    mask = np.asarray(mask, bool)
    if pred.shape != target.shape or pred.shape != mask.shape or pred.ndim != 3:
        raise ValueError(
            f"pred, target and mask must be [W, T_out, N] alike, got {pred.shape}, "
            f"{target.shape}, {mask.shape}"
        )
    w, t_out, n = pred.shape
    scores = np.where(mask, np.abs(target - pred), np.nan)
    counts = mask.sum(0)  # [T_out, N]
    per_node = np.sort(scores, axis=0)
    pooled_scores = np.sort(scores.transpose(0, 2, 1).reshape(w * n, t_out), axis=0)
    pooled_counts = counts.sum(1)  # [T_out]
    widths, pooled = [], []
    for level in levels:
        own = _quantile(per_node, counts, level)
        shared = _quantile(pooled_scores, pooled_counts, level)
        largest = np.nanmax(np.where(np.isnan(pooled_scores), -np.inf, pooled_scores), axis=0)
        shared = np.where(np.isnan(shared), np.maximum(largest, 0.0), shared)
        use_pool = (counts < min_per_node) | np.isnan(own)
        widths.append(np.where(use_pool, shared[:, None], own))
        pooled.append(use_pool)
    return ConformalIntervals(levels, np.stack(widths), np.stack(pooled), counts)


def coverage(
    intervals: ConformalIntervals, pred: np.ndarray, target: np.ndarray, mask: np.ndarray
) -> dict[str, dict[str, list[float]]]:
    """Per level (``"80"``, ``"95"``): ``coverage`` (share of valid targets inside the interval)
    and ``mean_width`` (mean of ``2q`` over the valid targets), each a list over horizon steps,
    plus ``coverage_mean`` / ``mean_width_mean`` over all valid targets."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    mask = np.asarray(mask, bool)
    valid = mask.sum((0, 2)).astype(np.float64)  # [T_out]
    out = {}
    for i, level in enumerate(intervals.levels):
        q = intervals.half_width[i].astype(np.float64)  # [T_out, N]
        inside = (np.abs(target - pred) <= q) & mask
        width = np.where(mask, 2 * q, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = inside.sum((0, 2)) / valid
            wid = width.sum((0, 2)) / valid
        out[level_name(level)] = {
            "level": level,
            "coverage": cov.tolist(),
            "mean_width": wid.tolist(),
            "coverage_mean": float(inside.sum() / max(valid.sum(), 1)),
            "mean_width_mean": float(width.sum() / max(valid.sum(), 1)),
        }
    return out
