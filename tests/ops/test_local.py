"""eala_local_attention against the NumPy float64 reference (tests/ops/reference.py), its weights
(read off with one-hot values), its two limits (no local key: EALA; every key local: softmax),
argument checks and gradients."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from eala_jax import (
    EalaLocalOptions,
    eala_attention,
    eala_local_attention,
    get_attention,
    softmax_attention,
)
from tests.ops import reference as ref
from tests.ops.helpers import key_mask, qkv

B, T, S, H, D, DV = 2, 7, 12, 2, 4, 3


def _neighbours(seed, t=T, s=S, k=4):
    """Random local keys with -1 padding and repeats."""
    g = np.random.default_rng(seed)
    table = g.integers(-1, s, size=(t, k)).astype(np.int32)
    table[0, 1] = table[0, 0] = 3  # a repeat
    return table


def _rest_sizes(neighbours, mask, causal=False):
    """`[B, T]` number of visible non-local keys of each query."""
    out = np.zeros((mask.shape[0], neighbours.shape[0]), int)
    for b in range(mask.shape[0]):
        for i in range(neighbours.shape[0]):
            valid = mask[b] & ((np.arange(mask.shape[1]) <= i) if causal else True)
            local = {j for j in neighbours[i] if j >= 0 and valid[j]}
            out[b, i] = valid.sum() - len(local)
    return out


@pytest.mark.parametrize(
    "q_scale,options",
    [(1.0, {}), (3.0, {}), (3.0, dict(nonnegative=True)), (1.0, dict(theta=0.5))],
    ids=["broad", "sharp", "sharp-nonneg", "fixed-theta"],
)
def test_matches_reference(q_scale, options):
    q, k, v = qkv(210, q_scale=q_scale)
    mask = key_mask(211)
    table = _neighbours(212)
    out, stats = eala_local_attention(q, k, v, table, key_mask=mask, return_stats=True, **options)
    r = ref.eala_local(q, k, v, table, mask, **options)
    np.testing.assert_allclose(out, r["out"], atol=2e-5, rtol=1e-4)
    for name in ("local_mass", "entropy"):
        np.testing.assert_allclose(stats[name], r[name], atol=2e-5, rtol=1e-4, err_msg=name)
    several = (_rest_sizes(table, mask) >= 2)[..., None]  # θ is moot with one non-local key
    np.testing.assert_allclose(
        np.where(several, stats["theta"], 0), np.where(several, r["theta"], 0), atol=1e-5, rtol=1e-4
    )
    assert 0.05 < np.mean(r["local_mass"]) < 0.95  # both parts carry weight


def test_matches_reference_float64_and_rank3():
    q, k, v = (x.astype(np.float64) for x in qkv(213, q_scale=2.0))
    mask = key_mask(214)
    table = _neighbours(215)
    r = ref.eala_local(q, k, v, table, mask)
    with jax.enable_x64(True):
        out = eala_local_attention(q, k, v, table, key_mask=mask)
        single = eala_local_attention(q[1], k[1], v[1], table, key_mask=mask[1])
    np.testing.assert_allclose(out, r["out"], atol=1e-11)
    np.testing.assert_allclose(single, r["out"][1], atol=1e-11)


@pytest.mark.parametrize("chunk", [3, 64])
def test_causal_window_matches_reference(chunk):
    q, k, v = qkv(216, t=S, q_scale=2.0)
    mask = key_mask(217)
    mask[:, 0] = False  # the first query sees no key at all
    out, stats = eala_local_attention(
        q, k, v, key_mask=mask, causal=True, num_local=3, chunk_size=chunk, return_stats=True
    )
    table = ref_window = np.array([[i - 2, i - 1, i] for i in range(S)])
    r = ref.eala_local(q, k, v, np.where(ref_window >= 0, table, -1), mask, causal=True)
    np.testing.assert_allclose(out, r["out"], atol=3e-5, rtol=1e-4)
    np.testing.assert_allclose(stats["entropy"], r["entropy"], atol=3e-5, rtol=1e-4)
    np.testing.assert_array_equal(out[:, 0], 0.0)


def test_causal_drops_later_neighbours():
    """With causal=True a neighbour j > i is dropped like a masked key."""
    q, k, v = qkv(218, t=S)
    table = np.tile(np.arange(S - 4, S, dtype=np.int32), (S, 1))  # the last 4 keys, for every query
    out = eala_local_attention(q, k, v, table, causal=True)
    r = ref.eala_local(q, k, v, table, causal=True)
    np.testing.assert_allclose(out, r["out"], atol=3e-5, rtol=1e-4)


def _weights(q, k, table, **options):
    """The op's weight matrix `[B, T, H, S]`, read off with one-hot values (the op is linear in
    v)."""
    eye = np.broadcast_to(
        np.eye(k.shape[1], dtype=q.dtype)[None, :, None], k.shape[:3] + (k.shape[1],)
    )
    return np.asarray(eala_local_attention(q, k, eye, table, **options))


@pytest.mark.parametrize("nonnegative", [False, True])
def test_rows_are_distributions(nonnegative):
    q, k, _ = qkv(219, q_scale=4.0)
    mask = key_mask(220)
    table = _neighbours(221)
    w = _weights(q, k, table, key_mask=mask, nonnegative=nonnegative)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(w[~np.broadcast_to(mask[:, None, None], w.shape)], 0.0)
    r = ref.eala_local(q, k, np.zeros(k.shape[:-1] + (1,)), table, mask, nonnegative=nonnegative)
    np.testing.assert_allclose(np.moveaxis(w, 2, 1), r["weights"], atol=2e-5)
    # The local keys' weights are a softmax's share, >= 0 (up to the float32 rounding of the
    # rest's terms, which cancel there).
    local = np.zeros(w.shape, bool)
    for i, row in enumerate(table):
        local[:, i, :, row[row >= 0]] = True
    assert w[local].min() >= -1e-7
    if nonnegative:
        assert w.min() >= -1e-7
    else:
        assert w.min() < -1e-3  # the cap is what keeps the sharp rows non-negative


def test_limits_eala_and_softmax():
    q, k, v = qkv(222, q_scale=2.0)
    mask = key_mask(223)
    empty = np.full((T, 3), -1, np.int32)
    np.testing.assert_allclose(
        eala_local_attention(q, k, v, empty, key_mask=mask),
        eala_attention(q, k, v, key_mask=mask),
        atol=1e-6,
    )
    every = np.tile(np.arange(S, dtype=np.int32), (T, 1))
    np.testing.assert_allclose(
        eala_local_attention(q, k, v, every, key_mask=mask),
        softmax_attention(q, k, v, key_mask=mask),
        atol=1e-6,
    )


def test_degenerate_inputs_and_dtypes():
    """No valid key: zeros; one valid key: its value; equal keys: the mean value; huge and zero
    vectors: finite; bfloat16 in, bfloat16 out."""
    q, k, v = qkv(228)
    table = _neighbours(229)
    mask = np.ones((B, S), bool)
    mask[0] = False
    mask[1] = False
    mask[1, 4] = True
    out = np.asarray(eala_local_attention(q, k, v, table, key_mask=mask))
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(out[1], np.broadcast_to(v[1, 4], (T, H, DV)), rtol=1e-5, atol=1e-6)
    equal = np.broadcast_to(k[:, :1], k.shape)
    mean_v = np.broadcast_to(v.mean(1, keepdims=True), out.shape)
    for qq, kk in ((q, equal), (0 * q, k)):
        np.testing.assert_allclose(
            eala_local_attention(qq, kk, v, table), mean_v, rtol=1e-5, atol=1e-6
        )
    for qq, kk in ((1e4 * q, k), (q, 0 * k), (0 * q, 0 * k)):
        assert np.all(np.isfinite(eala_local_attention(qq, kk, v, table)))
    bf = lambda x: np.asarray(x, jnp.bfloat16)
    low = eala_local_attention(bf(q), bf(k), bf(v), table)
    assert low.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(low, np.float32), eala_local_attention(q, k, v, table), atol=0.06, rtol=0.06
    )


def test_registered_and_window_default():
    fn, options = get_attention("eala_local"), EalaLocalOptions
    assert fn is eala_local_attention and options.name == "eala_local"
    q, k, v = qkv(224, t=S)
    window = np.array([[j if j >= 0 else -1 for j in range(i - 4, i + 1)] for i in range(S)])
    np.testing.assert_allclose(
        fn(q, k, v, options=options(num_local=5)), fn(q, k, v, window.astype(np.int32)), atol=0
    )
    centred = np.array([[j if 0 <= j < S else -1 for j in range(i - 1, i + 3)] for i in range(S)])
    np.testing.assert_allclose(
        fn(q, k, v, num_local=4, window="centred"), fn(q, k, v, centred.astype(np.int32)), atol=0
    )


def test_bad_arguments():
    q, k, v = qkv(225)
    with pytest.raises(ValueError, match=r"neighbours must be an integer array \[queries=7, K\]"):
        eala_local_attention(q, k, v, np.zeros((T, 2), np.float32))
    with pytest.raises(ValueError, match=r"neighbours must be an integer array"):
        eala_local_attention(q, k, v, np.zeros((T + 1, 2), np.int32))
    with pytest.raises(ValueError, match=r"key indices in \[0, 12\) or -1; got values from -2"):
        eala_local_attention(q, k, v, np.full((T, 2), -2, np.int32))
    with pytest.raises(ValueError, match=r"got values from 0 to 12"):
        eala_local_attention(q, k, v, np.array([[0, 12]] * T, np.int32))
    with pytest.raises(ValueError, match="needs as many queries as keys"):
        eala_local_attention(q, k, v)
    with pytest.raises(ValueError, match="nonnegative"):
        EalaLocalOptions(causal=True, nonnegative=True)
    with pytest.raises(ValueError, match="window='past'"):
        EalaLocalOptions(causal=True, window="centred")
    with pytest.raises(ValueError, match=r"eala_local.num_local=0; expected an integer >= 1"):
        EalaLocalOptions(num_local=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        eala_local_attention(q, k, v, num_segments=3)


# ----------------------------------------------------------------------------------------------
# Gradients (float64, away from the kinks: σ_R² = 2 log n_R, where the estimate of the rest is
# clipped and the log-partition freezes; the nonnegative cap).

SMALL = dict(b=1, t=4, s=7, h=2, d=3, dv=2)
TOL = dict(order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-6, rtol=1e-6)
REV = dict(TOL, modes=("rev",))  # the slower cases: reverse mode only


def _rest_margin(q, k, table, causal=False):
    scale = 1 / math.sqrt(q.shape[-1])
    gaps = []
    for i, row in enumerate(table):
        visible = [j for j in range(k.shape[1]) if not causal or j <= i]
        rest = [j for j in visible if j not in set(row.tolist())]
        if len(rest) < 2:
            continue
        for h in range(q.shape[2]):
            s = scale * k[0, rest, h] @ q[0, i, h]
            gaps.append(abs(s.var() - 2 * math.log(len(rest))))
    return min(gaps)


@pytest.mark.parametrize(
    "q_scale,options", [(1.0, {}), (3.0, {}), (2.0, dict(causal=True, chunk_size=3))]
)
def test_gradients(q_scale, options):
    q, k, v = (x.astype(np.float64) for x in qkv(226, q_scale=q_scale, **SMALL))
    if options.get("causal"):
        table = np.array([[i - 1, i] for i in range(7)], np.int32)
        table[table < 0] = -1
        q = np.asarray(qkv(226, q_scale=q_scale, **dict(SMALL, t=7))[0], np.float64)
    else:
        table = np.array([[0, 3], [1, -1], [6, 2], [5, 5]], np.int32)
    assert _rest_margin(q, k, table, options.get("causal", False)) > 1e-3
    f = functools.partial(eala_local_attention, neighbours=table, **options)
    with jax.enable_x64(True):
        check_grads(f, (q, k, v), **(REV if options else TOL))


def test_gradients_nonnegative_cap_binding():
    q, k, v = (x.astype(np.float64) for x in qkv(227, q_scale=2.5, **SMALL))
    table = np.array([[0, 3], [1, -1], [6, 2], [5, 4]], np.int32)
    r = ref.eala_local(q, k, v, table)
    capped = ref.eala_local(q, k, v, table, nonnegative=True)
    assert np.any(capped["theta"] < r["theta"] * 0.99)  # the cap binds somewhere
    assert np.min(np.abs(capped["theta"] - r["theta"])[capped["theta"] < r["theta"]]) > 1e-3
    assert _rest_margin(q, k, table) > 1e-3
    f = functools.partial(eala_local_attention, neighbours=table, nonnegative=True)
    with jax.enable_x64(True):
        check_grads(f, (q, k, v), **REV)


@pytest.mark.parametrize("causal", [False, True], ids=["noncausal", "causal"])
def test_large_key_mean_costs_no_precision(causal):
    """Keys N(3000, 1): float32 within 2e-6 of the float64 reference (raw scores of 3000·‖q‖ would
    lose about 1e-3: the op works relative to the first valid key)."""
    q, k, v = qkv(253, t=S, k_offset=3000.0)
    mask = key_mask(254)
    table = np.array([[j if j >= 0 else -1 for j in range(i - 2, i + 1)] for i in range(S)])
    table = table.astype(np.int32)
    out = eala_local_attention(q, k, v, table, key_mask=mask, causal=causal)
    r = ref.eala_local(q, k, v, table, mask, causal=causal)
    np.testing.assert_allclose(out, r["out"], atol=2e-6)
