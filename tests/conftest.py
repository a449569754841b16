"""Test configuration: 8 fake CPU devices, set before JAX initialises its backends."""

import hypothesis  # noqa: F401
import jax

jax.config.update("jax_num_cpu_devices", 8)

# hypothesis is imported here, at start-up, not by its plugin's terminal summary after the tests:
# there, after a test's orbax / tensorstore writer threads had failed, CPython 3.11.7 raised
# "SystemError: AST constructor recursion depth mismatch" while pytest rewrote hypothesis's
# modules (2 of 9 runs of tests/train/test_loop_failures.py -k failed_save), ending the session
# with a traceback after every test had passed.
