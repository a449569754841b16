"""Causal (chunked prefix-sum) attentions equal the masked non-causal computation, query by
query."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eala_jax import eala_attention, eala_weights, get_attention
from tests.ops import reference as ref
from tests.ops.helpers import DV, B, H, f64, key_mask, projection, qkv

N = 12  # T = S
CHUNKS = [1, 5, 64]  # 1 and 4 (below) divide N, 5 does not; 64 > N
PROJ = projection(60, r=16)


def _inputs(seed, **kw):
    q, k, v = qkv(seed, t=N, s=N, **kw)
    mask = key_mask(seed + 1, s=N, p=0.8)
    mask[:, 0] = False  # row 0 then has no visible key: zeros
    return q, k, v, mask


def _prefix_masks(mask):
    """key_mask of query i in the non-causal problem: (j ≤ i) & key_mask."""
    return [mask & (np.arange(N) <= i)[None] for i in range(N)]


def _masked_noncausal(fn, q, k, v, mask, **kw):
    """Row i of the non-causal attention with key_mask = (j ≤ i) & mask, stacked over i."""
    jitted = jax.jit(lambda q, m: fn(q, k, v, key_mask=m, **kw))  # one compile for the N problems
    rows = [np.asarray(jitted(q[:, i : i + 1], m))[:, 0] for i, m in enumerate(_prefix_masks(mask))]
    return np.stack(rows, axis=1)


@pytest.mark.parametrize("theta", ["optimal", 0.7])
def test_causal_eala_equals_masked_noncausal(theta):
    q, k, v, mask = _inputs(61, q_scale=2.0)
    want = _masked_noncausal(eala_attention, q, k, v, mask, estimator="gaussian", theta=theta)
    ref_out = ref.eala(q, k, v, mask, causal=True, estimator="gaussian", theta=theta)
    np.testing.assert_allclose(want, ref_out["out"], rtol=2e-5, atol=2e-5)
    np.testing.assert_array_equal(want[:, 0], 0.0)
    for chunk in CHUNKS:
        got, stats = eala_attention(
            q,
            k,
            v,
            key_mask=mask,
            causal=True,
            estimator="gaussian",
            theta=theta,
            chunk_size=chunk,
            return_stats=True,
        )
        chex.assert_shape(got, (B, N, H, DV))
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5, err_msg=f"chunk {chunk}")
        np.testing.assert_allclose(stats["theta"], ref_out["theta"], rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(stats["sigma2"], ref_out["sigma2"], rtol=2e-5, atol=2e-5)
    if theta == "optimal":
        assert np.ptp(ref_out["theta"]) > 0.1


def test_causal_eala_float64_matches_reference_and_weights():
    q, k, v, mask = _inputs(62, q_scale=2.0)
    want = ref.eala(q, k, v, mask, causal=True, estimator="gaussian")
    with jax.enable_x64(True):
        q64, k64, v64 = f64(q, k, v)
        for chunk in (4,):  # float32 tests cover 1, 5 and 64
            got = np.asarray(
                eala_attention(
                    q64,
                    k64,
                    v64,
                    key_mask=mask,
                    causal=True,
                    estimator="gaussian",
                    chunk_size=chunk,
                )
            )
            w = np.asarray(
                eala_weights(
                    q64, k64, key_mask=mask, causal=True, estimator="gaussian", chunk_size=chunk
                )
            )
            np.testing.assert_allclose(got, want["out"], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(w, want["weights"], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(
                got, np.einsum("bhts,bshe->bthe", w, v64), rtol=1e-10, atol=1e-12
            )
    assert np.all(np.triu(w, 1) == 0)


def test_causal_nonnegative_has_no_negative_weight():
    q, k, v, mask = _inputs(63, q_scale=3.0)
    with jax.enable_x64(True):
        q, k, v = f64(q, k, v)
        signed = np.asarray(
            eala_weights(q, k, key_mask=mask, causal=True, estimator="gaussian", chunk_size=5)
        )
        assert signed.min() < -1e-3  # without the cap these inputs do give negative weights
        for chunk in (5,):
            w = np.asarray(
                eala_weights(
                    q,
                    k,
                    key_mask=mask,
                    causal=True,
                    estimator="gaussian",
                    nonnegative=True,
                    chunk_size=chunk,
                )
            )
            assert w.min() >= -1e-15
            rows = w.sum(-1)
            np.testing.assert_allclose(rows[:, :, 1:], 1.0, rtol=1e-12)  # row 0 has no visible key
            out = np.asarray(
                eala_attention(
                    q,
                    k,
                    v,
                    key_mask=mask,
                    causal=True,
                    estimator="gaussian",
                    nonnegative=True,
                    chunk_size=chunk,
                )
            )
            np.testing.assert_allclose(
                out, np.einsum("bhts,bshe->bthe", w, v), rtol=1e-10, atol=1e-12
            )


@pytest.mark.parametrize("offset", [300.0, 3000.0])
def test_large_key_mean_keeps_float32_statistics_exact(offset):
    """|k̄| ≫ spread: σ², θ*, Ĥ and the output in float32 match float64, causal (one chunk, several
    chunks) and not (docs/method.md step 8). θ* is optimal and below 1 on many rows, so an error
    in σ² reaches θ*; a raw `Σ k kᵀ − M k̄ k̄ᵀ` anywhere loses σ² entirely at these offsets."""
    q, k, v, mask = _inputs(64, k_offset=offset, q_scale=2.0)
    for causal, chunks in ((True, (4, 64)), (False, (64,))):
        want = ref.eala(q, k, v, mask, causal=causal, estimator="gaussian")
        theta = want["theta"][want["sigma2"] > 0]
        assert np.ptp(theta) > 0.3 and theta.min() < 0.9  # θ* varies and is capped on many rows
        for chunk in chunks:
            out, stats = eala_attention(
                q,
                k,
                v,
                key_mask=mask,
                causal=causal,
                estimator="gaussian",
                chunk_size=chunk,
                return_stats=True,
            )
            msg = f"causal={causal} chunk={chunk}"
            np.testing.assert_allclose(
                stats["sigma2"], want["sigma2"], rtol=2e-5, atol=1e-5, err_msg=msg
            )
            np.testing.assert_allclose(
                stats["theta"], want["theta"], rtol=2e-5, atol=1e-5, err_msg=msg
            )
            np.testing.assert_allclose(
                stats["entropy"], want["entropy"], rtol=2e-5, atol=1e-5, err_msg=msg
            )
            np.testing.assert_allclose(out, want["out"], rtol=2e-5, atol=1e-5, err_msg=msg)


@pytest.mark.parametrize("name", ["linear", "performer", "uniform"])
def test_causal_kernel_attentions_equal_masked_noncausal(name):
    q, k, v, mask = _inputs(65)
    fn = get_attention(name)
    kw = dict(projection=PROJ) if name == "performer" else {}
    want = _masked_noncausal(fn, q, k, v, mask, **kw)
    np.testing.assert_allclose(
        want, ref.attend(name, q, k, v, mask, causal=True, projection=PROJ), rtol=1e-4, atol=1e-5
    )
    for chunk in (4, 5):
        got = jax.jit(lambda q: fn(q, k, v, key_mask=mask, causal=True, chunk_size=chunk, **kw))(q)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{name} chunk {chunk}")


def test_causal_softmax_equals_jax_and_reference():
    q, k, v, mask = _inputs(66)
    got = get_attention("softmax")(q, k, v, causal=True)
    d = 4
    v_pad = jnp.pad(v, [(0, 0)] * 3 + [(0, d - DV)])
    want = jax.nn.dot_product_attention(q, k, v_pad, is_causal=True)[..., :DV]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        got, ref.attend("softmax", q, k, v, causal=True), rtol=1e-4, atol=1e-5
    )
    got = get_attention("softmax")(q, k, v, key_mask=mask, causal=True)
    np.testing.assert_allclose(
        got, ref.attend("softmax", q, k, v, mask, causal=True), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_array_equal(got[:, 0], 0.0)


def test_causal_jit_vmap_and_unbatched():
    q, k, v, mask = _inputs(67)
    fn = lambda q, k, v, m: eala_attention(
        q, k, v, key_mask=m, causal=True, estimator="gaussian", chunk_size=5
    )
    eager = np.asarray(fn(q, k, v, mask))
    np.testing.assert_allclose(jax.jit(fn)(q, k, v, mask), eager, rtol=1e-5, atol=1e-6)
    batched = jax.vmap(fn)(q[:, None], k[:, None], v[:, None], mask[:, None])
    np.testing.assert_allclose(batched[:, 0], eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fn(q[1], k[1], v[1], mask[1]), eager[1], rtol=1e-5, atol=1e-6)
