"""LLN attention (arXiv 2311.13541) against its NumPy float64 reference (explicit weights), its
moment-matched temperature, causality, stability, gradients and options."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from eala_jax import LlnOptions, lln_attention, uniform_attention
from eala_jax.ops.lln import lln_temperature
from tests.ops import reference as ref
from tests.ops.helpers import f64, key_mask, qkv

# (t, s, d, dv, masked, causal, chunk, scale): T != S, Dv < D and > D, chunk 1, a chunk that does
# not divide T, one longer than T, and an explicit scale.
CASES = [
    (7, 12, 4, 3, False, False, 64, None),
    (7, 12, 4, 6, True, False, 64, 0.8),
    (5, 9, 8, 2, True, False, 64, None),
    (12, 12, 4, 3, False, True, 5, None),
    (12, 12, 4, 3, True, True, 1, None),
    (12, 12, 6, 5, True, True, 64, 0.3),
    (16, 16, 4, 3, True, True, 4, None),
]


def _case_inputs(seed, t, s, d, dv, masked, causal):
    q, k, v = qkv(seed, b=2, t=t, s=s, h=2, d=d, dv=dv, q_scale=1.5, k_offset=0.5)
    mask = key_mask(seed + 1, b=2, s=s, p=0.7) if masked else None
    if masked and causal:
        mask[1, :3] = False  # rows 0..2 of element 1 see no key: zeros
    return q, k, v, mask


@pytest.mark.parametrize("t,s,d,dv,masked,causal,chunk,scale", CASES)
def test_lln_matches_reference(t, s, d, dv, masked, causal, chunk, scale):
    q, k, v, mask = _case_inputs(200 + t + d + dv, t, s, d, dv, masked, causal)
    want, weights = ref.lln(q, k, v, mask, causal=causal, scale=scale)
    assert np.abs(np.diff(weights, axis=-1)).max() > 1e-2  # not uniform: τ > 0 matters
    fn = lambda q, k, v: lln_attention(
        q, k, v, key_mask=mask, causal=causal, chunk_size=chunk, scale=scale
    )
    with jax.enable_x64(True):
        got = np.asarray(jax.jit(fn)(*f64(q, k, v)))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    got32 = fn(q, k, v)
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(got32, want, rtol=2e-4, atol=2e-5)
    if masked and causal:
        np.testing.assert_array_equal(got[1, :3], 0.0)


def test_temperature_matches_reference_prefix_by_prefix():
    q, k, _ = qkv(210, t=10, s=10, q_scale=2.0, k_scale=0.5, k_offset=3.0)
    mask = key_mask(211, s=10)
    scale = 0.5
    with jax.enable_x64(True):
        full = np.asarray(lln_temperature(*f64(q, k), mask, scale=scale, causal=False))
        prefix = np.asarray(lln_temperature(*f64(q, k), mask, scale=scale, causal=True))
    assert full.shape == (2, 1, 2) and prefix.shape == (2, 10, 2)
    for b in range(2):
        for h in range(2):
            qh, kh, valid = q[b, :, h].astype(float), k[b, :, h].astype(float), mask[b]
            want = ref.lln_temperature(qh, kh[valid], scale)
            np.testing.assert_allclose(full[b, 0, h], want, rtol=1e-12)
            for i in range(10):
                want = ref.lln_temperature(qh[: i + 1], kh[: i + 1][valid[: i + 1]], scale)
                np.testing.assert_allclose(prefix[b, i, h], want, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(prefix[:, -1], full[:, 0], rtol=1e-12)  # the whole prefix


def test_temperature_both_branches_of_the_matching_function():
    """σ_sm² on both sides of the switch at 1 (log1p(D·expm1(x)) below, its rewriting above), and
    the limits: no spread gives τ = 0, a huge query spread stays finite."""
    g = np.random.default_rng(212)
    for q_scale in (0.3, 0.9, 1.1, 4.0, 30.0):
        q = q_scale * g.standard_normal((1, 20, 1, 4))
        k = g.standard_normal((1, 20, 1, 4))
        x = 4 * 0.25 * q[0, :, 0].var(0).mean() * k[0, :, 0].var(0).mean()
        want = ref.lln_temperature(q[0, :, 0], k[0, :, 0], 0.5)
        got = lln_temperature(
            q.astype(np.float32), k.astype(np.float32), None, scale=0.5, causal=False
        )
        np.testing.assert_allclose(got[0, 0, 0], want, rtol=2e-5, err_msg=f"σ_sm² = {x}")
    ones = np.ones((1, 5, 1, 4), np.float32)
    zero = lln_temperature(ones, ones, None, scale=1.0, causal=False)
    np.testing.assert_array_equal(zero, 0.0)


@pytest.mark.parametrize("causal", [False, True])
def test_uncentred_keys_match_reference(causal):
    """center_keys=False: the paper's exp(τ k), which a shared key shift does change."""
    q, k, v, mask = _case_inputs(225, 12, 12, 4, 3, True, causal)
    want, _ = ref.lln(q, k, v, mask, causal=causal, center_keys=False)
    fn = lambda q, k, v: lln_attention(
        q, k, v, key_mask=mask, causal=causal, chunk_size=5, center_keys=False
    )
    with jax.enable_x64(True):
        got = np.asarray(jax.jit(fn)(*f64(q, k, v)))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    centred, _ = ref.lln(q, k, v, mask, causal=causal)
    assert np.abs(centred - want).max() > 1e-2


@pytest.mark.parametrize("causal", [False, True])
def test_centred_keys_ignore_a_shift_shared_by_all_keys_as_softmax_does(causal):
    q, k, v, mask = _case_inputs(226, 12, 12, 4, 3, True, causal)
    shift = np.random.default_rng(227).standard_normal(4).astype(np.float32)
    for center_keys in (True, False):
        fn = functools.partial(lln_attention, key_mask=mask, causal=causal, center_keys=center_keys)
        a, b = np.asarray(fn(q, k, v)), np.asarray(fn(q, k + 2 * shift, v))
        if center_keys:
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
        else:
            assert np.abs(b - a).max() > 1e-2


def test_matched_weights_spread_as_the_softmax_model_says():
    """What the matching promises, checked by sampling rather than by the formula: for Gaussian
    coordinates, LLN's weights w = Σ_c exp(τ q_c + τ k_c) at the matched τ have the squared
    coefficient of variation of softmax's log-normal weights, Var/Mean² = e^{σ_sm²} − 1
    (σ_sm² = D·scale²·σ_q²·σ_k²); half the temperature falls well short."""
    g = np.random.default_rng(228)
    n, d, scale, sd_q, sd_k = 400_000, 4, 0.5, 1.0, 0.8
    q = sd_q * g.standard_normal((1, n, 1, d))
    k = sd_k * g.standard_normal((1, n, 1, d))
    with jax.enable_x64(True):
        tau = float(lln_temperature(q, k, None, scale=scale, causal=False)[0, 0, 0])
    target = np.expm1(d * scale**2 * sd_q**2 * sd_k**2)
    pairs = lambda t: np.exp(t * (q[0, :, 0] + k[0, ::-1, 0])).sum(axis=-1)  # independent q, k
    cv2 = lambda w: w.var() / w.mean() ** 2
    assert abs(cv2(pairs(tau)) / target - 1) < 0.05, (cv2(pairs(tau)), target)
    assert cv2(pairs(tau / 2)) < 0.5 * target


def test_fixed_temperature():
    q, k, v = qkv(213)
    mask = key_mask(214)
    np.testing.assert_allclose(
        lln_attention(q, k, v, key_mask=mask, temperature=0.0),
        uniform_attention(q, k, v, key_mask=mask),
        rtol=1e-6,
        atol=1e-6,
    )
    want, _ = ref.lln(q, k, v, mask, temperature=0.7)
    got = lln_attention(q, k, v, key_mask=mask, options=LlnOptions(temperature=0.7))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(got) - np.asarray(lln_attention(q, k, v, key_mask=mask))).max() > 1e-3


def test_causal_output_reads_no_later_position():
    """Changing positions > p (queries, keys, values, mask) leaves rows 0..p as they were: the
    temperatures come from prefixes too (statistics over the whole sequence would leak)."""
    q, k, v = f64(*qkv(215, t=12, s=12, q_scale=1.5))
    mask = key_mask(216, s=12)
    q2, k2, v2, mask2 = q.copy(), k.copy(), v.copy(), mask.copy()
    p = 5
    g = np.random.default_rng(217)
    for x in (q2, k2, v2):
        x[:, p + 1 :] = 3.0 * g.standard_normal(x[:, p + 1 :].shape)
    mask2[:, p + 1 :] = ~mask2[:, p + 1 :]
    with jax.enable_x64(True):
        fn = jax.jit(
            lambda q, k, v, m: lln_attention(q, k, v, key_mask=m, causal=True, chunk_size=4)
        )
        a, b = np.asarray(fn(q, k, v, mask)), np.asarray(fn(q2, k2, v2, mask2))
    np.testing.assert_allclose(b[:, : p + 1], a[:, : p + 1], rtol=1e-12, atol=1e-13)
    assert np.abs(b[:, p + 1 :] - a[:, p + 1 :]).min() > 0  # later rows do change


@pytest.mark.parametrize(
    "causal,center_keys,spread,offset,chunk",
    [
        (False, True, 8.0, 0.0, 64),
        (True, True, 8.0, 0.0, 5),
        (False, False, 1.0, 100.0, 64),
        # Uncentred causal keys around 100: τ_j·k_j grows with j (τ_0 = 0), so the running shift
        # must keep each row's keys in range; one row a chunk, it is that row's own maximum.
        (True, False, 1.0, 100.0, 1),
    ],
)
def test_large_inputs_are_stable_in_float32(causal, center_keys, spread, offset, chunk):
    """Query and key exponents beyond float32's e^88 (a spread of 8 in both, or keys around 100
    uncentred): the shifts keep every feature in range and cancel exactly."""
    q, k, v = qkv(218, t=12, s=12, q_scale=spread, k_scale=spread, k_offset=offset)
    mask = key_mask(219, s=12)
    want, _ = ref.lln(q, k, v, mask, causal=causal, center_keys=center_keys)
    q0, k0 = q[0, :, 0].astype(float), k[0, :, 0][mask[0]].astype(float)
    tau = ref.lln_temperature(q0, k0, 0.5)
    k0 = k0 - k0.mean(0) if center_keys else k0
    assert tau * np.abs(k0).max() > 89.0  # an unshifted key feature would be inf in float32
    if spread > 1:
        assert tau * np.abs(q0).max() > 89.0  # and a query feature
    got = lln_attention(
        q, k, v, key_mask=mask, causal=causal, chunk_size=chunk, center_keys=center_keys
    )
    assert np.all(np.isfinite(np.asarray(got)))
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)


GRAD = dict(order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_lln_gradients(causal):
    """Through the features, the key means and the temperature's variances, forward and reverse,
    float64; a masked key and, causal, chunks that do not divide T."""
    q, k, v = f64(*qkv(220, b=1, t=5, s=5, h=2, d=3, dv=2, q_scale=1.3))
    mask = np.array([[True, False, True, True, True]])
    f = functools.partial(lln_attention, key_mask=mask, causal=causal, chunk_size=2)
    with jax.enable_x64(True):
        check_grads(jax.jit(f), (q, k, v), **GRAD)
        # The temperature's own gradient, which the output's check could hide if it were small.
        tau = jax.jit(lambda q, k: lln_temperature(q, k, mask, scale=0.5, causal=causal))
        check_grads(tau, (q, k), **GRAD)
        assert np.abs(np.asarray(jax.grad(lambda q: tau(q, k).sum())(q))).max() > 1e-2


@pytest.mark.parametrize("causal", [False, True])
def test_element_without_a_valid_key_has_zero_finite_gradients(causal):
    q, k, v = qkv(221, t=12, s=12)
    mask = key_mask(222, s=12)
    mask[0] = False
    cotangent = np.random.default_rng(223).standard_normal(v.shape)
    loss = lambda q, k, v: jnp.sum(lln_attention(q, k, v, key_mask=mask, causal=causal) * cotangent)
    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
    for name, g in zip("qkv", grads, strict=True):
        g = np.asarray(g)
        assert np.all(np.isfinite(g)), name
        np.testing.assert_array_equal(g[0], 0.0, err_msg=name)
        assert np.abs(g[1]).max() > 1e-3, name


@pytest.mark.parametrize(
    "field,bad,expected",
    [
        ("temperature", -0.5, "one of 'matched' or a finite number >= 0"),
        ("temperature", float("nan"), "one of 'matched' or a finite number >= 0"),
        ("temperature", "optimal", "one of 'matched' or a finite number >= 0"),
        ("temperature", True, "one of 'matched' or a finite number >= 0"),
        ("chunk_size", 0, "an integer >= 1"),
        ("scale", -1.0, "a finite number > 0"),
        ("causal", "yes", "a boolean"),
        ("center_keys", 1, "a boolean"),
    ],
)
def test_bad_options_name_the_field(field, bad, expected):
    with pytest.raises(ValueError, match=rf"^lln\.{field}=.*; expected {expected}"):
        LlnOptions(**{field: bad})
    q, k, v = qkv(224)
    with pytest.raises(ValueError, match=rf"^{field}=.*; expected {expected}"):
        lln_attention(q, k, v, **{field: bad})
