"""The baseline guard: where, per horizon step, a baseline (last value, seasonal naive, historical
average) beat the model on validation, in MAE and in RMSE, and which forecast to serve there.

Built from the validation tables a run already computes (``results.json["val"]``: per-step MAE and
RMSE of the model and of ``evaluate_baselines``), and, for runs since, from a paired test on the
validation windows of how sure validation is that the model is better (``p_values``,
`eala_jax.train.evidence`). Validation only: the test split never chooses anything.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ALPHA", "BASELINES", "GUARD_FILE", "METRICS", "BaselineGuard"]

BASELINES = ("last_value", "seasonal_naive", "historical_average")
METRICS = ("mae", "rmse")
GUARD_FILE = "guard.json"
#: The model is served only where each of its one-sided p-values (one per baseline and metric,
#: over the whole horizon) is below this level.
ALPHA = 0.05


@dataclasses.dataclass(frozen=True)
class BaselineGuard:
    """Validation scores per step: ``scores[metric][name]`` a float64 ``[T_out]`` array for
    ``"model"`` and each baseline the run reported; ``seasonal_period`` the seasonal naive's period
    in steps (chosen on validation), None when it was not reported; ``p_values[metric][name]``
    the one-sided p-value that the model beats baseline ``name`` in ``metric`` over the horizon
    (`eala_jax.train.evidence.guard_evidence`), or None (a run from before it)."""

    scores: dict[str, dict[str, np.ndarray]]
    seasonal_period: int | None
    p_values: dict[str, dict[str, float]] | None = None

    @classmethod
    def from_tables(cls, val_tables: dict[str, Any]) -> BaselineGuard:
        """From a run's validation tables (``{"model": result, "last_value": result, ...}``)."""
        scores = {
            metric: {
                name: np.asarray(val_tables[name][metric], np.float64)
                for name in ("model", *BASELINES)
                if name in val_tables
            }
            for metric in METRICS
        }
        seasonal = val_tables.get("seasonal_naive")
        period = None if seasonal is None else seasonal.get("period_steps")
        return cls(scores, None if period is None else int(period))

    def better(self, metric: str = "mae") -> list[str]:
        """Per step, ``"model"`` or the baseline with the lowest validation ``metric`` where it is
        strictly lower than the model's (what the warnings and the table report)."""
        if metric not in METRICS:
            raise ValueError(f"fallback metric must be one of {METRICS}, got {metric!r}")
        table = self.scores[metric]
        model = table["model"]
        choice = []
        for h in range(len(model)):
            best = min(table, key=lambda name: (table[name][h], name != "model"))
            choice.append(best if table[best][h] < model[h] else "model")
        return choice

    def shown_better(self) -> bool:
        """Whether validation shows the model better than every baseline over the horizon, in MAE
        and in RMSE: each p-value below `ALPHA`. True without ``p_values``."""
        if self.p_values is None:
            return True
        return all(float(p) < ALPHA for table in self.p_values.values() for p in table.values())

    def served(self, metric: str = "mae") -> list[str]:
        """Per step, the forecast ``fallback`` serves: ``"model"`` where no baseline beat it on
        validation in MAE nor in RMSE, if (with ``p_values``) validation shows it better than every
        baseline over the horizon (`shown_better`); elsewhere, of the baselines that beat it in
        either metric (all of them where none did), the one with the lowest validation ``metric``.

        A step where the model wins one metric by a hair and loses the other is not one to serve
        it at: on exchange_rate (horizon 96) the model won validation MAE by 0.002-1.1 % at steps
        16-18 and 64, lost RMSE there to the last value, and its test MSE at those steps was 12-34 %
        above the last value's (docs/forecast.md, "The baseline guard"). Nor is a model that
        validation cannot show better over the horizon: at horizons 192-720 such models won
        validation MSE by 10-24 % at some steps and lost test MSE there by 10-31 %.
        """
        if metric not in METRICS:
            raise ValueError(f"fallback metric must be one of {METRICS}, got {metric!r}")
        table = self.scores[metric]
        shown = self.shown_better()
        choice = []
        for h in range(len(table["model"])):
            baselines = [name for name in table if name != "model"]
            winners = [
                name
                for name in baselines
                if any(self.scores[m][name][h] < self.scores[m]["model"][h] for m in METRICS)
            ]
            if not winners and not shown:
                winners = baselines
            choice.append(min(winners, key=lambda name: table[name][h]) if winners else "model")
        return choice

    def beaten(self) -> list[str]:
        """One line per metric where a baseline beat the model on validation at some step, e.g.
        ``"validation MAE: last_value better at steps 1-2 (0.85 against 1.85 at step 1), ..."``."""
        lines = []
        for metric in METRICS:
            table, served = self.scores[metric], self.better(metric)
            parts = []
            for name in dict.fromkeys(s for s in served if s != "model"):
                steps = [h for h, s in enumerate(served) if s == name]
                h = steps[0]
                parts.append(
                    f"{name} better at step(s) {_ranges(steps)} ({table[name][h]:.4g} against "
                    f"{table['model'][h]:.4g} at step {h + 1})"
                )
            if parts:
                lines.append(f"validation {metric.upper()}: " + "; ".join(parts))
        return lines

    def markdown(self) -> str:
        """A table of the steps where a baseline beat the model on validation MAE or RMSE (the
        model's score and the best baseline's), or one line saying none did."""
        mae, rmse = self.better("mae"), self.better("rmse")
        rows = [h for h in range(len(mae)) if mae[h] != "model" or rmse[h] != "model"]
        evidence = ""
        if self.p_values is not None:
            worst = max(float(p) for table in self.p_values.values() for p in table.values())
            evidence = (
                "\n\nValidation "
                + ("shows" if self.shown_better() else "does not show")
                + " the model better than every baseline over the horizon in MAE and RMSE "
                f"(one-sided block t-test, largest p-value {worst:.2g}, level {ALPHA:g})"
                + ("." if self.shown_better() else ": `--fallback` serves a baseline everywhere.")
            )
        if not rows:
            return (
                "The model beat last value, seasonal naive and historical average at every "
                "horizon step on validation, in MAE and in RMSE." + evidence
            )
        lines = [
            "| horizon | model MAE | better in MAE | model RMSE | better in RMSE |",
            "|---|---|---|---|---|",
        ]
        for h in rows:
            cells = []
            for metric, served in (("mae", mae), ("rmse", rmse)):
                table = self.scores[metric]
                name = served[h]
                cells += [
                    f"{table['model'][h]:.3f}",
                    "-" if name == "model" else f"{name} ({table[name][h]:.3f})",
                ]
            lines.append(f"| {h + 1} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + evidence

    def to_json(self) -> dict[str, Any]:
        return {
            "scores": {m: {k: v.tolist() for k, v in t.items()} for m, t in self.scores.items()},
            "seasonal_period": self.seasonal_period,
            "p_values": self.p_values,
            "alpha": ALPHA,
            "served_mae": self.served("mae"),
            "served_rmse": self.served("rmse"),
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> BaselineGuard:
        record = json.loads(Path(path).read_text())
        scores = {
            m: {k: np.asarray(v, np.float64) for k, v in t.items()}
            for m, t in record["scores"].items()
        }
        return cls(scores, record["seasonal_period"], record.get("p_values"))


def _ranges(steps: list[int]) -> str:
    """0-based ``[0, 1, 2, 5]`` -> ``"1-3, 6"`` (1-based)."""
    parts, start = [], None
    for i, h in enumerate(steps):
        if start is None:
            start = h
        if i + 1 == len(steps) or steps[i + 1] != h + 1:
            parts.append(f"{start + 1}" if start == h else f"{start + 1}-{h + 1}")
            start = None
    return ", ".join(parts)
