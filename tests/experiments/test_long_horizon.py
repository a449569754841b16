"""experiments.long_horizon: each row's config is the base config with exactly the row's changes,
and a row gathers its run's scores, baselines and scores on the published windows."""

import json

import pytest

from eala_jax.models import BASELINE_NAMES
from eala_jax.ops import EalaOptions, SoftmaxOptions
from eala_jax.train import load_config_file, validate_config
from experiments import long_horizon as lh
from experiments.published import published_gap
from experiments.report_long_horizon import beaten_cell

#: The overrides stored with the rows trained before the linear look-back path (variant
#: `head_only` in the results file).
HEAD_ONLY = [
    "model.num_temporal_layers=2",
    "model.adaptive_embedding_dim=32",
    "model.linear_path=false",
    "model.dropout=0.1",
    "model.head_dropout=0",
]


@pytest.mark.parametrize("variant", sorted(lh.VARIANTS))
def test_row_config_changes_only_the_row(variant):
    base = load_config_file(lh.CONFIG)
    config = lh.row_config("exchange_rate", 96, 720, variant, 2, ["train.max_epochs=1"])
    validate_config(config)
    assert (config.data.name, config.data.in_steps, config.data.out_steps) == (
        "exchange_rate",
        96,
        720,
    )
    assert config.train.seed == 2 and config.train.max_epochs == 1
    assert dict(config.data.options) == {"per_node_zscore": True}
    patched = "no_patch" not in variant
    assert (config.model.patch_len, config.model.patch_stride) == (
        (base.model.patch_len, base.model.patch_stride) if patched else (1, 1)
    )
    softmax = "softmax" in variant
    assert config.model.temporal_attention == (SoftmaxOptions() if softmax else EalaOptions())
    assert config.model.spatial_attention == base.model.spatial_attention
    norm = {"last_norm": "last"}.get(variant, "last_std" if "last_std" in variant else "mean_std")
    assert base.model.instance_norm == "mean_std" and config.model.instance_norm == norm
    wd = 1e-2 if variant.endswith("_wd") else base.train.weight_decay
    assert config.train.weight_decay == wd


def test_unknown_row_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        lh.row_config("etth1", 96, 96, "fast", 0, [])
    with pytest.raises(ValueError, match="unknown dataset 'ettm1'"):
        lh.row_config("ettm1", 96, 96, "eala", 0, [])


def _table(mse, mae, **extra):
    return {"rmse_mean": mse**0.5, "mae_mean": mae, **extra}


def test_row_reads_every_baseline_from_a_finished_run(tmp_path):
    """A finished run's results.json is reused: the model's and each baseline's MSE (from RMSE) and
    MAE, and the seasonal naive's period, go to the row."""
    run_dir = tmp_path / lh.row_key("etth1", 336, 96, "eala") / "seed0"
    run_dir.mkdir(parents=True)
    test = {
        "model": _table(0.25, 0.3),
        "last_value": _table(1.0, 0.7),
        "seasonal_naive": _table(0.81, 0.6, period="day"),
        "historical_average": _table(0.64, 0.65),
    }
    result = {"test": test, "epochs": 5, "best_epoch": 3, "stop_reason": "patience"}
    result |= {"time_per_epoch_s": 1.0, "num_parameters": 10}
    (run_dir / "results.json").write_text(json.dumps(result))
    row = lh.run_row("etth1", 336, 96, "eala", [0], tmp_path, [])
    assert row["mse"][0] == pytest.approx(0.25) and row["mae"][0] == pytest.approx(0.3)
    seasonal = row["baselines"]["seasonal_naive"]
    assert (seasonal["mse"], seasonal["mae"]) == pytest.approx((0.81, 0.6))
    assert seasonal["period"] == "day"
    assert set(row["baselines"]) == set(BASELINE_NAMES)
    assert row["config"] == lh.config_summary(lh.row_config("etth1", 336, 96, "eala", 0, []))
    assert beaten_cell(row) == "all"
    row["baselines"]["historical_average"]["mse"] = 0.2
    assert beaten_cell(row) == "not historical_average MSE"
    del row["baselines"]["last_value"]
    assert beaten_cell(row) == "–"


def test_row_scores_the_windows_each_published_number_scored(tmp_path):
    """With a run's per-window test errors the row carries, per published model, our mean MSE /
    MAE over the first windows that model's evaluation kept (whole test batches), here with the
    last windows far worse than the rest, as at the end of ETTh2's test split."""
    import numpy as np

    from eala_jax.train import TEST_WINDOWS_FILE

    total = 2545  # ETTh2, input 336, horizon 336: PatchTST/42 (batch 128) kept 2432, DLinear 2528
    rng = np.random.default_rng(0)
    count = np.full(total, 336 * 7)
    sq_err = rng.uniform(0.2, 0.4, total) * count
    sq_err[2432:] *= 5.0
    abs_err = np.sqrt(sq_err / count) * count
    for seed, scale in ((0, 1.0), (1, 1.1)):
        run_dir = tmp_path / lh.row_key("etth2", 336, 336, "eala") / f"seed{seed}"
        run_dir.mkdir(parents=True)
        np.savez(run_dir / TEST_WINDOWS_FILE, sq_err=scale * sq_err, abs_err=abs_err, count=count)
        test = {"model": _table(0.3, 0.4), "last_value": _table(1.0, 0.7)}
        test |= {"seasonal_naive": _table(0.81, 0.6), "historical_average": _table(0.64, 0.65)}
        result = {"test": test, "epochs": 5, "best_epoch": 3, "stop_reason": "patience"}
        result |= {"time_per_epoch_s": 1.0, "num_parameters": 10}
        (run_dir / "results.json").write_text(json.dumps(result))
    row = lh.run_row("etth2", 336, 336, "eala", [0, 1], tmp_path, [])
    windows = row["published_windows"]
    assert (windows["PatchTST/42"]["windows"], windows["DLinear"]["windows"]) == (2432, 2528)
    expected = [s * sq_err[:2432].sum() / count[:2432].sum() for s in (1.0, 1.1)]
    assert windows["PatchTST/42"]["mse"] == pytest.approx([np.mean(expected), np.std(expected)])
    assert windows["PatchTST/42"]["mae"][0] == pytest.approx(
        abs_err[:2432].sum() / count[:2432].sum()
    )
    assert windows["DLinear"]["mse"][0] > windows["PatchTST/42"]["mse"][0]  # keeps 96 bad windows
    gap, on_its_windows = published_gap(row)  # PatchTST/42's 0.331 is the best published
    assert on_its_windows and gap == pytest.approx(windows["PatchTST/42"]["mse"][0] / 0.331 - 1)


def test_a_finished_run_of_another_config_is_not_reused(tmp_path):
    """A run folder whose config.json differs from the row's config (e.g. trained before the
    config changed) is an error, not a row of the current config."""
    from eala_jax.train import IncompatibleWorkdirError, config_to_dict

    run_dir = tmp_path / lh.row_key("etth1", 336, 96, "eala") / "seed0"
    run_dir.mkdir(parents=True)
    other = lh.config_for("etth1", 336, 96, HEAD_ONLY)
    (run_dir / "config.json").write_text(json.dumps(config_to_dict(other)))
    (run_dir / "results.json").write_text("{}")
    with pytest.raises(IncompatibleWorkdirError, match="linear_path: saved False vs now True"):
        lh.run_row("etth1", 336, 96, "eala", [0], tmp_path, [])


def test_config_summary_names_the_head_options_only_when_set():
    """The overrides stored with the `head_only` rows (trained before the linear path) give back
    the summary those rows stored (no head options named)."""
    before = lh.config_summary(lh.config_for("etth1", 336, 96, HEAD_ONLY))
    assert before == (
        "2 temporal + 0 spatial layers, dropout 0.1; up to 10 epochs x 100 steps of batch 16, "
        "patience 3, lr 0.001 (x0.3 at epoch 7)"
    )
    now = lh.config_summary(lh.row_config("etth1", 336, 96, "eala", 0, []))
    assert now.endswith("; linear path; head dropout 0.3")
    changed = lh.config_for("etth1", 336, 96, [*HEAD_ONLY, "model.head_dropout=0.2"])
    assert lh.config_summary(changed).endswith("(x0.3 at epoch 7); head dropout 0.2")


def test_stored_rows_are_rebuilt_from_their_own_overrides():
    """Every row of the committed results file gives back today's config from the overrides stored
    with it, variants since replaced included; a row of today's variant stores its variant's."""
    data = json.loads(lh.RESULTS.read_text())
    for row in data["rows"].values():
        config = lh.stored_row_config(row)
        assert (config.data.name, config.data.out_steps) == (row["dataset"], row["horizon"])
        if row["variant"] in lh.VARIANTS:
            assert row["overrides"][: len(lh.VARIANTS[row["variant"]])] == list(
                lh.VARIANTS[row["variant"]]
            )
    head_only = data["rows"]["etth1_in336_h96_head_only"]
    assert head_only["overrides"] == HEAD_ONLY and "head_only" not in lh.VARIANTS
    assert lh.config_summary(lh.stored_row_config(head_only)) == head_only["config"]
