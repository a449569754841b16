"""Linear cost, checked by shape rather than by timing: no intermediate of EALA (its jaxpr, every
sub-jaxpr of scan / pjit / remat / custom rules, and XLA's optimised HLO) has both a query-length
and a key-length axis; causal forms hold nothing T-by-T beyond chunk × chunk. Forward and gradient.
Softmax attention is the positive control: the same check must find its T×S scores.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eala_jax import get_attention

from .helpers import projection

B, T, S, H, D, DV = 2, 96, 160, 3, 8, 6  # every size distinct, so axes are identifiable
N = 160  # causal: T = S = N
PROJ = projection(130, r=16, d=D)


def _sub_jaxprs(value):
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        yield value.jaxpr
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _sub_jaxprs(item)


def jaxpr_shapes(jaxpr):
    """Every array shape in `jaxpr` and, recursively, in the jaxprs held in its equations'
    params."""
    shapes = []
    for var in list(jaxpr.invars) + list(jaxpr.constvars):
        shapes.append(tuple(getattr(var.aval, "shape", ())))
    for eqn in jaxpr.eqns:
        for var in list(eqn.invars) + list(eqn.outvars):
            shapes.append(tuple(getattr(getattr(var, "aval", None), "shape", ())))
        for param in eqn.params.values():
            for sub in _sub_jaxprs(param):
                shapes.extend(jaxpr_shapes(sub))
    return shapes


def hlo_shapes(text):
    """Shapes of every value in an (optimised) HLO module's text, e.g. `f32[2,96,3,160]{...}`."""
    return [
        tuple(int(x) for x in dims.split(",") if x)
        for dims in re.findall(r"\b(?:pred|s32|s64|u32|u8|bf16|f16|f32|f64)\[([0-9,]*)\]", text)
    ]


def cross_shapes(shapes, t, s):
    """Shapes holding a T-sized and an S-sized axis (for T = S: two such axes), or a flattened
    T·S."""
    bad = []
    for shape in set(shapes):
        if t != s:
            both = t in shape and s in shape
        else:
            both = sum(1 for n in shape if n in t_sizes(t)) >= 2
        if both or any(n and n % (t * s) == 0 for n in shape):
            bad.append(shape)
    return sorted(bad)


def t_sizes(n):
    """Sizes a length-n axis may take inside the causal scan: n itself or n padded to a chunk
    multiple."""
    return {n} | {n + pad for pad in range(1, 64)}


def _inputs(t, s):
    g = np.random.default_rng(131)
    q = g.standard_normal((B, t, H, D)).astype(np.float32)
    k = g.standard_normal((B, s, H, D)).astype(np.float32)
    v = g.standard_normal((B, s, H, DV)).astype(np.float32)
    mask = g.random((B, s)) < 0.8
    return q, k, v, mask


def _all_shapes(fn, *args, hlo=True):
    """Shapes in the jaxpr and (if `hlo`: compiling costs time, so only for the forward pass) the
    HLO."""
    jaxpr = jax.make_jaxpr(fn)(*args)
    text = jax.jit(fn).lower(*args).compile().as_text() if hlo else ""
    return jaxpr_shapes(jaxpr.jaxpr), hlo_shapes(text)


def _forward_and_grad(fn):
    loss = lambda q, k, v, m: jnp.sum(fn(q, k, v, m))
    return fn, jax.grad(loss, argnums=(0, 1, 2))


NONCAUSAL = {
    "eala-default": dict(),
    "eala-gaussian-nonneg": dict(estimator="gaussian", nonnegative=True),
    "eala-cumulant3": dict(estimator="cumulant3"),
    "eala-segments": dict(estimator="segments", num_segments=8),
    "eala-random_features": dict(estimator="random_features", projection=PROJ),
    "linear": dict(),
    "performer": dict(projection=PROJ),
}


def _fn(case, **extra):
    name = case.split("-")[0]
    opts = dict(NONCAUSAL.get(case, {}), **extra)
    attention = get_attention(name)
    return lambda q, k, v, m: attention(q, k, v, key_mask=m, **opts)


@pytest.mark.parametrize("case", list(NONCAUSAL))
def test_noncausal_has_no_query_by_key_intermediate(case):
    args = _inputs(T, S)
    for fn, compile_it in zip(_forward_and_grad(_fn(case)), (True, False), strict=False):
        jaxpr, hlo = _all_shapes(fn, *args, hlo=compile_it)
        assert any(T in shape for shape in jaxpr) and any(
            S in shape for shape in jaxpr
        )  # the walk sees both
        assert cross_shapes(jaxpr, T, S) == [], case
        assert cross_shapes(hlo, T, S) == [], case


@pytest.mark.parametrize(
    "case,chunk", [("eala-gaussian", 32), ("eala-gaussian-nonneg", 48), ("linear", 48)]
)
def test_causal_holds_nothing_t_by_t_beyond_chunk_by_chunk(case, chunk):
    args = _inputs(N, N)
    fn = _fn(
        case,
        causal=True,
        chunk_size=chunk,
        **({"estimator": "gaussian"} if case.startswith("eala") else {}),
    )
    for f, compile_it in zip(_forward_and_grad(fn), (True, False), strict=False):
        jaxpr, hlo = _all_shapes(f, *args, hlo=compile_it)
        assert (chunk, chunk) in {s[-2:] for s in jaxpr if len(s) >= 2}  # dense inside a chunk
        assert cross_shapes(jaxpr, N, N) == [], case
        assert cross_shapes(hlo, N, N) == [], case


def test_the_check_finds_softmax_scores():
    args = _inputs(T, S)
    for fn, compile_it in zip(_forward_and_grad(_fn("softmax")), (True, False), strict=False):
        jaxpr, hlo = _all_shapes(fn, *args, hlo=compile_it)
        assert any(T in s and S in s for s in cross_shapes(jaxpr, T, S))
        assert not compile_it or any(T in s and S in s for s in cross_shapes(hlo, T, S))
    args = _inputs(N, N)
    jaxpr, _ = _all_shapes(_fn("softmax", causal=True), *args, hlo=False)
    assert cross_shapes(jaxpr, N, N)
    # The exact entropy inside EALA is quadratic in time; with a key chunk as long as S it is
    # caught.
    jaxpr, _ = _all_shapes(_fn("eala", estimator="exact"), *_inputs(T, S), hlo=False)
    assert cross_shapes(jaxpr, T, S)
