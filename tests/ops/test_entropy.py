"""softmax_entropy and estimate_entropy against the NumPy float64 references (docs/method.md step
3)."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eala_jax import estimate_entropy as estimate_entropy_eager
from eala_jax import softmax_entropy
from tests.ops import reference as ref
from tests.ops.helpers import B, H, S, T, all_valid, f64, key_mask, projection, qkv

# One compiled version per configuration (the un-jitted function dispatches op by op: slow).
estimate_entropy = jax.jit(
    estimate_entropy_eager,
    static_argnames=("estimator", "num_segments", "num_features", "scale", "chunk_size"),
)


@pytest.mark.parametrize("chunk_size", [1, 5, 12, 512])
@pytest.mark.parametrize("masked", [False, True])
def test_softmax_entropy_matches_reference(chunk_size, masked):
    q, k, _ = qkv(0, q_scale=2.0)
    mask = key_mask(1) if masked else None
    got = softmax_entropy(q, k, key_mask=mask, chunk_size=chunk_size)
    chex.assert_shape(got, (B, T, H))
    assert got.dtype == jnp.float32
    want = ref.entropy(q, k, mask, method="exact")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The inputs are neither uniform nor one-hot: the comparison has room to fail.
    assert 0.3 < want.mean() < math.log(S) - 0.3


def test_softmax_entropy_float64_is_tight_and_scale_is_used():
    q, k, _ = qkv(2, q_scale=3.0)
    mask = key_mask(3)
    with jax.enable_x64(True):
        q64, k64 = f64(q, k)
        got = softmax_entropy(q64, k64, key_mask=mask, chunk_size=5)
        assert got.dtype == jnp.float64
        got = np.asarray(got)
        np.testing.assert_allclose(got, ref.entropy(q64, k64, mask), rtol=1e-11, atol=1e-11)
        got = np.asarray(softmax_entropy(q64, k64, scale=0.1, chunk_size=7))
        np.testing.assert_allclose(got, ref.entropy(q64, k64, scale=0.1), rtol=1e-11, atol=1e-11)


def test_softmax_entropy_degenerate_rows():
    q, k, _ = qkv(4)
    mask = np.ones((B, S), bool)
    mask[0] = False  # no valid key: entropy 0 by definition
    mask[1] = False
    mask[1, 3] = True  # one valid key: entropy 0
    got = np.asarray(softmax_entropy(q, k, key_mask=mask, chunk_size=5))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, 0.0, atol=1e-6)
    # All keys equal: uniform distribution, entropy log M.
    k_equal = np.broadcast_to(k[:, :1], k.shape)
    np.testing.assert_allclose(softmax_entropy(q, k_equal), math.log(S), rtol=1e-5)


def test_softmax_entropy_bfloat16_keeps_float32_statistics():
    q, k, _ = qkv(5)
    got = softmax_entropy(jnp.asarray(q, jnp.bfloat16), jnp.asarray(k, jnp.bfloat16), chunk_size=5)
    assert got.dtype == jnp.float32
    want = softmax_entropy(q, k)
    np.testing.assert_allclose(got, want, atol=0.05)


def test_softmax_entropy_unbatched_rank3():
    q, k, _ = qkv(6)
    got = softmax_entropy(q[0], k[0])
    chex.assert_shape(got, (T, H))
    np.testing.assert_allclose(got, softmax_entropy(q, k)[0], rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Estimators (run in float64 so that the comparison with the reference is tight).

ESTIMATOR_CASES = [
    ("gaussian", {}),
    ("cumulant3", {}),
    ("exact", {}),
    ("segments", dict(num_segments=1)),
    ("segments", dict(num_segments=3)),
    ("segments", dict(num_segments=4)),
    ("segments", dict(num_segments=S)),
    ("random_features", {}),
]


@pytest.mark.parametrize("method,options", ESTIMATOR_CASES)
@pytest.mark.parametrize("masked", [False, True])
def test_estimators_match_reference(method, options, masked):
    # Skewed keys (exponential) so that κ₃ matters; q scale 1.5 so some rows clip at 0 for gaussian.
    g = np.random.default_rng(7)
    q = 1.5 * g.standard_normal((B, T, H, 4))
    k = g.exponential(size=(B, S, H, 4)) - 1.0
    mask = key_mask(8) if masked else all_valid()
    extra = dict(options)
    if method == "random_features":
        extra["projection"] = projection(9, r=32)
    with jax.enable_x64(True):
        got = estimate_entropy(q, k, estimator=method, key_mask=mask, **extra)
        assert got.dtype == jnp.float64
        got = np.asarray(got)
    chex.assert_shape(got, (B, T, H))
    want = ref.entropy(q, k, mask, method=method, **extra)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    m = mask.sum(1)[:, None, None]
    assert np.all((got >= 0) & (got <= np.log(m) + 1e-12))


def test_cumulant3_is_log_m_minus_half_variance_minus_kappa3_over_3():
    """κ₃ computed directly from the explicit scores, independently of the T₃ tensor."""
    g = np.random.default_rng(12)
    q = 0.8 * g.standard_normal((B, T, H, 4))
    k = g.exponential(size=(B, S, H, 4))  # skewed scores
    with jax.enable_x64(True):
        got = np.asarray(estimate_entropy(q, k, estimator="cumulant3"))
        gauss = np.asarray(estimate_entropy(q, k, estimator="gaussian"))
    want = np.zeros_like(got)
    for b in range(B):
        for h in range(H):
            s = ref.scores(q[b, :, h], k[b, :, h], 0.5)
            var = s.var(axis=1)
            kappa3 = ((s - s.mean(axis=1, keepdims=True)) ** 3).mean(axis=1)
            want[b, :, h] = np.clip(math.log(S) - var / 2 - kappa3 / 3, 0, math.log(S))
            assert np.abs(kappa3).max() > 0.05  # the cubic term is not negligible here
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert np.abs(got - gauss).max() > 0.02


def test_segments_limits_equal_gaussian_and_exact():
    q, k, _ = qkv(13, q_scale=2.0)
    mask = key_mask(14)
    with jax.enable_x64(True):
        q, k = f64(q, k)
        one = estimate_entropy(q, k, estimator="segments", num_segments=1, key_mask=mask)
        gauss = estimate_entropy(q, k, estimator="gaussian", key_mask=mask)
        every = estimate_entropy(q, k, estimator="segments", num_segments=S, key_mask=mask)
        more = estimate_entropy(q, k, estimator="segments", num_segments=10 * S, key_mask=mask)
        exact = estimate_entropy(q, k, estimator="exact", key_mask=mask)
    np.testing.assert_allclose(one, gauss, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(every, exact, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(more, exact, rtol=1e-10, atol=1e-10)
    assert np.abs(np.asarray(gauss) - np.asarray(exact)).max() > 0.05  # the limits differ


def test_segments_frozen_phase_is_exercised():
    """Sharp queries put some segments in the frozen phase; the reference then still agrees."""
    q, k, _ = qkv(15, q_scale=4.0)
    frozen = 0
    for b in range(B):
        for h in range(H):
            s = ref.scores(q[b, :, h], k[b, :, h], 0.5)
            for c in range(3):
                sc = s[:, c * 4 : (c + 1) * 4]
                frozen += int((sc.var(axis=1) > 2 * math.log(4)).sum())
    assert frozen > 0
    with jax.enable_x64(True):
        got = estimate_entropy(*f64(q, k), estimator="segments", num_segments=3)
    np.testing.assert_allclose(
        got, ref.entropy(q, k, method="segments", num_segments=3), rtol=1e-10, atol=1e-10
    )


def test_random_features_rng_is_deterministic():
    q, k, _ = qkv(16)
    key = jax.random.key(0)
    a = estimate_entropy(q, k, estimator="random_features", rng=key, num_features=8)
    b = estimate_entropy(q, k, estimator="random_features", rng=key, num_features=8)
    c = estimate_entropy(q, k, estimator="random_features", rng=jax.random.key(1), num_features=8)
    chex.assert_trees_all_equal(a, b)
    assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-4
    assert np.all(np.isfinite(np.asarray(a)))


@pytest.mark.parametrize(
    "method,options",
    [
        ("gaussian", {}),
        ("cumulant3", {}),
        ("exact", {}),
        ("segments", dict(num_segments=1)),
        ("segments", dict(num_segments=2)),
        ("segments", dict(num_segments=3)),
        ("segments", dict(num_segments=S)),
        ("random_features", dict(projection=projection(17))),
    ],
)
def test_estimator_key_mask_equals_dropping_keys(method, options):
    q, k, _ = qkv(18)
    g = np.random.default_rng(19)
    mask = np.zeros((B, S), bool)  # 5 valid keys in each row, so the dropped problems share a shape
    for row in mask:
        row[g.choice(S, 5, replace=False)] = True
    got = np.asarray(estimate_entropy(q, k, estimator=method, key_mask=mask, **options))
    for b in range(B):
        dropped = estimate_entropy(q[b : b + 1], k[b : b + 1, mask[b]], estimator=method, **options)
        np.testing.assert_allclose(got[b : b + 1], dropped, rtol=1e-5, atol=1e-5)


def test_segments_over_the_valid_keys():
    """Segments are blocks of consecutive *valid* keys (docs/method.md step 3): with M valid keys,
    blocks of ⌈M / n⌉; n ≥ M gives one key per block, which is the exact entropy."""
    q, k, _ = qkv(22, q_scale=2.0)
    mask = np.zeros((B, S), bool)
    mask[0, [0, 1, 2, 3, 5]] = True  # 5 valid keys, bunched at the front
    mask[1, [2, 5, 7, 10, 11]] = True
    with jax.enable_x64(True):
        q, k = f64(q, k)
        run = lambda n: np.asarray(
            estimate_entropy(q, k, estimator="segments", num_segments=n, key_mask=mask)
        )
        exact = np.asarray(estimate_entropy(q, k, estimator="exact", key_mask=mask))
        for n in (5, 8):  # n = M and M < n < S: one valid key per block
            np.testing.assert_allclose(run(n), exact, rtol=1e-10, atol=1e-10, err_msg=f"n={n}")
        # n = 2: blocks {0, 1, 2} and {3, 5} of batch 0, whatever the masked positions between.
        np.testing.assert_allclose(
            run(2), ref.entropy(q, k, mask, method="segments", num_segments=2), rtol=1e-10
        )
        assert np.abs(run(2) - exact).max() > 0.05  # two blocks are not the exact entropy here


def test_estimators_float32_and_degenerate_inputs():
    """float32 is close to the float64 reference; no valid key, one key, huge query norms, zero
    queries/keys and equal keys give finite estimates in [0, log M]. One batch holds all cases."""
    q, k, _ = qkv(20, q_scale=1.5)
    k_equal = np.broadcast_to(k[:, :1], k.shape)
    cases = ["plain", "masked", "huge_q", "zero_q", "zero_k", "equal_k"]
    qs = np.concatenate([q, q, 1e4 * q, 0 * q, q, q])
    ks = np.concatenate([k, k, k, k, 0 * k, k_equal])
    masks = np.ones((len(cases) * B, S), bool)
    masks[B] = False  # no valid key
    masks[B + 1, 1:] = False  # one valid key
    for method, options in ESTIMATOR_CASES:
        if method == "random_features":
            options = dict(projection=projection(21, r=32))
        got = estimate_entropy(qs, ks, estimator=method, key_mask=masks, **options)
        assert got.dtype == jnp.float32
        got = np.asarray(got)
        assert np.all(np.isfinite(got)), method
        assert np.all(got >= 0), method
        got = got.reshape(len(cases), B, T, H)
        np.testing.assert_allclose(
            got[0], ref.entropy(q, k, method=method, **options), atol=2e-4, err_msg=method
        )
        np.testing.assert_allclose(got[1], 0.0, atol=1e-6, err_msg=method)  # M ≤ 1 → log M = 0
        assert np.all(got[2] <= math.log(S) + 1e-5), method
        if method != "random_features":  # every score equal → uniform → log M
            np.testing.assert_allclose(got[3:], math.log(S), rtol=1e-5, err_msg=method)
