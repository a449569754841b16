"""eala_jax: Entropy-Aware Linear Attention (EALA) in JAX, and spatio-temporal forecasters built on
it.

The ops (`eala_jax.ops`, re-exported here) are pure JAX functions with no Flax import; models live
in `eala_jax.models`, the data path in `eala_jax.data`, training in `eala_jax.train`.
"""

from eala_jax.ops import *  # noqa: F403
from eala_jax.ops import __all__  # noqa: F401  (the package re-exports the ops)

__version__ = "0.1.0"
