"""experiments.estimator_maps: one map's figures, the pooling of a map set, and bad arguments."""

import math

import numpy as np
import pytest

from eala_jax import estimate_entropy, softmax_entropy
from experiments import estimator_maps


def test_measure_reports_every_estimator_with_its_error_and_cost():
    g = np.random.default_rng(0)
    q = g.standard_normal((2, 24, 1, 4)).astype(np.float32)
    k = g.standard_normal((2, 24, 1, 4)).astype(np.float32)
    row = estimator_maps.measure(q, k)
    assert set(row["error"]) == set(estimator_maps.ESTIMATORS)
    exact = np.asarray(softmax_entropy(q, k))
    want = np.abs(np.asarray(estimate_entropy(q, k, estimator="clusters")) - exact).mean()
    assert row["error"]["clusters"] == pytest.approx(want, rel=1e-6)
    assert row["mean_entropy"] == pytest.approx(exact.mean(), rel=1e-6)
    assert row["log_m"] == pytest.approx(math.log(24))
    assert row["keys_per_query"]["clusters"] == 24 // 8 + 4  # S/8 centres and one d×d form
    assert row["keys_per_query"]["gaussian"] == 4
    assert all(ratio > 0 for ratio in row["time_ratio"].values())


def test_pool_weights_maps_by_their_queries_and_markdown_lists_each_set():
    rows = [
        {
            "run": run,
            "queries": queries,
            "keys": 12,
            "head_dim": 4,
            "mean_entropy": entropy,
            "log_m": math.log(12),
            "error": {label: err for label in estimator_maps.ESTIMATORS},
            "keys_per_query": {label: 1.0 for label in estimator_maps.ESTIMATORS},
            "time_ratio": {label: 1.0 for label in estimator_maps.ESTIMATORS},
        }
        for run, queries, entropy, err in (("a", 100, 2.0, 0.1), ("b", 300, 1.0, 0.3))
    ]
    pooled = estimator_maps._pool(rows)
    assert pooled["runs"] == ["a", "b"]
    assert pooled["mean_entropy"] == pytest.approx(1.25)
    assert pooled["error"]["clusters"] == pytest.approx(0.25)
    lines = estimator_maps.markdown({"sets": {"los_loop spatial (eala-trained)": pooled}})
    assert any(line.startswith("| los_loop spatial (eala-trained) | 12, 4 |") for line in lines)


def test_a_folder_that_is_no_run_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        estimator_maps.main(["--workdirs", str(tmp_path)])
    assert "no config.json" in capsys.readouterr().err


def _row(run, error):
    return {
        "run": run,
        "queries": 10,
        "keys": 12,
        "head_dim": 4,
        "mean_entropy": 1.0,
        "log_m": math.log(12),
        "error": {label: error for label in estimator_maps.ESTIMATORS},
        "keys_per_query": {label: 1.0 for label in estimator_maps.ESTIMATORS},
        "time_ratio": {label: 1.0 for label in estimator_maps.ESTIMATORS},
    }


def test_merge_replaces_a_run_measured_again_and_keeps_the_others():
    earlier = {
        "maps": {"a set": [_row("old", 0.1), _row("again", 0.9)], "b set": [_row("old", 0.2)]}
    }
    new = {"maps": {"a set": [_row("again", 0.3)]}}
    merged = estimator_maps.merge(earlier, new)
    assert [r["run"] for r in merged["maps"]["a set"]] == ["old", "again"]
    assert merged["sets"]["a set"]["error"]["clusters"] == pytest.approx(0.2)  # (0.1 + 0.3) / 2
    assert merged["sets"]["b set"]["error"]["clusters"] == pytest.approx(0.2)


def test_merge_needs_an_earlier_file(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    with pytest.raises(SystemExit):
        estimator_maps.main(["--workdirs", str(run), "--merge", "--out", str(tmp_path / "x.json")])
    assert "does not exist" in capsys.readouterr().err
