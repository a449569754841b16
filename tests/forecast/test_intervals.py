"""Split-conformal half-widths against a brute-force reference, coverage on exchangeable data,
and the intervals / guard a run writes into its results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from eala_jax.train.intervals import check_levels, conformal_intervals, coverage


def _reference(scores: list[float], level: float) -> float:
    """The smallest residual s with #{scores <= s} >= (m + 1)·level (inf when none)."""
    m = len(scores)
    for s in sorted(scores):
        if sum(x <= s for x in scores) >= math.ceil((m + 1) * level - 1e-12):
            return s
    return math.inf


def test_half_widths_match_the_brute_force_quantile_per_node_and_pooled():
    rng = np.random.default_rng(3)
    w, t_out, n = 40, 3, 4
    pred = rng.normal(size=(w, t_out, n))
    target = pred + rng.standard_t(3, size=(w, t_out, n)) * (1 + np.arange(n))
    mask = rng.random((w, t_out, n)) > 0.1
    mask[:, :, 3] &= rng.random((w, t_out)) > 0.8  # node 3: few valid targets -> pooled
    out = conformal_intervals(pred, target, mask, levels=(0.8, 0.95), min_per_node=20)
    residual = np.abs(target - pred)
    for i, level in enumerate((0.8, 0.95)):
        for h in range(t_out):
            pooled_scores = residual[:, h][mask[:, h]].tolist()
            for node in range(n):
                own = residual[:, h, node][mask[:, h, node]].tolist()
                expected = _reference(own, level)
                use_pool = len(own) < 20 or math.isinf(expected)
                if use_pool:
                    expected = _reference(pooled_scores, level)
                assert out.pooled[i, h, node] == use_pool
                assert out.half_width[i, h, node] == pytest.approx(expected, rel=1e-12)
    assert out.pooled[:, :, 3].all() and not out.pooled[0, :, 0].any()


def test_coverage_is_nominal_on_exchangeable_residuals():
    rng = np.random.default_rng(0)
    shape = (4000, 2, 3)
    val_pred, test_pred = rng.normal(size=shape), rng.normal(size=shape)
    val_target = val_pred + rng.laplace(size=shape)
    test_target = test_pred + rng.laplace(size=shape)
    mask = np.ones(shape, bool)
    intervals = conformal_intervals(val_pred, val_target, mask)
    result = coverage(intervals, test_pred, test_target, mask)
    assert set(result) == {"80", "95"}
    for key, level in (("80", 0.8), ("95", 0.95)):
        assert abs(result[key]["coverage_mean"] - level) < 0.01
        # Laplace(1): |residual| quantile at L is -log(1 - L); width 2q.
        assert result[key]["mean_width_mean"] == pytest.approx(-2 * np.log(1 - level), rel=0.05)


@pytest.mark.parametrize("bad", [(), (0.8, 1.0), (0.0,), (0.8, 0.8), ("x",)])
def test_bad_levels_are_refused(bad):
    with pytest.raises(ValueError, match="levels must be"):
        check_levels(bad)


def test_a_run_reports_test_coverage_width_and_the_guard(trained):
    workdir, results = trained
    saved = json.loads((workdir / "results.json").read_text())
    for record in (results, saved):
        test = record["intervals"]["test"]
        assert set(test) == {"80", "95"}
        assert len(test["80"]["coverage"]) == len(test["95"]["mean_width"]) == 12
        assert all(0 <= c <= 1 for c in test["95"]["coverage"])
        widths = zip(test["80"]["mean_width"], test["95"]["mean_width"], strict=True)
        assert all(a <= b for a, b in widths)
        assert record["guard"]["served_mae"] == saved["guard"]["served_mae"]
    markdown = (workdir / "results.md").read_text()
    assert "## Prediction intervals (test)" in markdown
    assert "| horizon | coverage 80 % | width 80 % | coverage 95 % | width 95 % |" in markdown
    assert "## Baseline guard (validation)" in markdown
    for name in ("run.json", "seasonal_table.npz", "intervals.npz", "guard.json"):
        assert (workdir / "forecast" / name).is_file()


def test_other_levels_are_computed_from_the_validation_split(trained):
    """Levels the run did not store are fitted on its validation residuals at load (the data must
    be present); the stored record is left as the run wrote it."""
    import warnings

    from eala_jax.forecast import BaselineWarning, Forecaster

    workdir, _ = trained
    stored = (workdir / "forecast" / "intervals.npz").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        default = Forecaster.load(workdir).intervals
        other = Forecaster.load(workdir, levels=(0.5, 0.9)).intervals
    assert other.levels == (0.5, 0.9)
    assert (other.half_width[0] <= default.half_width[0]).all()  # 50 % inside 80 %
    assert (default.half_width[0] <= other.half_width[1]).all()  # 80 % inside 90 %
    assert (other.half_width[1] <= default.half_width[1]).all()  # 90 % inside 95 %
    assert (workdir / "forecast" / "intervals.npz").read_bytes() == stored
