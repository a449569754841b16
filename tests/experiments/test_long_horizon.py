"""experiments.long_horizon: each row's config is the base config with exactly the row's changes,
the published table is well formed, and the docs section is built from a results file."""

import pytest

from eala_jax.ops import EalaOptions, SoftmaxOptions
from eala_jax.train import load_config_file, validate_config
from experiments import long_horizon as lh


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


def test_unknown_row_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        lh.row_config("etth1", 96, 96, "fast", 0, [])
    with pytest.raises(ValueError, match="unknown dataset 'ettm1'"):
        lh.row_config("ettm1", 96, 96, "eala", 0, [])


def test_published_numbers_have_one_value_per_horizon():
    for model, entries in lh.PUBLISHED.items():
        if model == "sources":
            continue
        for (dataset, in_steps), entry in entries.items():
            assert dataset in lh.DATASETS and in_steps == 336
            assert len(entry["mse"]) == len(entry["mae"]) == len(lh.HORIZONS)
            assert all(0 < v < 2 for v in entry["mse"] + entry["mae"])


def test_markdown_rows_come_from_the_results_file():
    row = {
        "dataset": "etth2",
        "in_steps": 336,
        "horizon": 192,
        "variant": "eala",
        "seeds": {"0": {}, "1": {}},
        "mse": [0.3456, 0.01],
        "mae": [0.4321, 0.02],
        "baselines": {"last_value": {"mse": 0.6543}, "historical_average": {"mse": 1.2345}},
    }
    timing = [
        {"dataset": "etth1", "in_steps": 720, "horizon": 96, "variant": v, "batch": 8,
         "status": "ok", "median_s": s, "peak_bytes": 2**20}
        for v, s in (("no_patch", 0.5), ("no_patch_softmax_temporal", 2.0))
    ]  # fmt: skip
    machine = dict(device="cpu", backend="cpu", device_count=1, cpu="test cpu", cores=2, jax="0")
    data = {"machine": machine, "rows": {"k": row}, "step_time": timing}
    text = "\n".join(lh.markdown(data))
    line = next(x for x in text.splitlines() if x.startswith("| etth2 | 336 | 192 |"))
    assert "0.346 ± 0.010" in line and "0.432 ± 0.020" in line
    assert "| 0.654 | 1.234 |" in line or "| 0.654 | 1.235 |" in line
    assert "0.383\\*" in line and "0.339\\*" in line  # DLinear and PatchTST/42 at horizon 192
    ratio_line = next(x for x in text.splitlines() if "| 720 | 96 | no_patch |" in x)
    assert ratio_line.endswith("| 4.00 |")
