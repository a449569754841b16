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


# --- Impossible values and attention options are refused when the config is validated ---------


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.learning_rate=-1", r"train.learning_rate must be > 0 \(a finite number\), got -1"),
        ("train.learning_rate=0", r"train.learning_rate must be > 0"),
        ("train.learning_rate=NaN", r"train.learning_rate must be > 0 .*got nan"),
        ("train.max_epochs=0", r"train.max_epochs must be >= 1 \(an integer\), got 0"),
        ("train.max_epochs=-5", r"train.max_epochs must be >= 1"),
        ("train.patience=-1", r"train.patience must be >= 0 \(an integer\), got -1"),
        ("train.batch_size=-16", r"train.batch_size must be >= 1"),
        ("train.eval_batch_size=0", r"train.eval_batch_size must be >= 1"),
        ("train.lr_decay=0", r"train.lr_decay must be in \(0, 1\]"),
        ("train.lr_decay=1.5", r"train.lr_decay must be in \(0, 1\]"),
        ("train.lr_decay=-0.1", r"train.lr_decay must be in \(0, 1\]"),
        ("model.dropout=1.0", r"model.dropout must be in \[0, 1\)"),
        ("model.dropout=-0.1", r"model.dropout must be in \[0, 1\)"),
        ("train.weight_decay=-3e-4", r"train.weight_decay must be >= 0"),
        ("train.max_grad_norm=-1", r"train.max_grad_norm must be >= 0"),
        ("train.max_grad_norm=Infinity", r"train.max_grad_norm must be >= 0 \(a finite number\)"),
        ("train.huber_delta=0", r"train.huber_delta must be > 0"),
        ("train.seed=-1", r"train.seed must be in \[0, 2147483647\]"),
        ("train.keep_checkpoints=0", r"train.keep_checkpoints must be >= 1"),
        ("train.checkpoint_every_steps=-10", r"train.checkpoint_every_steps must be >= 0"),
        ("train.num_devices=0", r"train.num_devices must be >= 1 or None"),
        ("train.max_steps_per_epoch=0", r"train.max_steps_per_epoch must be >= 1 or None"),
        ("train.milestones=[0, 5]", r"train.milestones \(each epoch\) must be >= 1"),
        ("train.milestones=[5, 5]", r"train.milestones must be distinct epochs"),
        ("train.plot_sensors=[0, -1]", r"train.plot_sensors \(each sensor index\) must be >= 0"),
        ("train.plot_horizon=0", r"train.plot_horizon must be in \[1, 12\]"),
        ("model.feed_forward_dim=0", r"model.feed_forward_dim must be >= 1"),
        ("model.input_embedding_dim=0", r"model.input_embedding_dim must be >= 1"),
        ("model.tod_embedding_dim=-24", r"model.tod_embedding_dim must be >= 0"),
        ("model.num_spatial_layers=-1", r"model.num_spatial_layers must be >= 0"),
        ("data.num_nodes=0", r"data.num_nodes must be >= 1 or None"),
        ("data.steps_per_day=7", r"data.steps_per_day must divide a day of 1440 minutes"),
        ("data.split=[0.7, NaN, 0.2]", r"data.split must be three fractions"),
        ("data.split=[0.7, 0.2, 0.2]", r"data.split must be three fractions"),
    ],
)
def test_impossible_values_are_refused(override, message):
    with pytest.raises(ValueError, match=message):
        validate_config(apply_overrides(Config(), [override]))


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.lr_decay=1"],  # no decay
        ["train.patience=0"],  # never stop early
        ["model.dropout=0"],
        ["train.weight_decay=0", "train.max_grad_norm=0", "train.checkpoint_every_steps=0"],
        ["model.dow_embedding_dim=0", "model.adaptive_embedding_dim=104"],  # dim stays 152
        ["model.num_temporal_layers=0"],
        ["train.seed=2147483647", "train.learning_rate=1e-9"],
        ["data.num_nodes=3", "data.steps_per_day=24"],
    ],
)
def test_boundary_values_are_accepted(overrides):
    validate_config(apply_overrides(Config(), overrides))


@pytest.mark.parametrize(
    "override, message",
    [
        (
            'model.spatial_attention_options={"estimatr": "cumulant3"}',
            r"model.spatial_attention_options: eala attention has no option 'estimatr'; "
            r"valid options: .*estimator.*theta",
        ),
        (
            'model.temporal_attention_options={"estimator": "gausian"}',
            r"model.temporal_attention_options: estimator='gausian' is not an entropy estimator; "
            r"choose one of gaussian, cumulant3, segments, random_features, exact",
        ),
        (
            'model.spatial_attention_options={"nonnegative": "false"}',  # a truthy string
            r"nonnegative='false' is not true or false",
        ),
        (
            'model.spatial_attention_options={"num_segments": 2.5}',
            r"num_segments=2.5 is not an integer",
        ),
    ],
)
def test_attention_options_are_checked_against_the_op(override, message):
    with pytest.raises(ValueError, match=message):
        validate_config(apply_overrides(Config(), [override]))


def test_options_valid_for_one_attention_are_refused_for_another():
    cfg = apply_overrides(
        Config(),
        ["model.spatial_attention=softmax", 'model.spatial_attention_options={"chunk_size": 8}'],
    )
    with pytest.raises(ValueError, match="softmax attention has no option 'chunk_size'"):
        validate_config(cfg)
    validate_config(
        dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, spatial_attention="linear"))
    )


@pytest.mark.parametrize("name", ["eala", "softmax", "linear", "performer", "uniform"])
def test_listed_options_are_exactly_what_the_op_accepts(name):
    """Each option the config accepts is taken by the op itself, and a name the config refuses is
    refused by the op too (so the list is not a hand-kept copy that can drift)."""
    import jax
    import jax.numpy as jnp

    from eala_jax.ops import get_attention
    from eala_jax.train.config import attention_option_types

    fn = get_attention(name)
    q = jax.random.normal(jax.random.key(0), (1, 3, 1, 4))
    base = {"projection": jnp.ones((2, 4))} if name == "performer" else {}
    options = attention_option_types(name)
    assert {"q", "k", "v", "mask", "key_mask", "return_stats", "dropout_rate"}.isdisjoint(options)
    assert {"causal", "scale"} <= set(options)
    for option, (_, default) in options.items():
        try:
            fn(q, q, q, **{**base, option: default})
        except TypeError as err:  # an option the op does not take
            pytest.fail(f"{name} listed {option!r} but the op refused it: {err}")
        except ValueError:
            pass  # taken, but its default needs a companion (e.g. performer's rng)
    with pytest.raises(TypeError, match="unexpected keyword"):
        fn(q, q, q, **base, not_an_option=1)


def test_bad_attention_option_fails_before_the_data_is_read(tmp_path, capsys):
    """`experiments.train` with a misspelt option and a data set that is absent: the option is
    named, not the missing file, and no workdir is created."""
    from experiments.train import main

    workdir = tmp_path / "run"
    status = main(
        [
            "--config",
            str(REPO / "experiments/configs/synthetic_elinformer.py"),
            "--workdir",
            str(workdir),
            "--set",
            "data.name=pems08",
            "--set",
            f"data.data_dir={tmp_path / 'empty'}",
            "--set",
            'model.spatial_attention_options={"estimatr": "cumulant3"}',
        ]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert "has no option 'estimatr'" in err and "PEMS08.npz" not in err
    assert not workdir.exists()
