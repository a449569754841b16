"""Orbax checkpoints: resumable state (model, optimiser, data-iterator position, loop counters) and
the best model kept apart.

Layout under the workdir: `checkpoints/<step>/` (the last `keep` resumable checkpoints) and
`best/<step>/` (one: the best validation MAE so far). Each resumable checkpoint holds three items:
`state` (the split `nnx.State` of model and optimiser), `data` (the grain iterator state, JSON) and
`counters` (epoch, step, early-stopping counters, history; JSON). Saving is synchronous, so a
checkpoint on disk is always complete; orbax writes to a temporary folder and renames, so a run
killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from eala_jax.train.config import RUNTIME_KEYS, Config, config_to_dict

__all__ = ["CONFIG_FILE", "Checkpoints", "IncompatibleWorkdirError", "check_workdir"]

CONFIG_FILE = "config.json"


class IncompatibleWorkdirError(ValueError):
    """The workdir holds a run whose config or checkpoint does not match this one."""


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not key.endswith("options"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def check_workdir(config: Config, workdir: str | Path) -> bool:
    """Raise `IncompatibleWorkdirError` if `workdir` holds another run's config or a checkpoint
    without one.

    Returns True when the workdir holds a compatible earlier run (to resume), False when fresh.
    Keys in `RUNTIME_KEYS` (progress bar, plots, ...) may differ.
    """
    workdir = Path(workdir)
    saved_path = workdir / CONFIG_FILE
    has_checkpoint = (
        any((workdir / "checkpoints").glob("*")) if (workdir / "checkpoints").is_dir() else False
    )
    if not saved_path.is_file():
        if has_checkpoint:
            raise IncompatibleWorkdirError(
                f"{workdir} holds checkpoints but no {CONFIG_FILE}; use a fresh workdir"
            )
        return False
    try:
        saved = _flatten(json.loads(saved_path.read_text()))
    except json.JSONDecodeError as err:
        raise IncompatibleWorkdirError(f"{saved_path} is not valid JSON: {err}") from err
    current = _flatten(json.loads(json.dumps(config_to_dict(config))))
    keys = (set(saved) | set(current)) - set(RUNTIME_KEYS)
    diffs = sorted(k for k in keys if saved.get(k, "<absent>") != current.get(k, "<absent>"))
    if diffs:
        shown = "; ".join(
            f"{k}: saved {saved.get(k, '<absent>')!r} vs now {current.get(k, '<absent>')!r}"
            for k in diffs[:8]
        )
        raise IncompatibleWorkdirError(
            f"{workdir} holds a run with a different config ({shown}); "
            "use another workdir or the same config to resume"
        )
    return has_checkpoint


class Checkpoints:
    """Resumable checkpoints plus the best one, over two orbax `CheckpointManager`s."""

    def __init__(self, workdir: str | Path, *, keep: int = 2):
        workdir = Path(workdir).absolute()
        self.latest = ocp.CheckpointManager(
            workdir / "checkpoints",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max(1, keep), create=True, enable_async_checkpointing=False
            ),
        )
        self.best = ocp.CheckpointManager(
            workdir / "best",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1,
                best_fn=lambda m: m["val_mae"],
                best_mode="min",
                create=True,
                enable_async_checkpointing=False,
            ),
        )

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def save(self, step: int, state: Any, *, data_state: bytes, counters: dict[str, Any]) -> None:
        """Save a resumable checkpoint (host state, grain iterator state, JSON-able counters)."""
        self.latest.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=ocp.args.JsonSave({"iterator": data_state.decode()}),
                counters=ocp.args.JsonSave(counters),
            ),
        )
        self.latest.wait_until_finished()

    def restore(
        self, abstract_state: Any, step: int | None = None
    ) -> tuple[Any, bytes, dict[str, Any]]:
        """Restore (state, data_state, counters) of `step` (default latest) onto `abstract_state`'s
        structure."""
        step = self.latest.latest_step() if step is None else step
        try:
            restored = self.latest.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state),
                    data=ocp.args.JsonRestore(),
                    counters=ocp.args.JsonRestore(),
                ),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise IncompatibleWorkdirError(
                f"checkpoint {step} in {self.latest.directory} does not fit this model/optimiser: "
                f"{err}"
            ) from err
        return restored["state"], restored["data"]["iterator"].encode(), dict(restored["counters"])

    def save_best(self, step: int, state: Any, *, val_mae: float) -> None:
        """Keep `state` if its validation MAE is the best so far."""
        self.best.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
            metrics={"val_mae": val_mae},
        )
        self.best.wait_until_finished()

    def best_step(self) -> int | None:
        return self.best.best_step()

    def restore_best(self, abstract_state: Any) -> Any:
        step = self.best.best_step()
        if step is None:
            raise FileNotFoundError(f"no best checkpoint in {self.best.directory}")
        restored = self.best.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
        )
        return restored["state"]

    def close(self) -> None:
        self.latest.close()
        self.best.close()
