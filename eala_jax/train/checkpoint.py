"""Orbax checkpoints: resumable state (model, optimiser, data-iterator position, loop counters) and
the best model kept apart, each checked against the SHA-256 of its files before it is read.

Layout under the workdir: `checkpoints/<step>/` (the last `keep` resumable checkpoints) and
`best/<step>/` (one: the best validation MAE so far). Each resumable checkpoint holds three items:
`state` (the split `nnx.State` of model and optimiser) and the `LoopState` as `data` (the grain
iterator state, JSON) and `counters` (epoch, step, early-stopping record, history; JSON). Saving is
synchronous, so a checkpoint on disk is always complete; orbax writes to a temporary folder and
renames, so a run killed mid-save leaves the previous checkpoint intact. After each save a
`SHA256SUMS` file (the format of `sha256sum`, so `cd checkpoints/<step> && sha256sum -c SHA256SUMS`
checks it by hand) records every file's digest; a restore first compares them (one read of the
checkpoint's bytes), so bytes changed on disk are reported as an unreadable checkpoint naming the
file, never read back as wrong parameters. Checkpoints without the file (written before it existed,
or killed between the save and the digest) are read without that check.

A save that fails (disk full, file-size limit, permissions) raises `CheckpointSaveError` naming the
file and the reason (`eala_jax.train.write_failures`); its partial temporary folder is removed and
the checkpoints already on disk are untouched, so the run resumes from the newest of them.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from eala_jax.train.compat import (
    BUDGET_KEYS,
    CONFIG_FILE,
    IncompatibleWorkdirError,
    budget_changes,
    check_workdir,
)
from eala_jax.train.state import LoopState
from eala_jax.train.write_failures import (
    CheckpointSaveError,
    WorkdirNotWritableError,
    ensure_writable_workdir,
    quiet_orbax_thread_errors,
    save_failure,
    saved_steps,
)

__all__ = [
    "BUDGET_KEYS",
    "CONFIG_FILE",
    "DIGEST_FILE",
    "UNREADABLE_DIR",
    "CheckpointSaveError",
    "CheckpointUnreadableError",
    "Checkpoints",
    "IncompatibleWorkdirError",
    "WorkdirNotWritableError",
    "budget_changes",
    "check_workdir",
    "ensure_writable_workdir",
    "saved_steps",
    "sync_processes",
]

DIGEST_FILE = "SHA256SUMS"
#: Folder of the workdir that unreadable resumable checkpoints are moved to when a run falls back to
#: an older one (`<UNREADABLE_DIR>/<step>`): kept for inspection, out of orbax's way.
UNREADABLE_DIR = "unreadable_checkpoints"


class CheckpointUnreadableError(IncompatibleWorkdirError):
    """A checkpoint's files cannot be read back as they were written; `step` and `path` (the file,
    or the checkpoint folder when the file is unknown) name it."""

    def __init__(self, message: str, *, step: int, path: Path):
        super().__init__(message)
        self.step = step
        self.path = path


def sync_processes(name: str) -> None:
    """Wait until every process of a multi-process run reaches the barrier `name`; no-op with one
    process."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


# --------------------------------------------------------------------------------------------
# Digests and reading checks
# --------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_digest(step_dir: Path) -> None:
    """Write `step_dir/SHA256SUMS` (one `<sha256>  <relative path>` line per file), atomically."""
    if jax.process_index() != 0:
        return
    lines = [
        f"{_sha256(p)}  {p.relative_to(step_dir).as_posix()}"
        for p in sorted(step_dir.rglob("*"))
        if p.is_file() and not p.name.startswith(DIGEST_FILE)
    ]
    tmp = step_dir / f"{DIGEST_FILE}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(step_dir / DIGEST_FILE)


def _check_digest(step_dir: Path, step: int, what: str) -> None:
    """Raise `CheckpointUnreadableError` naming the first file whose bytes differ from
    `SHA256SUMS` (or that is missing); no-op for a checkpoint without the file."""
    digest_path = step_dir / DIGEST_FILE
    if not digest_path.is_file():
        return
    try:
        lines = digest_path.read_text().splitlines()
        entries = [line.split("  ", 1) for line in lines if line.strip()]
        if any(len(e) != 2 or len(e[0]) != 64 for e in entries):
            raise ValueError("not '<sha256>  <path>' lines")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CheckpointUnreadableError(
            f"{what} {step} is unreadable: its digest file {digest_path} is damaged ({err})",
            step=step,
            path=digest_path,
        ) from err
    for expected, name in entries:
        path = step_dir / name
        if not path.is_file():
            problem = "is missing"
        elif _sha256(path) != expected:
            problem = f"does not hold the bytes written (its SHA-256 differs from {DIGEST_FILE})"
        else:
            continue
        raise CheckpointUnreadableError(
            f"{what} {step} is unreadable: {path} {problem}", step=step, path=path
        )


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _leaf_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """{"0.adaptive_embedding.value": (shape, dtype)} of a state tree or of orbax tree metadata."""
    return {
        ".".join(_key_name(k) for k in path): (tuple(leaf.shape), str(leaf.dtype))
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def _fit_problems(saved: dict[str, tuple], wanted: dict[str, tuple]) -> list[str]:
    problems = [f"{k} missing from the checkpoint" for k in wanted if k not in saved]
    problems += [f"{k} in the checkpoint but not in the model" for k in saved if k not in wanted]
    problems += [
        f"{k}: checkpoint {saved[k][0]} {saved[k][1]} vs model {wanted[k][0]} {wanted[k][1]}"
        for k in wanted
        if k in saved and saved[k] != wanted[k]
    ]
    return problems


_CLOSED_LOOP_FILTER_INSTALLED = False


def _drop_closed_loop_stragglers() -> None:
    """Hide the `RuntimeError('Event loop is closed')` reports of a failed orbax read.

    When one tensorstore read of a restore fails, orbax closes its event loop while the other reads
    are still in flight; each of them, completing later on a tensorstore thread, calls
    `loop.call_soon_threadsafe` on the closed loop and Python prints that error through
    `sys.unraisablehook`, around our own clear message and at unpredictable times. Installed once,
    before the first read; every other unraisable error still reaches the previous hook.
    """
    global _CLOSED_LOOP_FILTER_INSTALLED
    if _CLOSED_LOOP_FILTER_INSTALLED:
        return
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
            tb = unraisable.exc_traceback
            while tb is not None:
                if tb.tb_frame.f_code.co_name == "call_soon_threadsafe":
                    return
                tb = tb.tb_next
        previous(unraisable)

    sys.unraisablehook = hook
    _CLOSED_LOOP_FILTER_INSTALLED = True


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _named_file(err: BaseException, default: Path) -> Path:
    """The file a tensorstore/orbax error names (`... local file "<path>" ...`), else `default`."""
    found = re.findall(r'local file "([^"]+)"', str(err))
    return Path(found[-1]) if found else default


class Checkpoints:
    """Resumable checkpoints plus the best one, over two orbax `CheckpointManager`s."""

    def __init__(self, workdir: str | Path, *, keep: int = 2):
        workdir = Path(workdir).absolute()
        self.workdir = workdir
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
        self._metadata_reader = ocp.StandardCheckpointHandler()

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def steps(self) -> list[int]:
        """Steps of the resumable checkpoints on disk, oldest first."""
        return sorted(self.latest.all_steps())

    def save(self, step: int, state: Any, *, loop: LoopState) -> None:
        """Save a resumable checkpoint (host state, and the loop state: its counters and the grain
        iterator state, as JSON) and its digest."""
        if loop.data_state is None:
            raise ValueError("LoopState.data_state is None: set the iterator state before saving")
        saved = self._save(
            self.latest,
            step,
            "checkpoint",
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=ocp.args.JsonSave({"iterator": loop.data_state.decode()}),
                counters=ocp.args.JsonSave(loop.counters()),
            ),
        )
        if not saved:
            raise RuntimeError(
                f"orbax skipped checkpoint {step} in {self.latest.directory} (a checkpoint at "
                f"step {self.latest.latest_step()} is newer); nothing was written"
            )
        _write_digest(Path(self.latest.directory) / str(step))

    def _save(self, manager: ocp.CheckpointManager, step: int, what: str, **save_args: Any) -> bool:
        """`manager.save(step, **save_args)` to completion; a failure raises `CheckpointSaveError`
        naming the file and the reason, after removing the partial temporary folder (the complete
        checkpoints stay as they were)."""
        _drop_closed_loop_stragglers()  # a failed write closes orbax's loop with reads in flight
        try:
            with quiet_orbax_thread_errors():
                saved = manager.save(step, **save_args)
                manager.wait_until_finished()
        except Exception as err:  # orbax/tensorstore report I/O failures as ValueError & co.
            raise save_failure(manager, step, what, err) from None
        return bool(saved)

    def _read(
        self, manager: ocp.CheckpointManager, step: int, items: dict[str, Any], what: str
    ) -> Any:
        """Digest, then structure against the abstract state, then orbax; raises
        `CheckpointUnreadableError` (digest or read failure) or `IncompatibleWorkdirError`
        (readable, but another model/optimiser's shapes)."""
        step_dir = Path(manager.directory) / str(step)
        _check_digest(step_dir, step, what)
        try:
            saved = _leaf_specs(self._metadata_reader.metadata(epath.Path(step_dir / "state")))
        except Exception as err:  # any failure to read the metadata means an unreadable file
            path = _named_file(err, step_dir / "state" / "_METADATA")
            raise CheckpointUnreadableError(
                f"{what} {step} is unreadable: reading {path} failed ({_first_line(err)})",
                step=step,
                path=path,
            ) from err
        problems = _fit_problems(saved, _leaf_specs(items["state"]))
        if problems:
            raise IncompatibleWorkdirError(
                f"{what} {step} in {manager.directory} does not fit this model/optimiser: "
                + "; ".join(problems[:8])
                + (f" and {len(problems) - 8} more" if len(problems) > 8 else "")
            )
        args = {"state": ocp.args.StandardRestore(items["state"])}
        args.update({name: ocp.args.JsonRestore() for name in items if name != "state"})
        _drop_closed_loop_stragglers()  # before the read: stragglers may come before its error
        try:
            return manager.restore(step, args=ocp.args.Composite(**args))
        except Exception as err:  # the structure fits, so a failure here is a failed read
            path = _named_file(err, step_dir)
            raise CheckpointUnreadableError(
                f"{what} {step} is unreadable: reading {path} failed ({_first_line(err)})",
                step=step,
                path=path,
            ) from err

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, LoopState]:
        """Restore (state, loop state) of `step` (default latest) onto `abstract_state`'s
        structure.

        Raises `CheckpointUnreadableError` when the checkpoint's bytes differ from its digest or
        cannot be read, `IncompatibleWorkdirError` when it holds other shapes than
        `abstract_state`.
        """
        step = self.latest.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.latest.directory}")
        items = {"state": abstract_state, "data": None, "counters": None}
        restored = self._read(self.latest, step, items, "checkpoint")
        loop = LoopState.from_checkpoint(
            dict(restored["counters"]), restored["data"]["iterator"].encode()
        )
        return restored["state"], loop

    def restore_newest_readable(
        self, abstract_state: Any, *, warn: Callable[[str], None]
    ) -> tuple[int, Any, LoopState]:
        """Restore the newest readable resumable checkpoint: (step, state, loop state).

        Newer unreadable checkpoints are moved to `<workdir>/unreadable_checkpoints/<step>` (so
        later saves of those steps go ahead; nothing is deleted) and `warn` gets one message each.
        When none is readable nothing is moved and `CheckpointUnreadableError` lists every one.
        """
        failures: list[CheckpointUnreadableError] = []
        for step in reversed(self.steps()):
            try:
                state, loop = self.restore(abstract_state, step)
            except CheckpointUnreadableError as err:
                failures.append(err)
                continue
            if failures:
                # Every process has read the checkpoints before process 0 moves any.
                moved = {err.step: self._aside_path(err.step) for err in failures}
                sync_processes("eala_jax: checkpoints read")
                if jax.process_index() == 0:
                    for source, target in moved.items():
                        shutil.move(str(Path(self.latest.directory) / str(source)), str(target))
                sync_processes("eala_jax: unreadable checkpoints moved")
                for err in failures:
                    warn(
                        f"{err}; resuming from checkpoint {step} instead (the unreadable one is "
                        f"kept as {moved[err.step]})"
                    )
                self.latest.reload()
            return step, state, loop
        raise CheckpointUnreadableError(
            f"no readable checkpoint in {self.latest.directory}: "
            + "; ".join(str(err) for err in failures)
            + ". Nothing was changed; to start this run afresh use a new workdir",
            step=failures[0].step,
            path=failures[0].path,
        )

    def _aside_path(self, step: int) -> Path:
        """A free `<workdir>/unreadable_checkpoints/<step>[-n]` (its folder created) for `step`."""
        target_dir = self.workdir / UNREADABLE_DIR
        target_dir.mkdir(exist_ok=True)
        target, n = target_dir / str(step), 1
        while target.exists():
            n += 1
            target = target_dir / f"{step}-{n}"
        return target

    def save_best(self, step: int, state: Any, *, val_mae: float) -> None:
        """Keep `state` if its validation MAE is the best so far.

        After a resume that fell back past an unreadable checkpoint, `best/` may already hold a
        checkpoint of this step or a later one (from the lost part of the run, the same steps
        replayed); orbax then keeps that one and writes nothing.
        """
        saved = self._save(
            self.best,
            step,
            "best checkpoint",
            args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
            metrics={"val_mae": val_mae},
        )
        if saved:
            _write_digest(Path(self.best.directory) / str(step))

    def best_step(self) -> int | None:
        return self.best.best_step()

    def restore_best(self, abstract_state: Any) -> Any:
        """The best checkpoint's state; raises as `restore` does."""
        step = self.best.best_step()
        if step is None:
            raise FileNotFoundError(f"no best checkpoint in {self.best.directory}")
        return self._read(self.best, step, {"state": abstract_state}, "best checkpoint")["state"]

    def close(self) -> None:
        self.latest.close()
        self.best.close()
        self._metadata_reader.close()
