"""Masked metrics against float64 NumPy references; all-missing batches; accumulation independent of
batching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eala_jax.metrics import (
    MAPE_MIN_TARGET,
    MetricAccumulator,
    format_horizon_table,
    horizon_sums,
    masked_huber,
    masked_mae,
    masked_mape,
    masked_rmse,
    subset_scores,
    window_sums,
)


def _data(seed=0, shape=(4, 12, 5)):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.0, 80.0, size=shape)
    target[rng.random(shape) < 0.1] = 0.0  # zeros: real values unless masked
    mask = rng.random(shape) > 0.3
    target[~mask & (rng.random(shape) < 0.5)] = np.nan  # NaN only where masked out
    pred = target + rng.normal(0, 5, size=shape)
    pred = np.where(np.isnan(pred), 1.0, pred)
    return pred.astype(np.float32), target.astype(np.float32), mask


def _ref(pred, target, mask, min_target=MAPE_MIN_TARGET, delta=1.0):
    p, t = pred.astype(np.float64)[mask], target.astype(np.float64)[mask]
    e = np.abs(p - t)
    m = np.abs(t) >= min_target
    huber = np.where(e <= delta, 0.5 * e**2, delta * (e - 0.5 * delta))
    return dict(
        mae=e.mean(),
        rmse=np.sqrt((e**2).mean()),
        mape=100 * (e[m] / np.abs(t[m])).mean(),
        huber=huber.mean(),
    )


def test_metrics_match_numpy():
    pred, target, mask = _data()
    ref = _ref(pred, target, mask)
    np.testing.assert_allclose(masked_mae(pred, target, mask), ref["mae"], rtol=1e-5)
    np.testing.assert_allclose(masked_rmse(pred, target, mask), ref["rmse"], rtol=1e-5)
    np.testing.assert_allclose(masked_mape(pred, target, mask), ref["mape"], rtol=1e-5)
    np.testing.assert_allclose(masked_huber(pred, target, mask), ref["huber"], rtol=1e-5)
    np.testing.assert_allclose(
        masked_huber(pred, target, mask, delta=3.0),
        _ref(pred, target, mask, delta=3.0)["huber"],
        rtol=1e-5,
    )
    jitted = jax.jit(masked_mae)(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
    np.testing.assert_allclose(jitted, ref["mae"], rtol=1e-5)


@pytest.mark.parametrize("loss", ["mae", "huber"])
def test_losses_divide_by_a_given_count_and_shards_sum_to_the_whole(loss):
    """The training loss under data parallelism: each shard's masked sum divided by the global
    valid count; the shards' values (and gradients) add up to the loss of the whole batch."""
    pred, target, mask = _data(seed=2)
    fn = masked_mae if loss == "mae" else masked_huber
    count = float(mask.sum())
    e = np.abs(pred.astype(np.float64) - np.nan_to_num(target.astype(np.float64)))
    per_entry = e if loss == "mae" else np.where(e <= 1.0, 0.5 * e**2, e - 0.5)
    np.testing.assert_allclose(
        fn(pred, target, mask, count=jnp.float32(3 * count)),
        per_entry[mask].sum() / (3 * count),
        rtol=1e-5,
    )
    shards = [slice(0, 1), slice(1, 4)]  # uneven valid counts
    value = sum(fn(pred[s], target[s], mask[s], count=count) for s in shards)
    np.testing.assert_allclose(value, fn(pred, target, mask), rtol=1e-6)
    whole = jax.grad(fn)(jnp.asarray(pred), target, mask)
    for s in shards:
        grad = jax.grad(lambda p, s=s: fn(p, target[s], mask[s], count=count))(pred[s])
        np.testing.assert_allclose(grad, whole[s], rtol=1e-6, atol=1e-9)


def test_mape_threshold_excludes_zero_and_tiny_targets():
    pred = np.array([1.0, 2.0, 3.0, 5.0], np.float32)
    target = np.array([0.0, 1e-4, 2.0, 4.0], np.float32)
    mask = np.ones(4, bool)  # zeros here are *valid* for MAE; MAPE alone skips them
    assert float(masked_mape(pred, target, mask)) == pytest.approx(100 * (0.5 + 0.25) / 2)
    assert float(masked_mape(pred, target, mask, min_target=3.0)) == pytest.approx(25.0)
    assert float(masked_mae(pred, target, mask)) == pytest.approx(
        (1 + 2 - 1e-4 + 1 + 1) / 4, rel=1e-6
    )
    assert np.isfinite(float(masked_mape(pred, np.zeros(4, np.float32), mask)))


@pytest.mark.parametrize("loss", [masked_mae, masked_rmse, masked_mape, masked_huber])
def test_all_missing_gives_zero_loss_and_zero_gradient(loss):
    pred = jnp.ones((2, 3, 4))
    target = jnp.full((2, 3, 4), jnp.nan)
    mask = jnp.zeros((2, 3, 4), bool)
    value, grad = jax.value_and_grad(loss)(pred, target, mask)
    assert float(value) == 0.0
    assert np.all(np.asarray(grad) == 0.0)


@pytest.mark.parametrize("loss", [masked_mae, masked_rmse, masked_mape, masked_huber])
def test_masked_nan_targets_do_not_leak_into_gradients(loss):
    pred, target, mask = _data(seed=1)
    grad = jax.grad(loss)(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
    assert np.isfinite(np.asarray(grad)).all()
    assert np.all(np.asarray(grad)[~mask] == 0.0) and np.any(np.asarray(grad)[mask] != 0.0)


def test_rmse_gradient_is_finite_at_zero_error():
    target = jnp.arange(6.0).reshape(2, 3)
    grad = jax.grad(masked_rmse)(target, target, jnp.ones((2, 3), bool))
    assert np.all(np.asarray(grad) == 0.0)


def test_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        masked_mae(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.ones((3, 2), bool))
    with pytest.raises(ValueError, match=r"\[B, T_out, N\]"):
        horizon_sums(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.ones((2, 3), bool))
    with pytest.raises(ValueError, match="delta"):
        masked_huber(jnp.ones(2), jnp.ones(2), jnp.ones(2, bool), delta=0.0)


def _ref_horizons(pred, target, mask, min_target=MAPE_MIN_TARGET):
    p, t = pred.astype(np.float64), np.nan_to_num(target.astype(np.float64))
    m = mask & np.isfinite(target)
    e = np.where(m, np.abs(p - t), 0.0)
    mm = m & (np.abs(t) >= min_target)
    pct = np.where(mm, e / np.where(mm, np.abs(t), 1.0), 0.0)
    count, mape_count = m.sum((0, 2)), mm.sum((0, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return _ratios(e, pct, m, mm, count, mape_count)


def _ratios(e, pct, m, mm, count, mape_count):
    return dict(
        mae=e.sum((0, 2)) / count,
        mse=(e**2).sum((0, 2)) / count,
        mse_mean=(e**2).sum() / m.sum(),
        rmse=np.sqrt((e**2).sum((0, 2)) / count),
        mape=100 * pct.sum((0, 2)) / mape_count,
        mae_mean=e.sum() / m.sum(),
        rmse_mean=np.sqrt((e**2).sum() / m.sum()),
        mape_mean=100 * pct.sum() / mm.sum(),
        count=count,
    )


def test_horizon_sums_and_accumulator_match_numpy():
    pred, target, mask = _data(seed=2, shape=(6, 12, 7))
    sums = jax.jit(horizon_sums)(pred, target, mask)
    assert {k: v.shape for k, v in sums.items()} == {k: (12,) for k in sums}
    assert sums["count"].dtype == jnp.int32
    acc = MetricAccumulator()
    acc.add(sums)
    result, ref = acc.result(), _ref_horizons(pred, target, mask)
    for key in ("mae", "mse", "rmse", "mape", "mae_mean", "mse_mean", "rmse_mean", "mape_mean"):
        np.testing.assert_allclose(result[key], ref[key], rtol=1e-5, err_msg=key)
    np.testing.assert_array_equal(result["count"], ref["count"])


def test_all_missing_batch_contributes_nothing_and_means_are_count_weighted():
    pred, target, mask = _data(seed=3, shape=(2, 3, 4))
    acc = MetricAccumulator()
    acc.add(horizon_sums(pred, target, mask))
    before = acc.result()
    acc.add(horizon_sums(jnp.ones((5, 3, 4)), jnp.zeros((5, 3, 4)), jnp.zeros((5, 3, 4), bool)))
    after = acc.result()
    for key in ("mae", "rmse", "mape"):
        np.testing.assert_array_equal(before[key], after[key])
    # Two batches, 1 valid entry with error 10 and 3 with error 2: the pooled mean is 4, not (10 +
    # 2) / 2.
    acc = MetricAccumulator()
    one = np.zeros((1, 1, 3), bool)
    one[0, 0, 0] = True
    acc.add(horizon_sums(np.full((1, 1, 3), 20.0), np.full((1, 1, 3), 10.0), one))
    acc.add(
        horizon_sums(np.full((1, 1, 3), 12.0), np.full((1, 1, 3), 10.0), np.ones((1, 1, 3), bool))
    )
    assert acc.result()["mae_mean"] == pytest.approx(4.0)
    assert acc.result()["rmse_mean"] == pytest.approx(np.sqrt((100 + 3 * 4) / 4))


def test_horizon_with_nothing_valid_is_nan_not_zero():
    mask = np.zeros((2, 3, 4), bool)
    mask[:, 0] = True
    acc = MetricAccumulator()
    acc.add(horizon_sums(np.ones((2, 3, 4)), np.full((2, 3, 4), 2.0), mask))
    result = acc.result()
    assert (
        result["mae"][0] == 1.0 and np.isnan(result["mae"][1:]).all() and result["mae_mean"] == 1.0
    )
    with pytest.raises(ValueError, match="no batch"):
        MetricAccumulator().result()
    with pytest.raises(ValueError, match="shape"):
        acc.add(horizon_sums(np.ones((1, 2, 4)), np.ones((1, 2, 4)), np.ones((1, 2, 4), bool)))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    total=st.integers(1, 12),
    batch_size=st.integers(1, 12),
    missing=st.floats(0.0, 1.0),
)
def test_accumulation_is_independent_of_batch_size(seed, total, batch_size, missing):
    rng = np.random.default_rng(seed)
    shape = (total, 3, 2)
    target = rng.uniform(-5.0, 50.0, shape).astype(np.float32)
    target[rng.random(shape) < 0.2] = 0.0
    mask = rng.random(shape) >= missing
    pred = (target + rng.normal(0.0, 3.0, shape)).astype(np.float32)
    whole, batched = MetricAccumulator(), MetricAccumulator()
    whole.add(horizon_sums(pred, target, mask))
    for start in range(0, total, batch_size):
        batched.add(
            horizon_sums(
                pred[start : start + batch_size],
                target[start : start + batch_size],
                mask[start : start + batch_size],
            )
        )
    a, b = whole.result(), batched.result()
    np.testing.assert_array_equal(a["count"], b["count"])
    for key in ("mae", "rmse", "mape", "mae_mean", "rmse_mean", "mape_mean"):
        np.testing.assert_allclose(a[key], b[key], rtol=2e-5, equal_nan=True, err_msg=key)
    if mask.any():
        ref = _ref_horizons(pred, target, mask)
        np.testing.assert_allclose(b["mae_mean"], ref["mae_mean"], rtol=2e-5)


def test_window_sums_match_a_per_window_numpy_loop():
    pred, target, mask = _data(seed=5, shape=(9, 12, 7))
    mask[4] = False  # a window with nothing valid
    sums = window_sums(pred, target, mask)
    assert {k: v.shape for k, v in sums.items()} == {
        k: (9,) for k in ("abs_err", "sq_err", "count")
    }
    for w in range(9):
        valid = mask[w] & np.isfinite(target[w])
        e = pred[w].astype(np.float64)[valid] - target[w].astype(np.float64)[valid]
        assert sums["count"][w] == valid.sum()
        np.testing.assert_allclose(sums["abs_err"][w], np.abs(e).sum(), rtol=1e-12)
        np.testing.assert_allclose(sums["sq_err"][w], (e**2).sum(), rtol=1e-12)
    assert sums["count"][4] == 0 and sums["sq_err"][4] == 0.0  # NaN targets there do not leak


def test_subset_scores_equal_the_accumulator_over_those_windows_only():
    pred, target, mask = _data(seed=6, shape=(10, 12, 5))
    sums = window_sums(pred, target, mask)
    for windows in (slice(None), slice(0, 8), np.array([1, 3, 9])):
        acc = MetricAccumulator()
        acc.add(horizon_sums(pred[windows], target[windows], mask[windows]))
        scores, ref = subset_scores(sums, windows), acc.result()
        assert scores["mse"] == pytest.approx(ref["mse_mean"], rel=1e-5)
        assert scores["mae"] == pytest.approx(ref["mae_mean"], rel=1e-5)
    # The first 8 windows score differently from all 10 (the subset is really used).
    assert subset_scores(sums, slice(0, 8))["mse"] != subset_scores(sums, slice(None))["mse"]
    empty = window_sums(pred[:2], target[:2], np.zeros((2, 12, 5), bool))
    assert np.isnan(subset_scores(empty, slice(None))["mse"])
    with pytest.raises(ValueError, match=r"window_sums: .*\[W, T_out, N\]"):
        window_sums(pred[0], target[0], mask[0])
    with pytest.raises(ValueError, match="subset_scores: sums lack"):
        subset_scores({"sq_err": sums["sq_err"]}, slice(None))


def test_format_horizon_table():
    result = {
        "mae": np.arange(1.0, 13.0),
        "rmse": np.arange(1.0, 13.0) * 2,
        "mape": np.arange(1.0, 13.0) * 3,
        "mae_mean": 6.5,
        "rmse_mean": 13.0,
        "mape_mean": 19.5,
    }
    table = format_horizon_table(result)
    lines = table.splitlines()
    assert lines[0] == "| horizon | MAE | RMSE | MAPE (%) |"
    assert lines[2] == "| 3 | 3.000 | 6.000 | 9.00 |"
    assert lines[4] == "| 12 | 12.000 | 24.000 | 36.00 |"
    assert lines[5] == "| mean 1-12 | 6.500 | 13.000 | 19.50 |"
    with pytest.raises(ValueError, match="horizon 13 outside 1..12"):
        format_horizon_table(result, horizons=(13,))
