"""Linear cost, checked by shape rather than by timing: no intermediate of EALA (its jaxpr, every
sub-jaxpr of scan / pjit / remat / custom rules, and XLA's optimised HLO) has both a query-length
and a key-length axis; causal forms hold nothing T-by-T beyond chunk × chunk. Forward and gradient.
Softmax attention is the positive control: the same check must find its T×S scores.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eala_jax import get_attention
from tests.ops.helpers import cross_shapes, hlo_shapes, jaxpr_shapes, projection

B, T, S, H, D, DV = 2, 96, 160, 3, 8, 6  # every size distinct, so axes are identifiable
N = 160  # causal: T = S = N
PROJ = projection(130, r=16, d=D)
K = 5  # eala_local's local keys per query
LOCAL = np.random.default_rng(132).integers(-1, S, size=(T, K)).astype(np.int32)


def _inputs(t, s):
    g = np.random.default_rng(131)
    q = g.standard_normal((B, t, H, D)).astype(np.float32)
    k = g.standard_normal((B, s, H, D)).astype(np.float32)
    v = g.standard_normal((B, s, H, DV)).astype(np.float32)
    mask = g.random((B, s)) < 0.8
    return q, k, v, mask


def _all_shapes(fn, *args, hlo=True):
    """Shapes in the jaxpr and (if `hlo`) in XLA's optimised HLO of `fn`."""
    jaxpr = jax.make_jaxpr(fn)(*args)
    text = jax.jit(fn).lower(*args).compile().as_text() if hlo else ""
    return jaxpr_shapes(jaxpr.jaxpr), hlo_shapes(text)


def _forward_and_grad(fn):
    """One function of `(q, k, v, mask)` whose program holds `fn`'s forward pass and its gradient
    with respect to q, k, v (one trace, one compilation)."""
    loss = lambda q, k, v, m: jnp.sum(fn(q, k, v, m))
    return jax.value_and_grad(loss, argnums=(0, 1, 2))


@jax.custom_vjp
def _quadratic_in_backward_only(q, k):
    """Identity on q, whose gradient forms the T×S scores: the control for the backward pass."""
    return q


def _quadratic_fwd(q, k):
    return q, (q, k)


def _quadratic_bwd(residuals, g):
    q, k = residuals
    scores = jnp.einsum("bthd,bshd->bhts", q, k)
    return g, jnp.einsum("bhts,bthd->bshd", scores, g)


_quadratic_in_backward_only.defvjp(_quadratic_fwd, _quadratic_bwd)


NONCAUSAL = {
    "eala-default": dict(),
    "eala-gaussian-nonneg": dict(estimator="gaussian", nonnegative=True),
    "eala-cumulant3": dict(estimator="cumulant3"),
    "eala-segments": dict(estimator="segments", num_segments=8),
    "eala-random_features": dict(estimator="random_features", projection=PROJ),
    "eala_local": dict(neighbours=LOCAL),
    "eala_local-nonneg": dict(neighbours=LOCAL, nonnegative=True),
    "eala-clusters": dict(estimator="clusters"),
    "linear": dict(),
    "performer": dict(projection=PROJ),
    "lln": dict(),
}


def _fn(case, **extra):
    name = case.split("-")[0]
    opts = dict(NONCAUSAL.get(case, {}), **extra)
    attention = get_attention(name)
    return lambda q, k, v, m: attention(q, k, v, key_mask=m, **opts)


@pytest.mark.parametrize("case", list(NONCAUSAL))
def test_noncausal_has_no_query_by_key_intermediate(case):
    jaxpr, hlo = _all_shapes(_forward_and_grad(_fn(case)), *_inputs(T, S))
    for shapes in (jaxpr, hlo):  # the walk sees both lengths, in the jaxpr and after XLA
        assert any(T in shape for shape in shapes) and any(S in shape for shape in shapes)
    assert cross_shapes(jaxpr, T, S) == [], case
    assert cross_shapes(hlo, T, S) == [], case


@pytest.mark.parametrize(
    "case,chunk",
    [
        ("eala-gaussian", 32),
        ("eala-gaussian-nonneg", 48),
        ("eala_local-window", 32),
        ("linear", 48),
        ("lln", 40),
    ],
)
def test_causal_holds_nothing_t_by_t_beyond_chunk_by_chunk(case, chunk):
    args = _inputs(N, N)
    fn = _fn(
        case,
        causal=True,
        chunk_size=chunk,
        **({"estimator": "gaussian"} if case.startswith("eala-") else {}),
        **({"num_local": K} if case == "eala_local-window" else {}),
    )
    jaxpr, hlo = _all_shapes(_forward_and_grad(fn), *args)
    assert (chunk, chunk) in {s[-2:] for s in jaxpr if len(s) >= 2}  # dense inside a chunk
    assert cross_shapes(jaxpr, N, N) == [], case
    assert cross_shapes(hlo, N, N) == [], case


def test_the_check_finds_softmax_scores():
    args = _inputs(T, S)
    jaxpr, hlo = _all_shapes(_forward_and_grad(_fn("softmax")), *args)
    assert any(T in s and S in s for s in cross_shapes(jaxpr, T, S))
    assert any(T in s and S in s for s in cross_shapes(hlo, T, S))
    # A T×S buffer only in the backward pass is found too, in the jaxpr and after XLA.
    linear = get_attention("linear")
    backward_only = lambda q, k, v, m: linear(_quadratic_in_backward_only(q, k), k, v, key_mask=m)
    assert cross_shapes(_all_shapes(backward_only, *args)[1], T, S) == []  # not in the forward
    jaxpr, hlo = _all_shapes(_forward_and_grad(backward_only), *args)
    assert any(T in s and S in s for s in cross_shapes(jaxpr, T, S))
    assert any(T in s and S in s for s in cross_shapes(hlo, T, S))
    args = _inputs(N, N)
    jaxpr, _ = _all_shapes(_fn("softmax", causal=True), *args, hlo=False)
    assert cross_shapes(jaxpr, N, N)
    # The exact entropy inside EALA is quadratic in time; with a key chunk as long as S it is
    # caught.
    jaxpr, _ = _all_shapes(_fn("eala", estimator="exact"), *_inputs(T, S), hlo=False)
    assert cross_shapes(jaxpr, T, S)
