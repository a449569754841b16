"""jax.test_util.check_grads (first order, forward and reverse) on small float64 inputs.

Every estimator has kinks (the clip of Ĥ to [0, log M], θ* switching regime at σ² = 2 log M for
`gaussian`, the frozen-phase threshold of `segments`, the nonnegative cap and the max over keys
inside it). Finite differences are only valid away from them, so each test first checks, with the
NumPy reference, that the chosen inputs keep a margin from every kink.
"""

import functools
import math

import jax
import numpy as np
import pytest
from jax.test_util import check_grads

from eala_jax import eala_attention, estimate_entropy, softmax_entropy

from . import reference as ref
from .helpers import projection, qkv

SHAPE = dict(b=1, t=3, s=6, h=2, d=3, dv=2)
PROJ = projection(110, r=8, d=3).astype(np.float64)
TOL = dict(order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-6, rtol=1e-6)
REV = dict(
    TOL, modes=("rev",)
)  # forward mode works too (checked on one case); rev only to save time


def _inputs(seed, q_scale):
    return tuple(np.asarray(x, np.float64) for x in qkv(seed, q_scale=q_scale, **SHAPE))


def _margins(q, k, estimator, options):
    """Distances of every row from the kinks of its estimate (NumPy reference)."""
    m = k.shape[1]
    log_m = math.log(m)
    r = ref.eala(q, k, np.zeros(k.shape[:-1] + (1,)), estimator=estimator, **options)
    raw_gap = []
    for b in range(q.shape[0]):
        for h in range(q.shape[2]):
            s = ref.scores(q[b, :, h], k[b, :, h], 1 / math.sqrt(q.shape[-1]))
            var = s.var(1)
            raw = {
                "gaussian": log_m - var / 2,
                "cumulant3": log_m - var / 2 - ref.third_cumulant(s) / 3,
            }.get(estimator)
            if raw is not None:  # distance of the unclipped estimate from 0 and log M
                raw_gap.append(np.minimum(np.abs(raw), np.abs(raw - log_m)))
            if (
                estimator == "segments"
            ):  # distance of every segment variance from its frozen threshold
                n = options["num_segments"]
                length = m // n
                for c in range(n):
                    sc = s[:, c * length : (c + 1) * length]
                    raw_gap.append(np.abs(sc.var(1) - 2 * math.log(length)))
    return r, (np.min(raw_gap) if raw_gap else np.inf)


CASES = [
    ("gaussian", {}, 1.0, False),
    ("gaussian", {}, 3.0, False),  # θ* = √(2 log M)/σ regime
    ("cumulant3", {}, 1.0, False),
    ("segments", dict(num_segments=2), 2.0, False),
    ("random_features", dict(projection=PROJ), 1.0, False),
    ("gaussian", {}, 2.0, True),  # nonnegative cap active
]


@pytest.mark.parametrize(
    "estimator,options,q_scale,nonnegative",
    CASES,
    ids=[f"{c[0]}-{c[2]}-{'nonneg' if c[3] else 'signed'}" for c in CASES],
)
def test_eala_gradients(estimator, options, q_scale, nonnegative):
    q, k, v = _inputs(111, q_scale)
    r, margin = _margins(q, k, estimator, options)
    assert margin > 1e-3, margin
    assert r["theta"].min() > 1e-3  # θ* > 0: the output does depend on θ
    if nonnegative:
        cap = np.stack(
            [ref.nonnegative_cap(q[0, :, h], k[0, :, h], 1 / math.sqrt(3)) for h in range(2)], -1
        )
        uncapped = ref.eala(q, k, v, estimator=estimator, **options)["theta"][0]
        assert np.any(uncapped > cap * 1.01), "the cap must bind somewhere"
        assert np.min(np.abs(uncapped - cap) / cap) > 1e-3
    f = functools.partial(eala_attention, estimator=estimator, nonnegative=nonnegative, **options)
    with jax.enable_x64(True):
        check_grads(f, (q, k, v), **(TOL if (estimator, q_scale) == ("gaussian", 3.0) else REV))


def test_causal_eala_gradients():
    q, k, v = _inputs(112, 1.5)
    k = k[:, :3]
    v = v[:, :3]
    with jax.enable_x64(True):
        # chunk 2 does not divide T = 3: two chunks, the second padded.
        f = functools.partial(eala_attention, causal=True, estimator="gaussian", chunk_size=2)
        check_grads(f, (q, k, v), **REV)


def test_entropy_gradients():
    q, k, _ = _inputs(113, 1.0)
    mask = np.array([[True, True, False, True, True, True]])
    _, margin = _margins(q, k, "cumulant3", {})
    assert margin > 1e-3
    with jax.enable_x64(True):
        check_grads(
            jax.jit(lambda q, k: softmax_entropy(q, k, key_mask=mask, chunk_size=4)), (q, k), **REV
        )
        # (segments and random_features are differentiated through eala_attention above)
        for method, options in (("gaussian", {}), ("cumulant3", {})):
            check_grads(
                jax.jit(lambda q, k: estimate_entropy(q, k, method=method, **options)),
                (q, k),
                **REV,
            )
