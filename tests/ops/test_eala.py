"""eala_attention / eala_weights (non-causal) against the NumPy float64 reference of
docs/method.md."""

import functools
import math

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eala_jax import DEFAULT_ESTIMATOR, eala_attention, eala_weights, uniform_attention
from tests.ops import reference as ref
from tests.ops.helpers import DV, B, H, S, T, all_valid, f64, key_mask, projection, qkv

RF_PROJECTION = projection(30, r=32)

# (estimator, options, theta, nonnegative)
CASES = [
    ("gaussian", {}, "optimal", False),
    ("gaussian", {}, "optimal", True),
    ("cumulant3", {}, "optimal", False),
    ("cumulant3", {}, "optimal", True),
    ("segments", dict(num_segments=3), "optimal", False),
    ("random_features", dict(projection=RF_PROJECTION), "optimal", False),
    ("exact", {}, "optimal", False),
    ("gaussian", {}, 0.7, False),
]
CASE_IDS = [
    f"{e}-{o.get('num_segments', '')}-{t}-{'nonneg' if n else 'signed'}" for e, o, t, n in CASES
]


def _eala64(q, k, v, mask, estimator, options, theta, nonnegative):
    """eala_attention (with stats) and eala_weights in float64, as NumPy arrays."""
    with jax.enable_x64(True):
        q, k, v = f64(q, k, v)
        kw = dict(
            key_mask=mask, estimator=estimator, theta=theta, nonnegative=nonnegative, **options
        )
        out, stats = eala_attention(q, k, v, return_stats=True, **kw)
        weights = eala_weights(q, k, **kw)
        assert out.dtype == jnp.float64 and weights.dtype == jnp.float64
        return np.asarray(out), {n: np.asarray(x) for n, x in stats.items()}, np.asarray(weights)


@pytest.mark.parametrize("estimator,options,theta,nonnegative", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "nomask"])
def test_eala_matches_reference_and_its_weights(estimator, options, theta, nonnegative, masked):
    g = np.random.default_rng(31)
    q = 1.5 * g.standard_normal((B, T, H, 4))
    k = g.exponential(size=(B, S, H, 4)) - 1.0  # skewed scores: estimators differ
    v = g.standard_normal((B, S, H, DV))
    mask = key_mask(32) if masked else all_valid()
    out, stats, weights = _eala64(q, k, v, mask, estimator, options, theta, nonnegative)
    chex.assert_shape(out, (B, T, H, DV))
    chex.assert_shape(weights, (B, H, T, S))
    for name in ("theta", "entropy", "sigma2", "mean_score", "count"):
        chex.assert_shape(stats[name], (B, T, H))
    want = ref.eala(
        q, k, v, mask, estimator=estimator, theta=theta, nonnegative=nonnegative, **options
    )
    tol = dict(rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats["entropy"], want["entropy"], **tol)
    np.testing.assert_allclose(stats["sigma2"], want["sigma2"], **tol)
    np.testing.assert_allclose(stats["theta"], want["theta"], **tol)  # θ* closed form (+ cap)
    np.testing.assert_allclose(
        stats["count"], np.broadcast_to(mask.sum(1)[:, None, None], (B, T, H))
    )
    np.testing.assert_allclose(weights, want["weights"], **tol)
    np.testing.assert_allclose(out, want["out"], **tol)
    # The linear-time output is the explicit weights times v (over all positions; masked ones are
    # 0).
    np.testing.assert_allclose(out, np.einsum("bhts,bshe->bthe", weights, v), **tol)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-12)
    assert np.all(weights[np.broadcast_to(~mask[:, None, None, :], weights.shape)] == 0)
    # The test is not vacuous: θ varies and is not 0 or 1 everywhere.
    if theta == "optimal":
        assert np.ptp(want["theta"]) > 0.05 and want["theta"].max() > 0.1


def test_float32_close_to_float64_reference():
    q, k, v = qkv(33, q_scale=1.5)
    mask = key_mask(34)
    for estimator, options, theta, nonnegative in (
        CASES[::2] + CASES[5:6]
    ):  # one compile each: a subset
        out, _ = eala_attention(
            q,
            k,
            v,
            key_mask=mask,
            estimator=estimator,
            theta=theta,
            nonnegative=nonnegative,
            return_stats=True,
            **options,
        )
        assert out.dtype == jnp.float32
        want = ref.eala(
            q, k, v, mask, estimator=estimator, theta=theta, nonnegative=nonnegative, **options
        )
        np.testing.assert_allclose(out, want["out"], rtol=1e-4, atol=1e-4, err_msg=estimator)


def test_gaussian_theta_is_min_one_root_two_log_m_over_sigma():
    q, k, v = qkv(35, q_scale=2.5)
    with jax.enable_x64(True):
        _, stats = eala_attention(*f64(q, k, v), estimator="gaussian", return_stats=True)
        theta = np.asarray(stats["theta"])
    sigma = np.sqrt(ref.eala(q, k, v, estimator="gaussian")["sigma2"])
    want = np.minimum(1.0, math.sqrt(2 * math.log(S)) / sigma)
    np.testing.assert_allclose(theta, want, rtol=1e-9)
    assert (want == 1).any() and (want < 0.9).any()  # both regimes are exercised


def test_default_is_the_gaussian_estimate_and_theta_one_is_centred_linear_weights():
    """The defaults are the documented ones (gaussian estimate, θ* optimal), checked against the
    float64 reference on inputs where the estimators and θ = 1 give different outputs."""
    g = np.random.default_rng(36)
    q = 2.0 * g.standard_normal((B, T, H, 4))
    k = g.exponential(size=(B, S, H, 4)) - 1.0  # skewed scores: the estimators differ
    v = g.standard_normal((B, S, H, DV))
    mask = key_mask(37)
    assert DEFAULT_ESTIMATOR == "gaussian"
    with jax.enable_x64(True):
        got = np.asarray(eala_attention(*f64(q, k, v), key_mask=mask))
    want = ref.eala(q, k, v, mask, estimator="gaussian")["out"]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    others = [ref.eala(q, k, v, mask, estimator=e)["out"] for e in ("cumulant3", "exact")]
    others.append(ref.eala(q, k, v, mask, estimator="gaussian", theta=1.0)["out"])
    assert min(np.abs(want - other).max() for other in others) > 1e-3
    q, k, v = qkv(36)
    with jax.enable_x64(True):
        w = np.asarray(eala_weights(*f64(q, k), key_mask=mask, theta=1.0))
    for b in range(B):
        for h in range(H):
            s = ref.scores(q[b, :, h], k[b, mask[b], h], 0.5)
            want = (1 + s - s.mean(1, keepdims=True)) / s.shape[1]
            np.testing.assert_allclose(w[b, h][:, mask[b]], want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("estimator", ["gaussian", "cumulant3", "exact"])
def test_weights_preserve_softmax_ranking_when_theta_positive(estimator):
    q, k, _ = qkv(38, q_scale=2.0)
    with jax.enable_x64(True):
        q, k = f64(q, k)
        w = np.asarray(eala_weights(q, k, estimator=estimator))
        _, stats = eala_attention(q, k, k, estimator=estimator, return_stats=True)
        theta = np.asarray(stats["theta"])
    checked = 0
    for b in range(B):
        for h in range(H):
            p = ref.softmax_rows(ref.scores(q[b, :, h], k[b, :, h], 0.5))
            for i in range(T):
                if theta[b, i, h] > 1e-6:
                    np.testing.assert_array_equal(
                        np.argsort(w[b, h, i], kind="stable"), np.argsort(p[i], kind="stable")
                    )
                    checked += 1
    assert checked >= B * H * T // 2


def test_nonnegative_removes_the_negative_weights():
    q, k, v = qkv(39, q_scale=3.0)
    with jax.enable_x64(True):
        q, k, v = f64(q, k, v)
        for estimator in ("gaussian", "cumulant3"):
            signed = np.asarray(eala_weights(q, k, estimator=estimator))
            capped = np.asarray(eala_weights(q, k, estimator=estimator, nonnegative=True))
            assert signed.min() < -1e-3, estimator  # the uncapped weights do dip below zero here
            assert capped.min() >= -1e-15, estimator
            np.testing.assert_allclose(capped.sum(-1), 1.0, rtol=1e-12)
            out = np.asarray(eala_attention(q, k, v, estimator=estimator, nonnegative=True))
            np.testing.assert_allclose(
                out, np.einsum("bhts,bshe->bthe", capped, v), rtol=1e-10, atol=1e-12
            )


def test_segments_limits_give_gaussian_and_exact_outputs():
    q, k, v = qkv(40, q_scale=2.0)
    mask = key_mask(41)
    with jax.enable_x64(True):
        q, k, v = f64(q, k, v)
        run = lambda **kw: np.asarray(eala_attention(q, k, v, key_mask=mask, **kw))
        np.testing.assert_allclose(
            run(estimator="segments", num_segments=1),
            run(estimator="gaussian"),
            rtol=1e-12,
            atol=1e-12,
        )
        np.testing.assert_allclose(
            run(estimator="segments", num_segments=S), run(estimator="exact"), rtol=1e-9, atol=1e-12
        )
        assert np.abs(run(estimator="gaussian") - run(estimator="exact")).max() > 1e-3


def test_theta_zero_is_uniform_attention():
    q, k, v = qkv(42)
    mask = key_mask(43)
    got = eala_attention(q, k, v, key_mask=mask, theta=0.0)
    chex.assert_trees_all_close(
        got, uniform_attention(q, k, v, key_mask=mask), rtol=1e-6, atol=1e-6
    )
    want = np.stack([np.broadcast_to(v[b, mask[b]].mean(0), (T, H, DV)) for b in range(B)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_theta_gradient_false_stops_gradient_through_theta_only():
    """With theta_gradient=True the gradient is that of θ* = min(1, √(2 log M)/σ(q)) as a function
    of q (written here from the explicit scores); with False, that of θ held at its value."""
    q, k, v = f64(*qkv(44, q_scale=2.5))
    kc = k - k.mean(1, keepdims=True)
    comoment = np.einsum("bshd,bshe->bhde", kc, v) / S  # C / M
    with jax.enable_x64(True):
        loss = lambda q, tg: jnp.sum(
            eala_attention(q, k, v, estimator="gaussian", theta_gradient=tg) ** 2
        )
        g_on, g_off = np.asarray(jax.grad(loss)(q, True)), np.asarray(jax.grad(loss)(q, False))

        def explicit(q):  # o = v̄ + θ*(q) · scale · qᵀC/M with σ² from the T×S scores
            scores = 0.5 * jnp.einsum("bthd,bshd->bths", q, k)
            sigma = jnp.sqrt(jnp.var(scores, axis=-1))
            theta = jnp.minimum(1.0, math.sqrt(2 * math.log(S)) / sigma)
            linear = 0.5 * jnp.einsum("bthd,bhde->bthe", q, comoment)
            return jnp.sum((v.mean(1)[:, None] + theta[..., None] * linear) ** 2)

        np.testing.assert_allclose(g_on, np.asarray(jax.grad(explicit)(q)), rtol=1e-9, atol=1e-12)
        _, stats = eala_attention(q, k, v, estimator="gaussian", return_stats=True)
        theta0 = np.asarray(stats["theta"])
        # With θ held at its value θ₀: o = v̄ + θ₀ · scale · qᵀC/M (docs/method.md step 6).
        frozen = lambda q: jnp.sum(
            (
                v.mean(1)[:, None]
                + theta0[..., None] * 0.5 * jnp.einsum("bthd,bhde->bthe", q, comoment)
            )
            ** 2
        )
        np.testing.assert_allclose(g_off, np.asarray(jax.grad(frozen)(q)), rtol=1e-9, atol=1e-12)
    assert np.abs(g_on - g_off).max() > 1e-3  # θ depends on q here (σ² > 2 log M rows)


# ----------------------------------------------------------------------------------------------
# Properties (hypothesis).


@hypothesis.settings(max_examples=20, deadline=None, derandomize=True)
@hypothesis.given(
    seed=st.integers(0, 2**31 - 1),
    q_scale=st.floats(0.0, 5.0),
    k_offset=st.floats(-3.0, 3.0),
    p_valid=st.floats(0.0, 1.0),
    nonnegative=st.booleans(),
)
def test_rows_of_eala_weights_sum_to_one(seed, q_scale, k_offset, p_valid, nonnegative):
    q, k, _ = qkv(seed, q_scale=q_scale, k_offset=k_offset)
    mask = key_mask(seed + 1, p=p_valid)
    w = np.asarray(eala_weights(q, k, key_mask=mask, estimator="gaussian", nonnegative=nonnegative))
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    if nonnegative:
        assert w.min() >= -1e-6


@hypothesis.settings(max_examples=15, deadline=None, derandomize=True)
@hypothesis.given(
    seed=st.integers(0, 2**31 - 1),
    num_valid=st.sampled_from([1, 5, S]),
    estimator=st.sampled_from(["gaussian", "cumulant3"]),
)
def test_key_mask_equals_dropping_keys(seed, num_valid, estimator):
    q, k, v = qkv(seed, b=1)
    g = np.random.default_rng(seed)
    mask = np.zeros((1, S), bool)
    mask[0, g.choice(S, num_valid, replace=False)] = True
    got = eala_attention(q, k, v, key_mask=mask, estimator=estimator, nonnegative=True)
    want = eala_attention(q, k[:, mask[0]], v[:, mask[0]], estimator=estimator, nonnegative=True)
    chex.assert_trees_all_close(got, want, rtol=2e-5, atol=2e-5)


# ----------------------------------------------------------------------------------------------
# Degenerate input.


def test_degenerate_rows():
    q, k, v = qkv(45)
    mask = np.ones((B, S), bool)
    mask[0] = False  # no valid key → zeros (documented)
    mask[1] = False
    mask[1, 5] = True  # one valid key → its value
    for estimator in ("gaussian", "cumulant3", "segments", "exact"):
        out, stats = eala_attention(q, k, v, key_mask=mask, estimator=estimator, return_stats=True)
        np.testing.assert_array_equal(out[0], 0.0)
        np.testing.assert_allclose(out[1], np.broadcast_to(v[1, 5], (T, H, DV)), rtol=1e-6)
        assert all(np.all(np.isfinite(np.asarray(x))) for x in stats.values())
    # σ = 0 (all keys equal) → the mean of the values, whatever θ is; θ is reported as its σ → 0
    # limit, 1 (docs/method.md step 5).
    k_equal = np.broadcast_to(k[:, :1], k.shape)
    for estimator in ("gaussian", "cumulant3", "segments", "exact"):
        out, stats = eala_attention(
            q, k_equal, v, key_mask=all_valid(), estimator=estimator, return_stats=True
        )
        np.testing.assert_allclose(
            out, np.broadcast_to(v.mean(1, keepdims=True), out.shape), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(stats["theta"], 1.0)


@pytest.mark.parametrize(
    "estimator,options",
    [
        ("gaussian", {}),
        ("cumulant3", {}),
        ("segments", {}),
        ("exact", {}),
        ("random_features", dict(projection=RF_PROJECTION)),
    ],
)
def test_huge_and_zero_inputs_are_finite(estimator, options):
    q, k, v = qkv(46)
    qs = np.concatenate([1e4 * q, 0 * q, q])
    ks = np.concatenate([k, k, 0 * k])
    vs = np.concatenate([v, v, v])
    for nonnegative in (False, True) if estimator == "gaussian" else (False,):
        out, stats = eala_attention(
            qs, ks, vs, estimator=estimator, nonnegative=nonnegative, return_stats=True, **options
        )
        assert np.all(np.isfinite(np.asarray(out))), (estimator, nonnegative)
        assert all(np.all(np.isfinite(np.asarray(x))) for x in stats.values())
        # Zero queries or zero keys: every score is equal, the output is the mean of the values.
        mean_v = np.broadcast_to(v.mean(1, keepdims=True), (B, T, H, DV))
        np.testing.assert_allclose(out[B:], np.concatenate([mean_v, mean_v]), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# jit / no-jit, vmap, bf16, rank 3.


class JitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_and_no_jit_agree(self):
        q, k, v = qkv(47, q_scale=1.5)
        mask = key_mask(48)
        proj = RF_PROJECTION
        for estimator in ("cumulant3", "random_features"):
            fn = self.variant(
                functools.partial(eala_attention, estimator=estimator, return_stats=True)
            )
            extra = dict(projection=proj) if estimator == "random_features" else {}
            out, stats = fn(q, k, v, key_mask=mask, **extra)
            want = ref.eala(q, k, v, mask, estimator=estimator, projection=proj)
            np.testing.assert_allclose(out, want["out"], rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(stats["theta"], want["theta"], rtol=1e-4, atol=1e-4)


def test_vmap_over_extra_batch_axis_equals_loop():
    e = 3
    q, k, v = qkv(49, b=e * B)
    shape = lambda x: x.reshape((e, B) + x.shape[1:])
    q, k, v = shape(q), shape(k), shape(v)
    mask = key_mask(50, b=e * B).reshape(e, B, S)
    for estimator in ("cumulant3",):
        fn = functools.partial(eala_attention, estimator=estimator, nonnegative=True)
        got = jax.vmap(lambda q, k, v, m: fn(q, k, v, key_mask=m))(q, k, v, mask)
        chex.assert_shape(got, (e, B, T, H, DV))
        want = np.stack([fn(q[i], k[i], v[i], key_mask=mask[i]) for i in range(e)])
        chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
        assert np.abs(want[0] - want[1]).max() > 1e-2


def test_bfloat16_output_dtype_and_float32_statistics():
    q, k, v = qkv(51)
    mask = key_mask(52)
    bf = lambda x: jnp.asarray(x, jnp.bfloat16)
    for estimator in ("cumulant3",):
        out, stats = eala_attention(
            bf(q), bf(k), bf(v), key_mask=mask, estimator=estimator, return_stats=True
        )
        assert out.dtype == jnp.bfloat16
        for name, x in stats.items():
            assert x.dtype == jnp.float32, name
        want, want_stats = eala_attention(
            q, k, v, key_mask=mask, estimator=estimator, return_stats=True
        )
        np.testing.assert_allclose(np.asarray(out, np.float32), want, atol=0.05, rtol=0.05)
        np.testing.assert_allclose(stats["theta"], want_stats["theta"], atol=0.05, rtol=0.05)
    assert eala_weights(bf(q), bf(k), key_mask=mask).dtype == jnp.float32


def test_unbatched_rank3_inputs():
    q, k, v = qkv(53)
    mask = key_mask(54)
    out, stats = eala_attention(q[1], k[1], v[1], key_mask=mask[1], return_stats=True)
    chex.assert_shape(out, (T, H, DV))
    chex.assert_shape(stats["theta"], (T, H))
    chex.assert_trees_all_close(
        out, eala_attention(q, k, v, key_mask=mask)[1], rtol=1e-5, atol=1e-6
    )
    chex.assert_shape(eala_weights(q[1], k[1]), (H, T, S))
