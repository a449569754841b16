"""Test configuration: 8 fake CPU devices, set before JAX initialises its backends."""

import os
import tempfile

# The suite compiles hundreds of small programs and runs each a few times: compile time, most of
# it LLVM's optimisation of the CPU code, dominates. Tests compile without it (the same XLA
# programs, lowered to unoptimised machine code; 70 s -> 50 s for test_loop_node_sharded.py and
# ops/test_eala.py together). Set before JAX starts its backend; EALA_TEST_XLA_OPT=1 keeps the
# default optimisation (what the library runs with).
if os.environ.get("EALA_TEST_XLA_OPT", "0") != "1":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import hypothesis  # noqa: F401
import jax

jax.config.update("jax_num_cpu_devices", 8)

# hypothesis is imported here, at start-up, not by its plugin's terminal summary after the tests:
# there, after a test's orbax / tensorstore writer threads had failed, CPython 3.11.7 raised
# "SystemError: AST constructor recursion depth mismatch" while pytest rewrote hypothesis's
# modules (2 of 9 runs of tests/train/test_loop_failures.py -k failed_save), ending the session
# with a traceback after every test had passed.

# One on-disk compilation cache for the whole session, shared by the pytest-xdist workers and the
# subprocesses the tests start (they inherit the environment): the suite trains many tiny models
# of the same shapes, each through fresh jitted closures, and compiles identical programs again
# and again. XLA keys an entry by the program, its compile options and the backend, so a hit
# returns the executable the miss would have built. EALA_TEST_COMPILATION_CACHE=0 switches it off.
if os.environ.get("EALA_TEST_COMPILATION_CACHE", "1") != "0":
    _cache = os.environ.setdefault(
        "JAX_COMPILATION_CACHE_DIR",
        os.path.join(tempfile.gettempdir(), f"eala_jax_test_cache_{os.getuid()}"),
    )
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    jax.config.update("jax_compilation_cache_dir", _cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# pytest-xdist (`--dist loadfile`) hands whole files to the workers in collection order, so a
# long file collected last runs alone at the end while the other worker idles. The files whose
# module fixtures train several runs (40-60 s each on 2 cores) are collected first; the order of
# every other test is kept. Scheduling only: the same tests run.
_FIRST = (
    "tests/train/test_loop_node_sharded.py",
    "tests/train/test_loop_node_sharded_multiprocess.py",
    "tests/experiments/test_convert.py",
    "tests/train/test_loop_multiprocess.py",
    "tests/train/test_real_data.py",
    "tests/train/test_recipes_end_to_end.py",
    "tests/train/test_loop.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::", 1)[0]
        return _FIRST.index(path) if path in _FIRST else len(_FIRST)

    items.sort(key=rank)  # stable: the order within each rank is kept
