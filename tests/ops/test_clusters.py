"""The "clusters" entropy estimator (eala_jax/ops/clusters.py) against a NumPy float64 reference,
on random and sharp inputs, inside EALA, and its gradient."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eala_jax import eala_attention, estimate_entropy, softmax_entropy
from eala_jax.ops.clusters import (
    POWER_ITERATIONS,
    clusters_entropy,
    key_clusters,
    num_clusters,
    tree_levels,
)
from tests.ops.helpers import f64, key_mask, qkv


def ref_tree(keys, clusters):
    """Leaf of each row of `keys [M, D]` (the valid keys, in order), by recursive halving: a group
    with ℓ ≥ 2 leaves and c ≥ 2 keys, sorted stably by projection on its power-iterated principal
    direction, is cut after the first r keys minimising the two sides' squared deviations of the
    projection; the left side takes round(ℓ·r/c) (at least 1, at most ℓ − 1) of the leaves; a
    group still holding ≥ 2 leaves after `tree_levels(n)` cuts is one cluster."""
    leaf = np.zeros(len(keys), int)

    def split(index, lo, leaves, depth):
        if leaves < 2 or len(index) < 2 or depth == tree_levels(clusters):
            leaf[index] = lo
            return
        x = keys[index] - keys[index].mean(axis=0)
        norm2 = (x * x).sum(axis=1)
        u = x[norm2 >= norm2.max()].sum(axis=0)
        for _ in range(POWER_ITERATIONS):
            u = u / max(np.linalg.norm(u), 1e-30)
            u = x.T @ (x @ u)
        p = x @ (u / max(np.linalg.norm(u), 1e-30))
        order = np.argsort(p, kind="stable")
        c = len(index)
        cost = [p[order[:r]].var() * r + p[order[r:]].var() * (c - r) for r in range(1, c)]
        cut = 1 + int(np.argmin(cost))
        half = min(max((2 * leaves * cut + c) // (2 * c), 1), leaves - 1)
        split(index[order[:cut]], lo, half, depth + 1)
        split(index[order[cut:]], lo + half, leaves - half, depth + 1)

    split(np.arange(len(keys)), 0, clusters, 0)
    return leaf


def ref_entropy(q, keys, clusters, scale):
    """Ĥ for queries `q [T, D]` over valid keys `keys [M, D]`, from the scores of each cluster."""
    if len(keys) == 0:
        return np.zeros(len(q))
    leaf = ref_tree(keys, clusters)
    s = scale * q @ keys.T  # [T, M]
    members = [np.flatnonzero(leaf == c) for c in range(clusters)]
    members = [m for m in members if len(m)]
    centred = np.concatenate([keys[m] - keys[m].mean(axis=0) for m in members])
    pooled = centred.T @ centred / len(keys)
    v = scale**2 * np.einsum("td,de,te->t", q, pooled, q)
    ells, tilts = [], []
    for m in members:
        within = keys[m] - keys[m].mean(axis=0)
        share = (within**2).sum() / len(m) / np.trace(pooled) if np.trace(pooled) > 0 else 0.0
        m_c, v_c, log_n = s[:, m].mean(axis=1), share * v, math.log(len(m))
        frozen = v_c > 2 * log_n
        edge = m_c + np.sqrt(v_c * 2 * log_n)
        ells.append(np.where(frozen, edge, log_n + m_c + v_c / 2))
        tilts.append(np.where(frozen, edge, m_c + v_c))
    ell, tilt = np.stack(ells, 1), np.stack(tilts, 1)
    top = ell.max(axis=1, keepdims=True)
    w = np.exp(ell - top)
    return top[:, 0] + np.log(w.sum(axis=1)) - (w * tilt).sum(axis=1) / w.sum(axis=1)


def reference(q, k, mask, scale):
    """`[B, T, H]` reference over the valid keys (masked keys dropped), n from the padded S."""
    b, t, h, _ = q.shape
    clusters = num_clusters(k.shape[1])
    out = np.zeros((b, t, h))
    for i in range(b):
        valid = np.ones(k.shape[1], bool) if mask is None else mask[i]
        for j in range(h):
            out[i, :, j] = ref_entropy(q[i, :, j], k[i, valid, j], clusters, scale)
    return out


@pytest.mark.parametrize(
    ("s", "masked"), [(12, False), (40, False), (40, True), (67, True)], ids=str
)
def test_clusters_match_float64_reference(s, masked):
    """1, 5 (not a power of two) and 8 clusters; masked keys are absent keys."""
    q, k, _ = qkv(10 + s, s=s, d=5, q_scale=2.0)
    mask = key_mask(11 + s, s=s, p=0.8, min_valid=3) if masked else None
    with jax.enable_x64(True):
        q64, k64 = f64(q, k)
        got = np.asarray(clusters_entropy(q64, k64, mask, scale=0.4))
        member = np.asarray(key_clusters(k64, mask, num_clusters(s)))
    want = reference(q64, k64, mask, 0.4)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    # The tree's leaves, key by key, for one (batch, head).
    valid = np.ones(s, bool) if mask is None else mask[1]
    np.testing.assert_array_equal(member[1, 0, valid], ref_tree(k64[1, valid, 0], num_clusters(s)))
    assert np.all(member[1, 0, ~valid] == num_clusters(s))
    if num_clusters(s) > 1:  # the clusters are not the Gaussian estimate in disguise
        gaussian = np.asarray(estimate_entropy(q, k, key_mask=mask, scale=0.4))
        assert np.abs(gaussian - want).max() > 1e-2


def _clustered_inputs(seed, *, keys=208, groups=6, heads=2, dim=16, sharpness=3.0):
    """Keys in `groups` tight clusters (the trained spatial maps' structure: nodes alike in their
    embeddings) and queries aligned with one cluster centre each: a few dominant keys per query."""
    g = np.random.default_rng(seed)
    centres = g.standard_normal((2, heads, groups, dim))
    label = g.integers(0, groups, size=(2, keys))
    k = centres[np.arange(2)[:, None], :, label] + 0.3 * g.standard_normal((2, keys, heads, dim))
    pick = g.integers(0, groups, size=(2, 64))
    q = sharpness * centres[np.arange(2)[:, None], :, pick] + g.standard_normal((2, 64, heads, dim))
    return q.astype(np.float32), k.astype(np.float32)


def test_clusters_within_a_tenth_of_a_nat_on_a_sharp_clustered_map():
    """Where the Gaussian estimate is more than a nat off, the clusters estimate is within 0.1."""
    q, k = _clustered_inputs(20)
    exact = np.asarray(softmax_entropy(q, k))
    assert exact.mean() < math.log(k.shape[1]) - 1.5  # sharp: far below log M
    gaussian = np.abs(np.asarray(estimate_entropy(q, k)) - exact).mean()
    clusters = np.abs(np.asarray(estimate_entropy(q, k, estimator="clusters")) - exact).mean()
    assert gaussian > 1.0, gaussian
    assert clusters < 0.1, clusters


@pytest.mark.parametrize(("q_scale", "bound"), [(0.5, 0.02), (1.0, 0.1), (2.0, 0.4)])
def test_clusters_on_random_inputs_beat_the_gaussian_estimate(q_scale, bound):
    """Unstructured Gaussian keys (no clusters to find), from broad to sharp maps: no worse than
    the Gaussian estimate. On the sharp one (scores' σ² ≈ 4) neither is within 0.1 nat: the
    entropy then depends on which few keys are the largest, which S/8 centres cannot tell
    (measured 0.35 against 0.43 nats)."""
    q, k, _ = qkv(30, b=2, t=64, s=200, h=2, d=16, q_scale=q_scale)
    exact = np.asarray(softmax_entropy(q, k))
    gaussian = np.abs(np.asarray(estimate_entropy(q, k)) - exact).mean()
    clusters = np.abs(np.asarray(estimate_entropy(q, k, estimator="clusters")) - exact).mean()
    assert clusters < bound, clusters
    assert clusters < gaussian, (clusters, gaussian)


def test_eala_reads_the_clusters_estimate_on_both_routes():
    """EALA's reported entropy is `estimate_entropy`'s, on the statistics and the scores route."""
    q, k, v = qkv(40, s=24, d=4)
    mask = key_mask(41, s=24)
    want = estimate_entropy(q, k, key_mask=mask, estimator="clusters")
    for implementation in ("statistics", "scores"):
        _, stats = eala_attention(
            q,
            k,
            v,
            key_mask=mask,
            estimator="clusters",
            implementation=implementation,
            return_stats=True,
        )
        np.testing.assert_allclose(stats["entropy"], want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="causal EALA supports"):
        eala_attention(q, q, q, estimator="clusters", causal=True)


def test_clusters_gradient_matches_finite_differences():
    """d Ĥ / d(q, k) in float64 along a random direction (membership does not move for a small
    step)."""
    q, k, _ = qkv(50, s=40, d=5, q_scale=1.5)
    mask = key_mask(51, s=40, p=0.8, min_valid=3)
    g = np.random.default_rng(52)
    with jax.enable_x64(True):
        q64, k64 = f64(q, k)
        dq, dk = g.standard_normal(q.shape), g.standard_normal(k.shape)
        weights = g.standard_normal(q.shape[:-1])

        def loss(q, k):
            return jnp.sum(weights * clusters_entropy(q, k, mask, scale=0.45))

        grad_q, grad_k = jax.grad(loss, argnums=(0, 1))(q64, k64)
        directional = float(jnp.sum(grad_q * dq) + jnp.sum(grad_k * dk))
        eps = 1e-6
        numeric = (
            float(loss(q64 + eps * dq, k64 + eps * dk))
            - float(loss(q64 - eps * dq, k64 - eps * dk))
        ) / (2 * eps)
    assert np.all(np.isfinite(grad_q)) and np.all(np.isfinite(grad_k))
    np.testing.assert_allclose(directional, numeric, rtol=1e-6)
