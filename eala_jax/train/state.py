"""`LoopState`: the typed host-side state of a training run, saved with every checkpoint.

The arrays (model and optimiser) are the split NNX state; everything else a run needs to go on
exactly where it stopped is here: counters, the early-stopping record, the per-epoch history and
the data iterator's position. It is stored as two JSON items of the checkpoint (`counters`, and
`data` for the iterator; see `eala_jax.train.checkpoint`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["LoopState"]


@dataclasses.dataclass
class LoopState:
    """Progress of one run (host values only; mutated by the loop, one instance per run)."""

    #: Optimiser steps taken (global).
    step: int = 0
    #: Completed epochs.
    epoch: int = 0
    #: Steps taken in the current epoch.
    step_in_epoch: int = 0
    #: Sum and count of the training losses of the current epoch, and its training time so far.
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    epoch_time_s: float = 0.0
    #: Best validation MAE so far, the epoch that reached it, and epochs since then.
    best_val_mae: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    #: True once the run has stopped; why ("early_stopping" or "max_epochs").
    finished: bool = False
    stop_reason: str | None = None
    #: One row per completed epoch (the rows of metrics.csv).
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: The grain iterator's state (`iterator.get_state()`), None before the first save.
    data_state: bytes | None = None

    def counters(self) -> dict[str, Any]:
        """Everything but the iterator state, as the JSON-able `counters` checkpoint item."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)[:-1]}

    @classmethod
    def from_checkpoint(cls, counters: dict[str, Any], data_state: bytes) -> LoopState:
        """The state saved as `counters()` and the iterator state; unknown keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)} - {"data_state"}
        unknown = sorted(set(counters) - names)
        if unknown:
            raise ValueError(f"checkpoint counters hold unknown keys {unknown}")
        return cls(**counters, data_state=data_state)

    def end_epoch(self, val_mae: float) -> bool:
        """Count a finished epoch with validation MAE `val_mae`; True when it is the best so far."""
        self.epoch += 1
        improved = self.best_val_mae is None or val_mae < self.best_val_mae
        if improved:
            self.best_val_mae, self.best_epoch, self.bad_epochs = val_mae, self.epoch, 0
        else:
            self.bad_epochs += 1
        self.step_in_epoch, self.epoch_loss_sum, self.epoch_loss_count = 0, 0.0, 0
        self.epoch_time_s = 0.0
        return improved

    def decide_stop(self, *, patience: int, max_epochs: int) -> None:
        """Set `finished` / `stop_reason` at an epoch boundary under this budget (`patience` 0 =
        never stop early). Mid-epoch nothing is decided: the epoch's end decides."""
        self.finished, self.stop_reason = False, None
        if self.step_in_epoch:
            return
        if patience and self.bad_epochs >= patience:
            self.finished, self.stop_reason = True, "early_stopping"
        elif self.epoch >= max_epochs:
            self.finished, self.stop_reason = True, "max_epochs"
