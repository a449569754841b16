"""Test configuration: 8 fake CPU devices, set before JAX initialises its backends."""

import jax

jax.config.update("jax_num_cpu_devices", 8)
