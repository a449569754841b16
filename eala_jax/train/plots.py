"""End-of-run figures: the learning curve and prediction against truth for a few sensors (PNG,
Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_learning_curve", "plot_predictions"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curve(
    history: Sequence[dict[str, Any]],
    path: str | Path,
    *,
    baselines: dict[str, float] | None = None,
) -> Path:
    """Train loss and validation MAE per epoch (and baseline validation MAEs as lines) -> PNG."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [row["train_loss"] for row in history], label="train loss")
    ax.plot(epochs, [row["val_mae"] for row in history], label="validation MAE")
    for name, value in (baselines or {}).items():
        ax.axhline(
            value,
            linestyle="--",
            linewidth=1,
            label=f"{name} (val MAE)",
            color="gray" if "last" in name else "tab:red",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("masked MAE (raw units)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_predictions(
    pred: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    path: str | Path,
    *,
    sensors: Sequence[int] = (0, 1, 2),
    horizon: int = 3,
    max_windows: int = 576,
) -> Path:
    """Prediction vs truth at one horizon (1-based) over consecutive test windows; arrays `[W,
    T_out, N]`."""
    plt = _pyplot()
    sensors = [s for s in sensors if 0 <= s < pred.shape[-1]] or [0]
    w = min(pred.shape[0], max_windows)
    fig, axes = plt.subplots(
        len(sensors), 1, figsize=(9, 2.4 * len(sensors)), sharex=True, squeeze=False
    )
    for ax, s in zip(axes[:, 0], sensors, strict=False):
        truth = np.where(mask[:w, horizon - 1, s], target[:w, horizon - 1, s], np.nan)
        ax.plot(truth, label="truth", linewidth=1)
        ax.plot(pred[:w, horizon - 1, s], label="prediction", linewidth=1)
        ax.set_ylabel(f"sensor {s}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right")
    axes[0, 0].set_title(f"test split, horizon {horizon}")
    axes[-1, 0].set_xlabel("test window")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
