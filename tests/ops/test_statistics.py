"""Key statistics (docs/method.md steps 1-2) and Chan's merge against NumPy float64."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from eala_jax import key_statistics, merge_statistics
from eala_jax.ops.statistics import centred_third_moment, cubic_form, score_moments
from tests.ops.helpers import DV, B, D, H, S, f64, key_mask, qkv


def _numpy_statistics(k, v, mask):
    """count [B], k̄ [B,H,D], Σ_j (k−k̄)(k−k̄)ᵀ [B,H,D,D], v̄ [B,H,Dv], Σ_j (k−k̄)(v−v̄)ᵀ [B,H,D,Dv]."""
    out = dict(count=[], mean_k=[], kk=[], mean_v=[], kv=[])
    for b in range(k.shape[0]):
        kb, vb = k[b, mask[b]], v[b, mask[b]]  # [M, H, D]
        mk, mv = kb.mean(0), vb.mean(0)
        out["count"].append(len(kb))
        out["mean_k"].append(mk)
        out["mean_v"].append(mv)
        out["kk"].append(np.einsum("mhd,mhe->hde", kb - mk, kb - mk))
        out["kv"].append(np.einsum("mhd,mhe->hde", kb - mk, vb - mv))
    return {n: np.asarray(x) for n, x in out.items()}


def _check(stats, want, **tol):
    np.testing.assert_allclose(np.asarray(stats.count)[:, 0], want["count"])
    np.testing.assert_allclose(stats.mean_k, want["mean_k"], **tol)
    np.testing.assert_allclose(stats.comoment_kk, want["kk"], **tol)
    np.testing.assert_allclose(stats.mean_v, want["mean_v"], **tol)
    np.testing.assert_allclose(stats.comoment_kv, want["kv"], **tol)


def test_key_statistics_match_numpy():
    _, k, v = qkv(100)
    mask = key_mask(101)
    with jax.enable_x64(True):
        stats = jax.tree.map(np.asarray, key_statistics(*f64(k, v), mask))
    chex.assert_shape(
        [stats.mean_k, stats.comoment_kk, stats.mean_v, stats.comoment_kv],
        [(B, H, D), (B, H, D, D), (B, H, DV), (B, H, D, DV)],
    )
    _check(stats, _numpy_statistics(*f64(k, v), mask), rtol=1e-12, atol=1e-12)


def _raw_moment_merge(k, v, mask, splits):
    """The merge Chan's update replaces: float32 raw sums Σk, Σv, Σkkᵀ, Σkvᵀ added over chunks,
    then `Σkkᵀ − M k̄k̄ᵀ` and `Σkvᵀ − M k̄v̄ᵀ` (a positive control for the tolerance below)."""
    w = mask[:, :, None, None].astype(np.float32)
    chunks = list(zip(splits, splits[1:], strict=False))
    total = lambda f: sum(f(slice(a, b)) for a, b in chunks)
    count = total(lambda c: w[:, c].sum(1))  # [B, 1, 1]
    mean_k = total(lambda c: (w * k)[:, c].sum(1)) / count
    mean_v = total(lambda c: (w * v)[:, c].sum(1)) / count
    kk = total(lambda c: jnp.einsum("bshd,bshe->bhde", (w * k)[:, c], k[:, c]))
    kv = total(lambda c: jnp.einsum("bshd,bshe->bhde", (w * k)[:, c], v[:, c]))
    outer = lambda a, b: a[..., :, None] * b[..., None, :]
    n = count[..., None]
    return kk - n * outer(mean_k, mean_k), kv - n * outer(mean_k, mean_v)


def test_merge_of_chunks_equals_statistics_of_the_union():
    # float32, keys and values with mean 1000 against unit spread.
    _, k, v = qkv(102, k_offset=1000.0)
    v = v + np.float32(1000.0)
    mask = key_mask(103)
    want = _numpy_statistics(*f64(k, v), mask)
    splits = [0, 3, 4, 9, S]  # uneven chunks, one of a single key
    parts = [
        key_statistics(k[:, a:b], v[:, a:b], mask[:, a:b])
        for a, b in zip(splits, splits[1:], strict=False)
    ]
    left = parts[0]
    for p in parts[1:]:
        left = merge_statistics(left, p)
    right = parts[-1]
    for p in reversed(parts[:-1]):
        right = merge_statistics(p, right)
    # Co-moments to 2e-4 of their largest entry; means to float32 resolution at 1000.
    tol = {n: dict(rtol=0, atol=2e-4 * np.abs(want[n]).max()) for n in ("kk", "kv")}
    for merged in (left, right):
        np.testing.assert_allclose(np.asarray(merged.count)[:, 0], want["count"])
        np.testing.assert_allclose(merged.mean_k, want["mean_k"], rtol=1e-6)
        np.testing.assert_allclose(merged.mean_v, want["mean_v"], rtol=1e-6)
        np.testing.assert_allclose(merged.comoment_kk, want["kk"], **tol["kk"])
        np.testing.assert_allclose(merged.comoment_kv, want["kv"], **tol["kv"])
    # The tolerance has room to fail: a raw-moment merge misses it by orders of magnitude.
    for got, name in zip(_raw_moment_merge(k, v, mask, splits), ("kk", "kv"), strict=True):
        assert np.abs(np.asarray(got) - want[name]).max() > 100 * tol[name]["atol"], name
    # Merging with an empty set (all keys masked) is the identity.
    empty = key_statistics(k[:, :2], v[:, :2], np.zeros((B, 2), bool))
    chex.assert_trees_all_close(merge_statistics(left, empty), left, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(merge_statistics(empty, left), left, rtol=1e-6, atol=1e-6)


def test_score_moments_and_third_moment_match_the_scores():
    q, k, _ = qkv(104)
    mask = key_mask(105)
    scale = 0.5
    with jax.enable_x64(True):
        q64, k64 = f64(q, k)
        q64, k64 = (
            jax.numpy.asarray(q64),
            jax.numpy.asarray(k64),
        )  # internal helpers take jax arrays
        stats = key_statistics(k64, k64, mask)
        mu, sigma2 = map(np.asarray, score_moments(q64, stats, scale))
        t3 = centred_third_moment(k64, mask, stats.mean_k, stats.count)
        kappa3 = np.asarray(scale**3 * cubic_form(q64, t3))
    q64, k64 = f64(q, k)
    for b in range(B):
        for h in range(H):
            s = scale * q64[b, :, h] @ k64[b, mask[b], h].T
            np.testing.assert_allclose(mu[b, :, h], s.mean(1), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(sigma2[b, :, h], s.var(1), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(
                kappa3[b, :, h],
                ((s - s.mean(1, keepdims=True)) ** 3).mean(1),
                rtol=1e-10,
                atol=1e-12,
            )
