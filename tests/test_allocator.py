"""The CLI's allocator switch: tcmalloc where installed, the system malloc when asked or absent."""

import os
import subprocess
import sys

import pytest

from eala_jax import allocator


def _probe(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", allocator.ENV_SWITCH)}
    return subprocess.run(
        [sys.executable, "-m", "eala_jax.allocator"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_switched_off_keeps_the_system_allocator_and_says_so():
    result = _probe(EALA_TCMALLOC="0")
    assert result.stdout.strip() == "system malloc"


def test_a_named_library_that_does_not_exist_is_not_used(tmp_path):
    result = _probe(EALA_TCMALLOC=str(tmp_path / "missing.so"))
    assert result.stdout.strip() == "system malloc"
    assert "tcmalloc not found" in result.stderr


def test_installed_tcmalloc_is_preloaded_once():
    if allocator.find_tcmalloc() is None:
        pytest.skip("tcmalloc is not installed here (apt-get install libgoogle-perftools4)")
    result = _probe()
    assert result.stdout.strip() == "tcmalloc"
    assert result.stderr.count("allocator: tcmalloc") == 1
