"""Masked forecasting metrics and losses, shared by training and evaluation.

Conventions (all functions):
- ``mask`` is explicit (bool or 0/1, same shape as ``pred`` and ``target``); an entry counts only
  where ``mask`` is true **and** ``target`` is finite. Nothing is masked implicitly (no hidden
  "zeros are missing" rule here: the data path turns its null values into ``mask = False``).
- Means are over the valid entries. With no valid entry a loss is 0 with a 0 gradient (never NaN),
  so an all-missing batch cannot move the parameters; the host-side ``MetricAccumulator`` weights
  batches by their valid counts, so such a batch contributes nothing to a reported metric (not a 0).
- MAPE skips targets with ``|target| < min_target`` (default ``MAPE_MIN_TARGET = 1e-3``, in the
  target's own units): with the traffic sets' natural units (flows in vehicles, speeds in mph) this
  is the published "zeros excluded" convention, and it keeps MAPE finite. Pass a unit-aware
  threshold for data near zero (e.g. scaled values or exchange-rate differences).
- Computation in float32 (or wider if the inputs are); pure, jit-able, no Flax.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

MAPE_MIN_TARGET = 1e-3
SUM_KEYS = ("abs_err", "sq_err", "abs_pct_err", "count", "mape_count")


def _prepare(
    pred: jax.Array, target: jax.Array, mask: jax.Array, fn: str
) -> tuple[jax.Array, jax.Array, jax.Array]:
    pred, target, mask = jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask)
    if pred.shape != target.shape or mask.shape != target.shape:
        raise ValueError(
            f"{fn}: pred, target and mask must have the same shape, got {pred.shape}, "
            f"{target.shape}, {mask.shape}"
        )
    dtype = jnp.promote_types(jnp.result_type(pred, target), jnp.float32)
    pred, target = pred.astype(dtype), target.astype(dtype)
    valid = mask.astype(bool) & jnp.isfinite(target)
    # Substitute before differencing so that a NaN target under mask = False cannot leak a NaN
    # gradient.
    zero = jnp.zeros((), dtype)
    return jnp.where(valid, pred, zero), jnp.where(valid, target, zero), valid


def _masked_mean(
    per_entry: jax.Array, valid: jax.Array, count: jax.Array | float | None = None
) -> jax.Array:
    total = jnp.sum(jnp.where(valid, per_entry, jnp.zeros((), per_entry.dtype)))
    if count is None:
        count = jnp.sum(valid).astype(per_entry.dtype)
    return total / jnp.maximum(count, 1)


def masked_mae(
    pred: jax.Array, target: jax.Array, mask: jax.Array, *, count: jax.Array | None = None
) -> jax.Array:
    """Mean absolute error over valid entries; scalar. Any equal shapes.

    ``count`` (optional) replaces the divisor, this call's valid count: data-parallel training
    passes the valid count of the global batch, so that the per-device losses sum to its mean.
    """
    pred, target, valid = _prepare(pred, target, mask, "masked_mae")
    return _masked_mean(jnp.abs(pred - target), valid, count)


def masked_mse(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean squared error over valid entries; scalar."""
    pred, target, valid = _prepare(pred, target, mask, "masked_mse")
    return _masked_mean(jnp.square(pred - target), valid)


def masked_rmse(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Root of the masked MSE; scalar. Gradient 0 (not NaN) where the MSE is 0."""
    mse = masked_mse(pred, target, mask)
    positive = mse > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, mse, 1.0)), 0.0)


def masked_mape(
    pred: jax.Array, target: jax.Array, mask: jax.Array, *, min_target: float = MAPE_MIN_TARGET
) -> jax.Array:
    """Mean absolute percentage error in percent over valid entries with ``|target| >=
    min_target``."""
    pred, target, valid = _prepare(pred, target, mask, "masked_mape")
    abs_target = jnp.abs(target)
    valid = valid & (abs_target >= min_target)
    pct = jnp.abs(pred - target) / jnp.where(valid, abs_target, 1.0)
    return 100.0 * _masked_mean(pct, valid)


def masked_huber(
    pred: jax.Array,
    target: jax.Array,
    mask: jax.Array,
    *,
    delta: float = 1.0,
    count: jax.Array | None = None,
) -> jax.Array:
    """Huber loss (``0.5 e^2`` for ``|e| <= delta``, ``delta (|e| - delta / 2)`` beyond), masked
    mean; ``count`` as in `masked_mae`."""
    if not delta > 0:
        raise ValueError(f"masked_huber: delta must be > 0, got {delta}")
    pred, target, valid = _prepare(pred, target, mask, "masked_huber")
    err = jnp.abs(pred - target)
    quadratic = jnp.minimum(err, delta)
    per_entry = 0.5 * jnp.square(quadratic) + delta * (err - quadratic)
    return _masked_mean(per_entry, valid, count)


def horizon_sums(
    pred: jax.Array, target: jax.Array, mask: jax.Array, *, min_target: float = MAPE_MIN_TARGET
) -> dict[str, jax.Array]:
    """Per-horizon sums for host-side accumulation.

    Args:
      pred, target, mask: ``[B, T_out, N]`` (predictions in the target's units, i.e.
        inverse-scaled).

    Returns:
      ``{"abs_err", "sq_err", "abs_pct_err"}``: float ``[T_out]`` sums over batch and nodes of the
      valid entries (``abs_pct_err`` as a fraction, over the MAPE-valid entries); ``"count"``: int32
      ``[T_out]`` valid entries; ``"mape_count"``: int32 ``[T_out]`` valid entries with ``|target|
      >= min_target``.
    """
    if jnp.ndim(pred) != 3:
        raise ValueError(
            "horizon_sums: pred, target, mask must be [B, T_out, N], got pred shape "
            f"{jnp.shape(pred)}"
        )
    pred, target, valid = _prepare(pred, target, mask, "horizon_sums")
    zero = jnp.zeros((), pred.dtype)
    err = jnp.abs(pred - target)
    abs_target = jnp.abs(target)
    mape_valid = valid & (abs_target >= min_target)
    axes = (0, 2)
    return {
        "abs_err": jnp.sum(jnp.where(valid, err, zero), axis=axes),
        "sq_err": jnp.sum(jnp.where(valid, jnp.square(err), zero), axis=axes),
        "abs_pct_err": jnp.sum(
            jnp.where(mape_valid, err / jnp.where(mape_valid, abs_target, 1.0), zero), axis=axes
        ),
        "count": jnp.sum(valid, axis=axes, dtype=jnp.int32),
        "mape_count": jnp.sum(mape_valid, axis=axes, dtype=jnp.int32),
    }


WINDOW_KEYS = ("abs_err", "sq_err", "count")


def window_sums(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per-window error sums on the host, the per-window counterpart of `horizon_sums`.

    Args:
      pred, target, mask: ``[W, T_out, N]`` (predictions in the target's units).

    Returns:
      ``{"abs_err", "sq_err"}``: float64 ``[W]`` sums over horizon steps and nodes of the valid
      entries; ``"count"``: int64 ``[W]`` valid entries. Any subset of windows scores as
      ``sq_err[subset].sum() / count[subset].sum()`` (`subset_scores`), the same pooled mean as
      ``MetricAccumulator`` over those windows. Cost O(W T_out N).
    """
    pred, target, mask = (np.asarray(a) for a in (pred, target, mask))
    if pred.ndim != 3 or pred.shape != target.shape or mask.shape != target.shape:
        raise ValueError(
            "window_sums: pred, target and mask must be [W, T_out, N] of one shape, got "
            f"{pred.shape}, {target.shape}, {mask.shape}"
        )
    valid = mask.astype(bool) & np.isfinite(target)
    err = np.where(valid, pred.astype(np.float64) - np.where(valid, target, 0.0), 0.0)
    return {
        "abs_err": np.abs(err).sum(axis=(1, 2)),
        "sq_err": np.square(err).sum(axis=(1, 2)),
        "count": valid.sum(axis=(1, 2), dtype=np.int64),
    }


def subset_scores(sums: Mapping[str, np.ndarray], windows: slice | np.ndarray) -> dict[str, float]:
    """``{"mse", "mae"}`` pooled over the valid entries of `windows` (an index or a slice) of
    `window_sums` output; NaN where they hold no valid entry."""
    missing = set(WINDOW_KEYS) - set(sums)
    if missing:
        raise ValueError(
            f"subset_scores: sums lack {sorted(missing)}; pass window_sums(...) output"
        )
    count = float(np.sum(np.asarray(sums["count"])[windows]))
    if count == 0:
        return {"mse": float("nan"), "mae": float("nan")}
    return {
        "mse": float(np.sum(np.asarray(sums["sq_err"])[windows]) / count),
        "mae": float(np.sum(np.asarray(sums["abs_err"])[windows]) / count),
    }


class MetricAccumulator:
    """Host-side sum of ``horizon_sums`` over batches (float64 / int64), so nothing stays on a
    device.

    ``result()`` gives per-horizon ``"mae"``, ``"mse"``, ``"rmse"``, ``"mape"`` (percent)
    ``[T_out]`` and their means over all horizons weighted by valid counts (``"mae_mean"``,
    ``"mse_mean"``, ``"rmse_mean"`` = root of the pooled MSE, ``"mape_mean"``), plus ``"count"`` /
    ``"mape_count"``. On data z-scored per node with training statistics (``load_dataset(...,
    per_node_zscore=True)``) ``mse_mean`` and ``mae_mean`` are the long-horizon benchmarks' MSE and
    MAE over all variables and horizon steps. A horizon (or the mean) with
    no valid entry at all is NaN: undefined, not 0.
    """

    def __init__(self) -> None:
        self._sums: dict[str, np.ndarray] | None = None

    def add(self, sums: Mapping[str, jax.Array | np.ndarray]) -> None:
        """Adds one batch's ``horizon_sums`` (device or numpy arrays)."""
        missing = set(SUM_KEYS) - set(sums)
        if missing:
            raise ValueError(
                f"MetricAccumulator.add: sums lack {sorted(missing)}; pass horizon_sums(...) output"
            )
        host = {
            key: np.asarray(
                jax.device_get(sums[key]), dtype=np.int64 if "count" in key else np.float64
            )
            for key in SUM_KEYS
        }
        if self._sums is None:
            self._sums = host
            return
        for key in SUM_KEYS:
            if host[key].shape != self._sums[key].shape:
                raise ValueError(
                    f"MetricAccumulator.add: {key} has shape {host[key].shape}, earlier batches "
                    f"{self._sums[key].shape}"
                )
            self._sums[key] = self._sums[key] + host[key]

    def result(self) -> dict[str, np.ndarray | float]:
        """Per-horizon and mean metrics; see the class docstring."""
        if self._sums is None:
            raise ValueError("MetricAccumulator.result: no batch was added")
        s = self._sums
        with np.errstate(divide="ignore", invalid="ignore"):
            count = s["count"].astype(np.float64)
            mape_count = s["mape_count"].astype(np.float64)
            per_mae = np.where(count > 0, s["abs_err"] / count, np.nan)
            per_mse = np.where(count > 0, s["sq_err"] / count, np.nan)
            per_rmse = np.sqrt(per_mse)
            per_mape = np.where(mape_count > 0, 100.0 * s["abs_pct_err"] / mape_count, np.nan)
            total, mape_total = count.sum(), mape_count.sum()
            return {
                "mae": per_mae,
                "mse": per_mse,
                "rmse": per_rmse,
                "mape": per_mape,
                "mae_mean": float(s["abs_err"].sum() / total) if total else float("nan"),
                "mse_mean": float(s["sq_err"].sum() / total) if total else float("nan"),
                "rmse_mean": float(np.sqrt(s["sq_err"].sum() / total)) if total else float("nan"),
                "mape_mean": float(100.0 * s["abs_pct_err"].sum() / mape_total)
                if mape_total
                else float("nan"),
                "count": s["count"].copy(),
                "mape_count": s["mape_count"].copy(),
            }


def format_horizon_table(
    result: Mapping[str, np.ndarray | float], *, horizons: Sequence[int] = (3, 6, 12)
) -> str:
    """Markdown table: one row per horizon (1-based step) and the mean over all steps; MAE, RMSE,
    MAPE (%)."""
    num_horizons = len(np.asarray(result["mae"]))
    lines = ["| horizon | MAE | RMSE | MAPE (%) |", "|---|---|---|---|"]
    for h in horizons:
        if not 1 <= h <= num_horizons:
            raise ValueError(f"format_horizon_table: horizon {h} outside 1..{num_horizons}")
        i = h - 1
        lines.append(
            f"| {h} | {float(result['mae'][i]):.3f} | {float(result['rmse'][i]):.3f} | "
            f"{float(result['mape'][i]):.2f} |"
        )
    lines.append(
        f"| mean 1-{num_horizons} | {float(result['mae_mean']):.3f} | "
        f"{float(result['rmse_mean']):.3f} | {float(result['mape_mean']):.2f} |"
    )
    return "\n".join(lines)
