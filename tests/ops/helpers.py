"""Random inputs (seeded NumPy generators) and small utilities shared by the ops tests."""

from __future__ import annotations

import re

import numpy as np

B, T, S, H, D, DV = 2, 7, 12, 2, 4, 3  # Dv != D on purpose; T != S.


def qkv(
    seed,
    *,
    b=B,
    t=T,
    s=S,
    h=H,
    d=D,
    dv=DV,
    q_scale=1.0,
    k_scale=1.0,
    k_offset=0.0,
    dtype=np.float32,
):
    """Standard-normal q, k, v (q scaled by `q_scale`, k by `k_scale` and shifted by `k_offset`)."""
    g = np.random.default_rng(seed)
    q = q_scale * g.standard_normal((b, t, h, d))
    k = k_offset + k_scale * g.standard_normal((b, s, h, d))
    v = g.standard_normal((b, s, h, dv))
    return q.astype(dtype), k.astype(dtype), v.astype(dtype)


def key_mask(seed, *, b=B, s=S, p=0.7, min_valid=1):
    """A random boolean key mask `[b, s]` with at least `min_valid` valid keys per row."""
    g = np.random.default_rng(seed)
    m = g.random((b, s)) < p
    for row in m:
        if row.sum() < min_valid:
            row[g.choice(s, min_valid, replace=False)] = True
    return m


def projection(seed, r=16, d=D, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((r, d)).astype(dtype)


def f64(*xs):
    return tuple(np.asarray(x, np.float64) for x in xs)


def all_valid(b=B, s=S):
    """An all-True key mask: passing a mask always keeps one compiled version per configuration."""
    return np.ones((b, s), bool)


# ----------------------------------------------------------------------------------------------
# Shapes of every intermediate, to check that nothing holds a query axis and a key axis at once.


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
