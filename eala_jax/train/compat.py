"""Whether a workdir's saved run can be resumed by a config: the saved `config.json` against the
config, key by key (`check_workdir`), where only the `BUDGET_KEYS` (how long, how loudly, on which
devices) may change (`budget_changes`). Beside the config it compares; the checkpoints themselves
are `eala_jax.train.checkpoint`'s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eala_jax.train.config import RUNTIME_KEYS, Config, config_to_dict

__all__ = [
    "BUDGET_KEYS",
    "CONFIG_FILE",
    "IncompatibleWorkdirError",
    "budget_changes",
    "check_workdir",
]

#: The run's config, written into the workdir by the loop.
CONFIG_FILE = "config.json"

#: Config keys that only say how long or how loudly to run: they may differ between a run and its
#: resume (the change is logged). Every other key must match the saved `config.json`.
BUDGET_KEYS = (
    *RUNTIME_KEYS,
    "train.max_epochs",
    "train.patience",
    "train.checkpoint_every_steps",
    "train.keep_checkpoints",
    "train.plot_sensors",
    "train.plot_horizon",
    "train.log_every",
    # How the same steps are spread over devices: results do not change (8 devices == 1 is
    # tested), so a finished workdir can be re-evaluated elsewhere.
    "train.num_devices",
    "train.parallel",
    "train.eval_batch_size",
    # Node sharding and rematerialisation: the same step laid out or scheduled differently (the
    # node-sharded step equals one device's, tests/train/test_node_sharding.py).
    "train.mesh_shape",
    "model.remat",
    # The memory check before training (`eala_jax.train.memory`) changes nothing it trains.
    "train.check_memory",
)


class IncompatibleWorkdirError(ValueError):
    """The workdir cannot be resumed by this run: another run's config, or a checkpoint that does
    not fit this model/optimiser (or, as `CheckpointUnreadableError`, cannot be read)."""


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _differences(config: Config, saved_path: Path) -> dict[str, tuple[Any, Any]]:
    """Keys whose value differs between `saved_path` (a config.json) and `config`: (saved, now)."""
    try:
        saved = _flatten(json.loads(saved_path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IncompatibleWorkdirError(f"{saved_path} is not valid JSON: {err}") from err
    current = _flatten(json.loads(json.dumps(config_to_dict(config))))
    # A key added to the config after the run was saved matches while it keeps its default.
    default = _flatten(json.loads(json.dumps(config_to_dict(Config()))))
    for k in set(current) - set(saved):
        if k in default and current[k] == default[k]:
            saved[k] = current[k]
    return {
        k: (saved.get(k, "<absent>"), current.get(k, "<absent>"))
        for k in sorted(set(saved) | set(current))
        if saved.get(k, "<absent>") != current.get(k, "<absent>")
    }


def check_workdir(config: Config, workdir: str | Path) -> bool:
    """Raise `IncompatibleWorkdirError` if `workdir` holds another run's config or a checkpoint
    without one.

    Returns True when the workdir holds a compatible earlier run (to resume), False when fresh.
    Keys in `BUDGET_KEYS` (epochs, patience, checkpoint cadence, plots, progress bar, ...) may
    differ; `budget_changes` lists those that do.
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
    diffs = {k: v for k, v in _differences(config, saved_path).items() if k not in BUDGET_KEYS}
    if diffs:
        shown = "; ".join(
            f"{k}: saved {saved!r} vs now {now!r}" for k, (saved, now) in list(diffs.items())[:8]
        )
        more = f" and {len(diffs) - 8} more" if len(diffs) > 8 else ""
        raise IncompatibleWorkdirError(
            f"{workdir} holds a run with a different config ({shown}{more}); use another workdir, "
            f"or the same config to resume (only {', '.join(BUDGET_KEYS)} may change on resume)"
        )
    return has_checkpoint


def budget_changes(config: Config, workdir: str | Path) -> dict[str, tuple[Any, Any]]:
    """The `BUDGET_KEYS` whose value in `config` differs from the workdir's saved config:
    {key: (saved, now)}; empty for a fresh workdir."""
    saved_path = Path(workdir) / CONFIG_FILE
    if not saved_path.is_file():
        return {}
    return {k: v for k, v in _differences(config, saved_path).items() if k in BUDGET_KEYS}
