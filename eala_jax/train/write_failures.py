"""Writes that fail: a workdir that cannot be created or written (checked before any work) and a
checkpoint save that fails (disk full, a file-size limit, permissions), each as one error naming the
path and the reason instead of orbax's and tensorstore's tracebacks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import orbax.checkpoint as ocp

__all__ = [
    "silence_orbax_writers",
    "TMP_SUFFIX",
    "CheckpointSaveError",
    "WorkdirNotWritableError",
    "ensure_writable_workdir",
    "quiet_orbax_thread_errors",
    "save_failure",
    "saved_steps",
]


class WorkdirNotWritableError(ValueError):
    """The workdir cannot be created, or no file can be written in it (raised before any work)."""


class CheckpointSaveError(OSError):
    """Writing a checkpoint failed; `step` and `path` (the file that failed, or the checkpoint's
    folder when unknown) name it. The checkpoints saved before it are intact."""

    def __init__(self, message: str, *, step: int, path: Path):
        super().__init__(message)
        self.step = step
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


def ensure_writable_workdir(workdir: str | Path) -> Path:
    """Create `workdir` (and its parents) if needed and check a file can be written in it.

    Raises `WorkdirNotWritableError` saying why not (a parent that is a file, no permission, a
    read-only file system, ...). Cheap: one empty file created and removed.
    """
    workdir = Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WorkdirNotWritableError(
            f"workdir {workdir} is a file, not a folder; name a folder (it is created if absent)"
        ) from None
    except OSError as err:
        blocker = next((p for p in workdir.parents if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else _os_reason(err)
        raise WorkdirNotWritableError(f"workdir {workdir} cannot be created: {why}") from None
    try:  # a unique name: the processes of a multi-host run may share the workdir
        handle, probe = tempfile.mkstemp(prefix=".eala_write_test.", dir=workdir)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise WorkdirNotWritableError(
            f"workdir {workdir} is not writable: creating a file in it failed ({_os_reason(err)})"
        ) from None
    return workdir


def silence_orbax_writers() -> None:
    """For a process that has reported a failed or interrupted save and is about to exit: orbax's
    writer threads and tasks may still log that save's errors as they end or are collected; their
    loggers ("absl", "asyncio") are switched off for the rest of the process."""
    for name in ("absl", "asyncio"):
        logging.getLogger(name).disabled = True


def _os_reason(err: OSError) -> str:
    """`err`'s reason without the errno and path clutter: 'Permission denied', ..."""
    return err.strerror or str(err)


def saved_steps(workdir: str | Path) -> list[int]:
    """Steps of the complete resumable checkpoints in `workdir/checkpoints`, oldest first, read
    from the folder names alone (orbax writes `<step>.orbax-checkpoint-tmp` and renames it to
    `<step>` when complete); no orbax call, so safe after an interrupt."""
    folder = Path(workdir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir())


#: Suffix of the folder orbax writes a checkpoint into before renaming it to `<step>`.
TMP_SUFFIX = ".orbax-checkpoint-tmp"


class _DropThreadErrors(logging.Filter):
    """Drops orbax's ERROR records of a failed background write ("... raised an exception: ..."
    with its traceback): the same failure reaches the caller as one `CheckpointSaveError`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and "raised an exception" in str(record.msg))


@contextlib.contextmanager
def quiet_orbax_thread_errors() -> Iterator[None]:
    """Within it, orbax's logged errors of failed background writes are dropped (the caller raises
    the failure itself)."""
    logger, quiet = logging.getLogger("absl"), _DropThreadErrors()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _write_failure(err: BaseException, *, default: Path) -> tuple[Path, str]:
    """(the file, the reason) of a failed write: a tensorstore message (`Failed writing: "<path>":
    ... <reason> [os_error_code=...]`), an `OSError`, or else `default` and the first line."""
    text = str(err)
    first = (text.strip().splitlines() or [""])[0]
    if isinstance(err, OSError):  # a file Python itself wrote; named where the error names it
        return (Path(err.filename) if err.filename else default), _os_reason(err)
    files = re.findall(r'(?:Failed writing|local file):? "([^"]+)"', text)
    reason = re.search(r":\s*([^:\[]+?)\s*\[os_error_code", text)
    return (
        Path(files[-1]) if files else default,
        reason.group(1) if reason else f"{type(err).__name__}: {first}",
    )


def _remove_for_good(folder: Path, *, settle_s: float = 0.5) -> None:
    """Removes `folder`, and again if a straggling writer recreates it within `settle_s` seconds
    (the error path only)."""
    deadline = time.monotonic() + settle_s
    shutil.rmtree(folder, ignore_errors=True)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)


def save_failure(
    manager: ocp.CheckpointManager, step: int, what: str, err: Exception
) -> CheckpointSaveError:
    """The error for `manager`'s failed save of `step` (`what`: "checkpoint", "best checkpoint"),
    naming the file and the reason, once the other writes in flight are done and the partial
    folder is removed (process 0); the complete checkpoints are not touched."""
    folder = Path(manager.directory)
    partial = folder / f"{step}{TMP_SUFFIX}"
    path, reason = _write_failure(err, default=partial)
    with contextlib.suppress(Exception), quiet_orbax_thread_errors():
        manager.wait_until_finished()  # the writes of the other items still in flight
    if jax.process_index() == 0:
        # Incomplete; frees the space it took. After a failure another item's writer can still
        # recreate it for a moment (seen once in the suite): removed again if it does.
        _remove_for_good(partial)
    with contextlib.suppress(Exception):
        manager.reload()
    kept = [int(p.name) for p in folder.glob("*") if p.name.isdigit() and int(p.name) != step]
    if kept:
        after = (
            f"the {what} of step {max(kept)} in {folder} is intact; fix the cause (e.g. free "
            "disk space) and rerun the same command to resume from the newest checkpoint"
        )
    else:
        after = (
            f"no earlier {what} is in {folder}; fix the cause (e.g. free disk space) and rerun "
            "the same command"
        )
    return CheckpointSaveError(
        f"saving {what} {step} failed: writing {path} failed ({reason}); {after}",
        step=step,
        path=path,
    )
