"""Typed configs: overrides, round trips, validation, and every experiment file."""

import dataclasses
import json
from pathlib import Path

import pytest

from eala_jax.train import (
    Config,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config_file,
    validate_config,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG_FILES = sorted((REPO / "experiments" / "configs").glob("*.py"))


def test_overrides_convert_to_field_types():
    cfg = apply_overrides(
        Config(),
        [
            "train.batch_size=32",
            "train.learning_rate=2e-3",
            "train.milestones=[5, 9]",
            "train.max_steps_per_epoch=none",
            "progress_bar=false",
            "model.spatial_attention=softmax",
            'model.spatial_attention_options={"estimator": "gaussian", "theta": 1.0}',
            "data.split=[0.6, 0.2, 0.2]",
            'data.options={"num_nodes": 7}',
        ],
    )
    assert cfg.train.batch_size == 32 and isinstance(cfg.train.batch_size, int)
    assert cfg.train.learning_rate == 2e-3
    assert cfg.train.milestones == (5, 9)
    assert cfg.train.max_steps_per_epoch is None
    assert cfg.progress_bar is False
    assert cfg.model.spatial_attention == "softmax"
    assert cfg.model.spatial_attention_options == (("estimator", "gaussian"), ("theta", 1.0))
    assert cfg.data.split == (0.6, 0.2, 0.2)
    assert cfg.data.options == (("num_nodes", 7),)
    hash(cfg)  # unsafe_hash: usable as a static argument / cache key
    assert cfg == config_from_dict(json.loads(json.dumps(config_to_dict(cfg))))


@pytest.mark.parametrize(
    "override, error, message",
    [
        ("train.bogus=1", KeyError, "unknown config key 'train.bogus'"),
        ("trian.batch_size=1", KeyError, "unknown config key 'trian.batch_size'"),
        ("train=3", KeyError, "is a section"),
        ("train.batch_size=abc", ValueError, "bad value 'abc' for config key 'train.batch_size'"),
        ("train.batch_size=1.5", ValueError, "expected an integer"),
        ("progress_bar=maybe", ValueError, "expected a boolean"),
        ("train.batch_size", ValueError, "not of the form key=value"),
    ],
)
def test_override_errors(override, error, message):
    with pytest.raises(error, match=message):
        apply_overrides(Config(), [override])


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.spatial_attention=flash", "unknown attention 'flash'"),
        ("model.temporal_attention=softmaxx", "unknown attention 'softmaxx'"),
        ("train.loss=mse", r"train.loss='mse'; choose one of mae, huber"),
        ("train.parallel=dp", "train.parallel='dp'"),
        ("model.num_heads=5", "not divisible by num_heads=5"),
        ("model.dropout=1.0", "model.dropout must be in"),
        ("train.plot_horizon=13", "train.plot_horizon must be in"),
    ],
)
def test_validation_errors(override, message):
    with pytest.raises(ValueError, match=message):
        validate_config(apply_overrides(Config(), [override]))


def test_experiment_files_exist_and_load():
    names = {p.stem for p in CONFIG_FILES}
    assert {
        "synthetic_elinformer",
        "los_loop_elinformer",
        "los_loop_softmax",
        "sz_taxi_elinformer",
        "sz_taxi_softmax",
    } <= names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_experiment_file(path):
    cfg = load_config_file(path)
    validate_config(cfg)
    doc = path.read_text().split('"""')[1]
    # The docstring opens with the exact command for this file and says what it should reach (or,
    # for a data set this project does not hold, that it was not run here).
    assert doc.splitlines()[0].startswith(
        f"python -m experiments.train --config experiments/configs/{path.name} "
    )
    assert ("Should reach" in doc) != ("Not run by this project" in doc)
    assert "RESULTS_PENDING" not in doc
    assert cfg.name == path.stem


def test_pair_configs_differ_only_in_attention():
    for data in ("los_loop", "sz_taxi"):
        eala = load_config_file(REPO / f"experiments/configs/{data}_elinformer.py")
        soft = load_config_file(REPO / f"experiments/configs/{data}_softmax.py")
        assert eala.train == soft.train and eala.data == soft.data
        same_model = dataclasses.replace(
            soft.model,
            temporal_attention=eala.model.temporal_attention,
            spatial_attention=eala.model.spatial_attention,
            temporal_attention_options=eala.model.temporal_attention_options,
            spatial_attention_options=eala.model.spatial_attention_options,
        )
        assert same_model == eala.model
        assert soft.model.spatial_attention == "softmax" and eala.model.spatial_attention == "eala"


def test_load_config_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config_file(tmp_path / "absent.py")
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(AttributeError, match="defines no get_config"):
        load_config_file(bad)
