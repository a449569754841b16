"""The machine a benchmark ran on, recorded beside every table."""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    """The host CPU's model name (from /proc/cpuinfo where there is one). This module imports no
    JAX at its top, so the PyTorch reference (`benchmarks.torch_reference`, run by a Python with
    torch and without JAX) loads it by its file path."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return names[0] if names else cpu
    except OSError:
        return cpu


def machine_info() -> dict[str, str | int]:
    """CPU/GPU model, core count and library versions."""
    import jax

    device = jax.devices()[0]
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count() or 0,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": getattr(device, "device_kind", str(device)),
        "device_count": jax.device_count(),
    }


def describe(info: dict[str, str | int]) -> str:
    return (
        f"{info['device']} ({info['backend']}, {info['device_count']} device(s)); host "
        f"{info['cpu']}, {info['cores']} cores; jax {info['jax']}"
    )
