"""The hand-written VJP of EALA's statistics route (`eala_jax.ops.fused`), in float64.

Three independent checks, each compiled once for all its variants:
- against JAX's autodiff of the same forward code (`autodiff=True`), for every per-row option
  (θ* or a fixed θ, `theta_gradient`, `min_entropy`, the cap, a given estimator deficit), with
  cotangents on every output, masked keys, a one-key and a no-key batch element, the batch in
  blocks;
- `jax.test_util.check_grads` (first order, reverse mode) of `eala_attention` with a key mask
  (test_gradients.py runs it for every estimator without one), the cap on and off;
- directional derivatives against central differences of the NumPy float64 reference
  (`tests.ops.reference.eala`, written from docs/method.md), same variants.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from eala_jax import eala_attention
from eala_jax.ops import fused
from eala_jax.ops.theta import row_map
from tests.ops import reference as ref
from tests.ops.helpers import f64, projection, qkv

SHAPE = dict(b=3, t=4, s=6, h=2, d=3, dv=2)
PROJ = projection(130, r=8, d=3).astype(np.float64)
ESTIMATORS = {
    "gaussian": {},
    "cumulant3": {},
    "segments": dict(num_segments=2),
    "random_features": dict(projection=PROJ),
    "exact": {},
}


def _mask():
    mask = np.ones((3, 6), bool)
    mask[0, [1, 4]] = False  # two masked keys
    mask[1, :] = False
    mask[1, 2] = True  # one valid key
    return mask


ROW_OPTIONS = [
    dict(theta="optimal", theta_gradient=True, min_entropy=0.0),
    dict(theta="optimal", theta_gradient=False, min_entropy=0.0),
    dict(theta="optimal", theta_gradient=True, min_entropy=0.8),
    dict(theta=0.7, theta_gradient=True, min_entropy=0.0),
]


def test_vjp_matches_autodiff_of_the_same_forward(monkeypatch):
    # A batch of 8 in blocks of 2: the blocked (`lax.map`) path of the custom VJP.
    monkeypatch.setattr(fused, "_BLOCK_ELEMENTS", 1)
    q, k, v = f64(*qkv(131, q_scale=2.0, **dict(SHAPE, b=8)))
    weight = np.ones((8, SHAPE["s"]))
    weight[:2] = _mask()[:2]
    weight[5] = 0.0  # no valid key
    g = np.random.default_rng(132)
    deficit = g.uniform(0.1, 0.6, q.shape[:-1])
    cotangents = [g.standard_normal(q.shape[:-1] + v.shape[-1:])] + [
        g.standard_normal(q.shape[:-1]) for _ in range(4)
    ]
    # (row option, cap, estimator deficit given): each option, each switch on and off somewhere.
    variants = [
        (0, False, False),
        (0, True, True),
        (1, True, False),
        (2, True, True),
        (3, False, True),
    ]

    def loss(q, k, v, deficit, *, option, nonnegative, autodiff):
        rows = fused.statistics_rows(
            q,
            k,
            v,
            weight,
            deficit,
            scale=0.6,
            row_map=row_map(**ROW_OPTIONS[option], need_entropy=True),
            nonnegative=nonnegative,
            autodiff=autodiff,
        )
        return sum(jnp.sum(x * c) for x, c in zip(rows, cotangents, strict=True))

    with jax.enable_x64(True):
        grads = jax.jit(
            lambda *args: {
                (variant, autodiff): jax.grad(
                    functools.partial(
                        loss, option=variant[0], nonnegative=variant[1], autodiff=autodiff
                    ),
                    argnums=(0, 1, 2) + ((3,) if variant[2] else ()),
                )(*args[:3], args[3] if variant[2] else None)
                for variant in variants
                for autodiff in (False, True)
            }
        )(q, k, v, deficit)
    for variant in variants:
        hand, auto = grads[variant, False], grads[variant, True]
        assert all(np.all(np.isfinite(x)) for x in hand), variant
        assert np.abs(hand[0]).max() > 0.1 and np.abs(hand[1]).max() > 0.1  # not vacuous
        for name, x, y in zip("qkvd", hand, auto, strict=False):
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12, err_msg=f"{variant} d{name}")


# (estimator, cap): the Gaussian route (hand-written throughout) with and without the cap, and an
# estimator whose deficit enters the VJP as an input (every estimator is checked unmasked in
# test_gradients.py).
VARIANTS = [("gaussian", False), ("gaussian", True), ("random_features", True)]


@pytest.fixture(scope="module")
def inputs():
    return f64(*qkv(133, q_scale=1.5, **SHAPE))


@pytest.fixture(scope="module")
def joint():
    """Every variant's output from one jitted function (one compilation, reused)."""
    variants = {
        (estimator, nonnegative): functools.partial(
            eala_attention,
            key_mask=_mask(),
            estimator=estimator,
            nonnegative=nonnegative,
            implementation="statistics",
            **ESTIMATORS[estimator],
        )
        for estimator, nonnegative in VARIANTS
    }
    return jax.jit(lambda q, k, v: {name: fn(q, k, v) for name, fn in variants.items()})


def test_check_grads_masked(inputs, joint):
    with jax.enable_x64(True):
        check_grads(joint, inputs, order=1, modes=("rev",), eps=1e-6, atol=1e-6, rtol=1e-6)


def test_gradients_match_numpy_float64_reference(inputs, joint):
    q, k, v = inputs
    g = np.random.default_rng(134)
    c = g.standard_normal(q.shape[:-1] + v.shape[-1:])
    capped, free = (
        ref.eala(q, k, v, _mask(), nonnegative=nonnegative)["theta"]
        for nonnegative in (True, False)
    )
    assert np.any(capped < 0.99 * free), "the cap must bind somewhere"
    with jax.enable_x64(True):
        outputs, vjp = jax.vjp(joint, q, k, v)
        grads = {name: vjp({other: c * (other == name) for other in outputs}) for name in outputs}
    directions = [[g.standard_normal(x.shape) for x in (q, k, v)] for _ in range(2)]
    eps = 1e-6
    for (estimator, nonnegative), got in grads.items():

        def reference_loss(q, k, v, estimator=estimator, nonnegative=nonnegative):
            out = ref.eala(
                q,
                k,
                v,
                _mask(),
                scale=1 / math.sqrt(3),
                estimator=estimator,
                nonnegative=nonnegative,
                **{"num_segments": 1, **ESTIMATORS[estimator]},
            )["out"]
            return float(np.sum(out * c))

        for direction in directions:
            shifted = [
                reference_loss(
                    *(x + sign * eps * t for x, t in zip((q, k, v), direction, strict=True))
                )
                for sign in (1, -1)
            ]
            want = (shifted[0] - shifted[1]) / (2 * eps)
            have = sum(np.sum(np.asarray(x) * t) for x, t in zip(got, direction, strict=True))
            np.testing.assert_allclose(have, want, rtol=1e-6, atol=1e-7, err_msg=estimator)
