"""The memory check before training (eala_jax.train.memory): sizes from the compiled steps, a run
that cannot fit refused with the sizes and the settings that shrink it, the loop reusing the
executables the check compiled, and the command line exiting cleanly where it used to abort."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from eala_jax.train import apply_overrides, memory, train_and_evaluate, validate_config
from eala_jax.train import loop as loop_module
from eala_jax.train import session as session_module
from eala_jax.train.checkpoint import CONFIG_FILE, check_workdir
from eala_jax.train.config import config_to_dict
from eala_jax.train.memory import (
    InsufficientMemoryError,
    StepMemory,
    available_memory,
    check_memory,
    compiled_memory,
    host_available_memory,
    state_bytes,
)
from tests.train.train_helpers import tiny_config

# The default device path: jit over a mesh of the 8 CPU devices, batch 8 (one row a device).
CONFIG = tiny_config(parallel="jit")
ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Built:
    run: loop_module._Run
    sizes: dict[str, StepMemory]
    log: str


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One run built (the check compiled both steps), and the steps' sizes (from jit's cache)."""
    run = loop_module._Run.build(CONFIG, tmp_path_factory.mktemp("built"))
    args = (run.dp, run.initial_state, run.splits.train[0], run.scaler, run.dropout_key)
    sizes = compiled_memory(*args, batch_rows=8, eval_rows=run.eval_batch_size)
    log = check_memory(CONFIG, *args, eval_rows=run.eval_batch_size)
    yield Built(run, sizes, log)
    run.close()


def check(built: Built, config=CONFIG) -> str:
    run = built.run
    args = (run.dp, run.initial_state, run.splits.train[0], run.scaler, run.dropout_key)
    return check_memory(config, *args, eval_rows=run.eval_batch_size)


def fake_host_memory(monkeypatch, free: int) -> None:
    monkeypatch.setattr(memory, "host_available_memory", lambda: (free, "fake limit"))


def test_sizes_are_per_device_and_the_state_is_donated(built):
    """XLA's analysis of the update step: the whole (model, optimiser) state is donated (its
    bytes, counted from the shapes, are exactly the aliased ones), and with one batch row per
    device the temporaries are those of one row: the sizes are per device."""
    update, evaluation = built.sizes["update"], built.sizes["evaluation"]
    model_bytes = state_bytes(built.run.initial_state)
    assert update.alias == model_bytes and update.output >= model_bytes
    assert update.argument >= model_bytes and evaluation.alias == 0
    assert update.peak == update.argument + update.output + update.temp - update.alias
    # The evaluation step reads the model, not the optimiser's moments (2 of the 3 copies).
    assert model_bytes / 3 <= evaluation.argument < model_bytes


def test_a_tiny_config_passes_and_logs_its_sizes(built):
    assert re.fullmatch(
        r"Memory: update step [\d.]+ MiB, evaluation step [\d.]+ MiB per device, model and "
        r"optimiser state [\d.]+ MiB; [\d.]+ GiB available for 8 CPU device\(s\) sharing this "
        r"host's memory \(.+\); checked in [\d.]+ s\.",
        built.log,
    ), built.log


def test_all_cpu_devices_of_the_host_are_added_up(built, monkeypatch):
    """CPU devices share the host's memory: the need is 8 devices' peaks plus the host's two
    copies of the state; one byte less is refused, the exact need passes."""
    update, evaluation = built.sizes["update"], built.sizes["evaluation"]
    need = 8 * max(update.peak, evaluation.peak) + 2 * state_bytes(built.run.initial_state)
    fake_host_memory(monkeypatch, need)
    assert check(built).startswith("Memory: ")
    fake_host_memory(monkeypatch, need - 1)
    with pytest.raises(InsufficientMemoryError, match="8 CPU device"):
        check(built)


def test_an_update_step_too_large_is_refused_naming_sizes_and_settings(built, monkeypatch):
    update = built.sizes["update"]
    free = 8 * update.peak  # without the host's copies of the state
    fake_host_memory(monkeypatch, free)
    with pytest.raises(InsufficientMemoryError) as info:
        check(built)
    message = str(info.value)
    mib = f"{update.peak / 2**20:.1f} MiB"
    assert message.startswith(
        f"the update step does not fit in memory: compiled for batches of 8 rows it needs {mib} "
        "per device (arguments "
    ), message
    assert f"but {free / 2**20:.1f} MiB is available (fake limit)" in message
    for setting in (
        "train.batch_size (now 8)",
        "train.microbatches (now 1;",
        "model.remat=true",
        "train.eval_batch_size (now 64)",
        "train.check_memory=false",
    ):
        assert setting in message, setting
    # Sharding the sensors over CPU devices, which share one memory, would save none.
    assert "mesh_shape" not in message
    remat = apply_overrides(CONFIG, ["model.remat=true"])
    with pytest.raises(InsufficientMemoryError) as info:
        check(built, remat)  # same sizes (the config only words the message)
    assert "model.remat" not in str(info.value)


def test_an_evaluation_step_too_large_is_refused(built, monkeypatch):
    update, evaluation = built.sizes["update"], built.sizes["evaluation"]
    assert evaluation.peak > update.peak  # 64 rows a batch against 8: the tiny run's case
    host_copies = 2 * state_bytes(built.run.initial_state)
    fake_host_memory(monkeypatch, 8 * update.peak + host_copies)
    with pytest.raises(
        InsufficientMemoryError,
        match=r"^the evaluation step does not fit in memory: compiled for batches of 64 rows",
    ):
        check(built)


def test_a_model_too_large_is_refused_before_anything_compiles(built, monkeypatch):
    def no_compile(*args):
        raise AssertionError("compiled a step although the model could not fit")

    monkeypatch.setattr(built.run.dp, "lower_update", no_compile)
    monkeypatch.setattr(built.run.dp, "lower_evaluate", no_compile)
    model_bytes = state_bytes(built.run.initial_state)
    fake_host_memory(monkeypatch, 2 * model_bytes - 1)
    with pytest.raises(InsufficientMemoryError) as info:
        check(built)
    message = str(info.value)
    assert message.startswith("the model does not fit in memory: its parameters and optimiser")
    assert f"take {model_bytes / 2**20:.1f} MiB, twice on the host" in message
    assert "Largest array: model." in message and "model.input_embedding_dim" in message


def test_the_loop_reuses_the_executables_the_check_compiled(built, caplog):
    """The check's abstract arguments carry the loop's shapes and shardings: the first real update
    and evaluation find their executables in jit's cache (the check costs no second compile)."""
    run = built.run
    state = run.dp.put_state(run.initial_state)
    rows = {k: np.stack([v] * 8) for k, v in run.splits.train[0].items()}
    eval_rows = {k: np.stack([v] * run.eval_batch_size) for k, v in run.splits.val[0].items()}
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        state, measurements = run.dp.update(
            state, run.dp.put_batch(rows), run.scaler, run.dropout_key
        )
        jax.block_until_ready(measurements)
        run.dp.evaluate(state, run.dp.put_batch(eval_rows), run.scaler)
    compiled = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert not [m for m in compiled if "update_step" in m or "eval_step" in m], compiled


def test_train_and_evaluate_refuses_before_writing_anything(built, monkeypatch, tmp_path):
    fake_host_memory(monkeypatch, 8 * built.sizes["update"].peak)
    workdir = tmp_path / "run"
    with pytest.raises(InsufficientMemoryError, match="the update step does not fit"):
        train_and_evaluate(CONFIG, workdir)
    assert not (workdir / "checkpoints").exists() and not (workdir / CONFIG_FILE).exists()


def test_check_memory_false_skips_the_check(monkeypatch, tmp_path):
    called = []
    monkeypatch.setattr(session_module, "check_memory", lambda *a, **k: called.append(a))
    off = apply_overrides(CONFIG, ["train.check_memory=false"])
    run = loop_module._Run.build(off, tmp_path)
    run.close()
    assert not called
    loop_module._Run.build(CONFIG, tmp_path).close()
    assert len(called) == 1


def test_check_memory_is_validated_and_may_change_on_resume(tmp_path):
    with pytest.raises(ValueError, match="train.check_memory: expected a boolean"):
        apply_overrides(CONFIG, ["train.check_memory=maybe"])
    # The train section checks its fields when built (and validate_config checks them again).
    with pytest.raises(ValueError, match="train.check_memory must be true or false, got 1"):
        dataclasses.replace(CONFIG.train, check_memory=1)
    mutated = dataclasses.replace(CONFIG, train=dataclasses.replace(CONFIG.train))
    mutated.train.check_memory = 1
    with pytest.raises(ValueError, match="train.check_memory must be true or false, got 1"):
        validate_config(mutated)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config_to_dict(CONFIG)))
    check_workdir(apply_overrides(CONFIG, ["train.check_memory=false"]), tmp_path)  # no error


class FakeDevice:
    platform, device_kind = "gpu", "Fake GPU"

    def __init__(self, stats):
        self.stats = stats

    def memory_stats(self):
        return self.stats


def test_accelerator_memory_is_the_smallest_free_of_the_devices():
    devices = [
        FakeDevice({"bytes_limit": 80 * 2**30, "bytes_in_use": 2**30}),
        FakeDevice({"bytes_limit": 80 * 2**30, "bytes_in_use": 3 * 2**30}),
    ]
    assert available_memory(devices)[0] == 77 * 2**30
    assert available_memory([FakeDevice(None)]) is None  # unknown: the check is skipped


def test_host_memory_is_lowered_to_a_cgroup_limit(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text("MemTotal: 100 kB\nMemAvailable:  8000 kB\n")
    assert host_available_memory(tmp_path) == (8000 * 1024, "MemAvailable in /proc/meminfo")
    cgroup = tmp_path / "sys/fs/cgroup"
    cgroup.mkdir(parents=True)
    (cgroup / "memory.max").write_text("max\n")  # no limit
    (cgroup / "memory.current").write_text("1000\n")
    assert host_available_memory(tmp_path)[0] == 8000 * 1024
    (cgroup / "memory.max").write_text(f"{4000 * 1024 + 1000}\n")
    free, source = host_available_memory(tmp_path)
    assert free == 4000 * 1024 and "memory.max" in source


def test_command_line_refuses_a_model_that_cannot_fit_without_aborting(tmp_path):
    """`--set model.input_embedding_dim=1000000` (square 1e6-wide attention projections, 89,000
    GiB of state) used to abort the process in `Check failed: buffer_.IsConcrete()` (exit -6)
    after ~25 s; now one `error:` line and exit 1, before the model is built."""
    workdir = tmp_path / "big"
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", EALA_TCMALLOC="0")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train"]
        + ["--config", "experiments/configs/synthetic_elinformer.py", "--workdir", str(workdir)]
        + ["--set", "model.input_embedding_dim=1000000", "--set", "progress_bar=false"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: the model does not fit in memory: "), proc.stderr
    assert re.search(
        r"take [\d.]+ GiB, twice on the host .* but [\d.]+ GiB is available", proc.stderr
    )
    assert "model.input_embedding_dim" in proc.stderr and "Traceback" not in proc.stderr
    assert not (workdir / "checkpoints").exists()
    assert time.perf_counter() - start < 120
