"""jax.test_util.check_grads (first order, forward and reverse) on small float64 inputs.

Every estimator has kinks (the clip of Ĥ to [0, log M], θ* switching regime at σ² = 2 log M for
`gaussian`, the frozen-phase threshold of `segments`, the nonnegative cap and the max over keys
inside it). Finite differences are only valid away from them, so each test first checks, with the
NumPy reference, that the chosen inputs keep a margin from every kink.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from eala_jax import eala_attention, estimate_entropy, softmax_entropy
from tests.ops import reference as ref
from tests.ops.helpers import projection, qkv

SHAPE = dict(b=1, t=3, s=6, h=2, d=3, dv=2)
PROJ = projection(110, r=8, d=3).astype(np.float64)
TOL = dict(order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-6, rtol=1e-6)
# Reverse mode only: EALA's statistics route has a hand-written VJP (ops/fused.py), which JAX
# cannot run in forward mode.
REV = dict(TOL, modes=("rev",))


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
        check_grads(f, (q, k, v), **REV)


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
                jax.jit(lambda q, k: estimate_entropy(q, k, estimator=method, **options)),
                (q, k),
                **REV,
            )


# ----------------------------------------------------------------------------------------------
# Degenerate rows (docs/method.md step 9): finite gradients, equal to their closed forms.
#
# For a row i whose visible keys V (M of them) make it degenerate, with loss Σ_i c_i·o_i:
#   M = 0:           o_i = 0: no gradient at all;
#   M = 1:           o_i = v_j: dv_j = c_i, nothing else;
#   q_i = 0, M ≥ 2:  o_i = v̄ + θ scale q_iᵀC/M with θ → 1 as σ → 0 (second-order entropy match),
#                    so dq_i = scale C c_i / M and dv_j = c_i / M (C = Σ_V (k_j − k̄)(v_j − v̄)ᵀ);
#   equal keys in V: σ = 0, θ → 1, C = 0: dk_j = scale q_i (c_i·(v_j − v̄)) / M, dv_j = c_i / M.
# The non-negative cap never binds near these rows (its bound 1/(scale‖q‖ max‖k_j − k̄‖) → ∞).
# For `random_features` θ = 1 at σ = 0 is the convention, not a limit (its estimate need not tend
# to log M); the closed forms hold for it by that convention. Rows with huge queries are not
# degenerate: their gradient is checked against central finite differences.

DEG_SHAPE = dict(t=3, s=6, h=2, d=3, dv=2)
DEG_PROJ = projection(120, r=8, d=3).astype(np.float64)
DEG_ESTIMATORS = {
    "gaussian": {},
    "cumulant3": {},
    "segments": dict(num_segments=2),
    "random_features": dict(projection=DEG_PROJ),
    "clusters": {},
    "exact": {},
}


def _degenerate_noncausal():
    """Batch of 5: no valid key, one valid key, zero queries, equal valid keys, huge queries."""
    q, k, v = (np.asarray(x, np.float64) for x in qkv(121, b=5, **DEG_SHAPE))
    mask = np.ones((5, 6), bool)
    mask[0] = False
    mask[1] = False
    mask[1, 4] = True
    mask[2, [1, 3]] = False
    q[2] = 0.0
    mask[3, [0, 5]] = False
    k[3] = k[3, 2]  # every key equal (the masked ones too)
    q[4] *= 1e4
    return q, k, v, mask, [0, 1, 2, 3], [4]


def _degenerate_causal():
    """T = S = 6. Key 0 masked in every row: row 0 sees no key, row 1 one key. Then: only key 1
    valid; zero queries; equal keys; huge queries; ordinary queries and keys."""
    q, k, v = (np.asarray(x, np.float64) for x in qkv(122, b=5, **dict(DEG_SHAPE, t=6)))
    mask = np.ones((5, 6), bool)
    mask[:, 0] = False
    mask[0, 2:] = False
    q[1] = 0.0
    k[2] = k[2, 3]
    q[3] *= 1e4
    return q, k, v, mask, [0, 1, 2], [3, 4]


def _closed_form_gradients(q, k, v, mask, c, *, causal, scale):
    """dq, dk, dv of Σ c·o for rows of the kinds above (c must be 0 on every other row)."""
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for b in range(q.shape[0]):
        for h in range(q.shape[2]):
            for i in range(q.shape[1]):
                ci = c[b, i, h]
                if not ci.any():
                    continue
                visible = mask[b] & (np.arange(k.shape[1]) <= i if causal else True)
                idx = np.flatnonzero(visible)
                m = idx.size
                if m == 0:
                    continue
                if m == 1:
                    dv[b, idx[0], h] += ci
                    continue
                kv, vv = k[b, idx, h], v[b, idx, h]
                dv[b, idx, h] += ci / m
                if not q[b, i, h].any():
                    comoment = (kv - kv.mean(0)).T @ (vv - vv.mean(0))
                    dq[b, i, h] += scale * comoment @ ci / m
                elif np.ptp(kv, axis=0).max() == 0:
                    dk[b, idx, h] += scale * np.outer((vv - vv.mean(0)) @ ci, q[b, i, h]) / m
                else:
                    raise AssertionError(f"row {(b, i, h)} is not degenerate")
    return dq, dk, dv


def _check_degenerate(variants, inputs, *, causal):
    """Checks every `variants[name](q, k, v, mask)`; all are compiled as one function."""
    q, k, v, mask, closed, finite_difference = inputs
    g = np.random.default_rng(123)
    c = g.standard_normal(q.shape[:-1] + v.shape[-1:])
    c_closed = np.where(np.isin(np.arange(q.shape[0]), closed)[:, None, None, None], c, 0.0)
    want = _closed_form_gradients(q, k, v, mask, c_closed, causal=causal, scale=1 / math.sqrt(3))
    assert np.abs(want[1]).max() > 0.1 and np.abs(want[0]).max() > 0.1  # not vacuous
    only = np.isin(np.arange(q.shape[0]), finite_difference)[:, None, None, None]
    tangents = []
    for _ in range(2):  # random directions that move only the finite-difference elements
        tangent = [g.standard_normal(x.shape) * only for x in (q, k, v)]
        tangent[0] *= np.maximum(1.0, np.abs(q))  # relative steps for the huge queries
        tangents.append(tangent)
    eps = 1e-6
    with jax.enable_x64(True):
        # One compiled function gives every variant's loss and gradients.
        value_and_grad = jax.jit(
            lambda q, k, v, c: {
                name: jax.value_and_grad(
                    lambda q, k, v: jnp.sum(fn(q, k, v, mask) * c), argnums=(0, 1, 2)
                )(q, k, v)
                for name, fn in variants.items()
            }
        )
        full = value_and_grad(q, k, v, c)
        at_closed = value_and_grad(q, k, v, c_closed)
        shifted = [
            [
                value_and_grad(
                    *(x + sign * eps * t for x, t in zip((q, k, v), tangent, strict=True)), c
                )
                for sign in (1, -1)
            ]
            for tangent in tangents
        ]
    for name in variants:
        got = [np.asarray(x) for x in full[name][1]]
        for arg, x in zip("qkv", got, strict=True):
            assert np.all(np.isfinite(x)), f"{name}: d{arg} not finite"
        # Closed forms on the degenerate batch elements.
        for arg, x, w in zip("qkv", at_closed[name][1], want, strict=True):
            np.testing.assert_allclose(x, w, rtol=1e-9, atol=1e-12, err_msg=f"{name}: d{arg}")
        # Central differences on the others.
        for tangent, (plus, minus) in zip(tangents, shifted, strict=True):
            directional = sum(np.sum(x * t) for x, t in zip(got, tangent, strict=True))
            np.testing.assert_allclose(
                (float(plus[name][0]) - float(minus[name][0])) / (2 * eps),
                directional,
                rtol=1e-5,
                atol=1e-8,
                err_msg=name,
            )


@pytest.mark.parametrize("estimator", list(DEG_ESTIMATORS))
def test_degenerate_rows_have_finite_closed_form_gradients(estimator):
    """Both routes ("statistics", "scores"), non-negative cap off and on."""
    variants = {
        f"{implementation}-{'nonneg' if nonnegative else 'signed'}": functools.partial(
            _masked_eala,
            estimator=estimator,
            nonnegative=nonnegative,
            implementation=implementation,
            **DEG_ESTIMATORS[estimator],
        )
        for implementation in ("statistics", "scores")
        for nonnegative in (False, True)
    }
    _check_degenerate(variants, _degenerate_noncausal(), causal=False)


def test_causal_degenerate_rows_have_finite_closed_form_gradients():
    variants = {
        f"causal-{'nonneg' if nonnegative else 'signed'}": functools.partial(
            _masked_eala, causal=True, nonnegative=nonnegative, chunk_size=4
        )
        for nonnegative in (False, True)
    }
    _check_degenerate(variants, _degenerate_causal(), causal=True)


def _masked_eala(q, k, v, mask, **options):
    return eala_attention(q, k, v, key_mask=mask, **options)
