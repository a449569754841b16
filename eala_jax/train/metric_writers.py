"""Per-epoch metrics to CSV and JSONL in the workdir, and optionally TensorBoard event files
(tensorboardX, no TensorFlow needed). (Named apart from the standard library's `logging`.)"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["MetricWriter"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


class MetricWriter:
    """Writes one row per epoch to `metrics.csv` and `metrics.jsonl`; `tensorboard=True` adds
    events.

    `rewrite(history)` replaces both files with `history` (used on resume, so a resumed run's
    files hold exactly the epochs of its checkpoint and then the new ones).
    """

    def __init__(self, workdir: str | Path, *, tensorboard: bool = False):
        self.workdir = Path(workdir)
        self.csv_path = self.workdir / "metrics.csv"
        self.jsonl_path = self.workdir / "metrics.jsonl"
        self._writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(self.workdir / "tensorboard"))

    def rewrite(self, history: Sequence[dict[str, Any]]) -> None:
        for path in (self.csv_path, self.jsonl_path):
            path.unlink(missing_ok=True)
        for row in history:
            self._append(row)

    def _append(self, row: dict[str, Any]) -> None:
        row = {k: _clean(v) for k, v in row.items()}
        with self.jsonl_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def log(self, row: dict[str, Any]) -> None:
        """Append one epoch's row (a flat dict of numbers; `epoch` and `step` keys expected)."""
        self._append(row)
        if self._writer is not None:
            step = int(row.get("step", 0))
            for key, value in row.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)):
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
