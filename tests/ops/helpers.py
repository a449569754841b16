"""Random inputs (seeded NumPy generators) and small utilities shared by the ops tests."""

from __future__ import annotations

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
