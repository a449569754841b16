"""Z-score scaling with statistics from the training split only."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import jax
import numpy as np

ArrayT = TypeVar("ArrayT")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class StandardScaler:
    """``z = (x - mean) / std`` with one mean and std for the whole target channel.

    A registered pytree (leaves ``mean``, ``std``), so it can be closed over or passed into
    ``jax.jit``. ``transform`` / ``inverse_transform`` are pure and work on numpy and JAX arrays
    alike; NaN stays NaN.
    """

    mean: float
    std: float

    @classmethod
    def fit(cls, values: np.ndarray) -> StandardScaler:
        """Fits on the finite entries of ``values`` (any shape; NaN = missing is excluded).

        Population statistics (ddof = 0) in float64. Raises ValueError when nothing is valid or the
        valid values are constant (std would be 0).
        """
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            raise ValueError(
                "StandardScaler.fit: the training values have no valid (finite, non-null) entry"
            )
        mean = float(finite.mean())
        std = float(finite.std())
        if not std > 0.0:
            raise ValueError(
                f"StandardScaler.fit: the training values are constant ({mean}); std would be 0"
            )
        return cls(mean=mean, std=std)

    def transform(self, x: ArrayT) -> ArrayT:
        """``(x - mean) / std``, same shape and (floating) dtype as ``x``."""
        return (x - self.mean) / self.std  # type: ignore[operator]

    def inverse_transform(self, x: ArrayT) -> ArrayT:
        """``x * std + mean``, same shape and (floating) dtype as ``x``."""
        return x * self.std + self.mean  # type: ignore[operator]
