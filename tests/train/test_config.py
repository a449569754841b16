"""Typed configs: overrides, round trips, validation, and every experiment file."""

import dataclasses
import json
from pathlib import Path

import pytest

from eala_jax.ops import EalaOptions, LinearOptions, LlnOptions, SoftmaxOptions
from eala_jax.train import (
    Config,
    ModelConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config_file,
    validate_config,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG_FILES = [  # common.py: what the configs share, not a config
    p for p in sorted((REPO / "experiments" / "configs").glob("*.py")) if p.name != "common.py"
]


def test_overrides_convert_to_field_types():
    cfg = apply_overrides(
        Config(),
        [
            "train.batch_size=32",
            "train.learning_rate=2e-3",
            "train.milestones=[5, 9]",
            "train.max_steps_per_epoch=none",
            "train.log_every=7",
            "progress_bar=false",
            "model.spatial_attention=softmax",
            "model.temporal_attention.estimator=cumulant3",
            "model.temporal_attention.theta=1",
            "model.temporal_attention.scale=none",
            "data.split=[0.6, 0.2, 0.2]",
            'data.options={"num_nodes": 7}',
        ],
    )
    assert cfg.train.batch_size == 32 and isinstance(cfg.train.batch_size, int)
    assert cfg.train.learning_rate == 2e-3
    assert cfg.train.milestones == (5, 9)
    assert cfg.train.max_steps_per_epoch is None
    assert cfg.train.log_every == 7
    assert cfg.progress_bar is False
    assert cfg.model.spatial_attention == SoftmaxOptions()
    assert cfg.model.temporal_attention == EalaOptions(estimator="cumulant3", theta=1.0)
    assert cfg.data.split == (0.6, 0.2, 0.2)
    assert cfg.data.options == (("num_nodes", 7),)
    hash(cfg)  # unsafe_hash: usable as a static argument / cache key
    assert cfg == config_from_dict(json.loads(json.dumps(config_to_dict(cfg))))


def test_an_attention_is_set_by_name_by_field_or_whole():
    pinned = apply_overrides(Config(), ["model.spatial_attention.estimator=segments"])
    pinned = apply_overrides(pinned, ["model.spatial_attention.num_segments=4"])
    assert pinned.model.spatial_attention == EalaOptions(estimator="segments", num_segments=4)
    assert pinned.model.temporal_attention == EalaOptions()  # the other axis is untouched
    # A name selects that attention with its own defaults: the options reset with it.
    assert apply_overrides(pinned, ["model.spatial_attention=softmax"]).model.spatial_attention == (
        SoftmaxOptions()
    )
    assert apply_overrides(pinned, ["model.spatial_attention=eala"]).model.spatial_attention == (
        EalaOptions()
    )
    # A JSON object names the attention and sets its options (the others at their defaults).
    whole = apply_overrides(pinned, ['model.spatial_attention={"name": "eala", "theta": 0.5}'])
    assert whole.model.spatial_attention == EalaOptions(theta=0.5)
    linear = apply_overrides(
        pinned, ['model.spatial_attention={"name": "linear", "chunk_size": 8}']
    )
    assert linear.model.spatial_attention == LinearOptions(chunk_size=8)
    lln = apply_overrides(pinned, ['model.spatial_attention={"name": "lln"}'])
    assert lln.model.spatial_attention == LlnOptions()


def test_the_config_json_stores_the_attention_by_name_and_reads_it_back():
    cfg = apply_overrides(
        Config(), ["model.temporal_attention=performer", "model.spatial_attention.nonnegative=true"]
    )
    stored = json.loads(json.dumps(config_to_dict(cfg)))
    assert stored["model"]["temporal_attention"] == {
        "name": "performer",
        "causal": False,
        "scale": None,
        "num_features": 64,
        "chunk_size": 64,
    }
    assert stored["model"]["spatial_attention"]["name"] == "eala"
    assert stored["model"]["spatial_attention"]["nonnegative"] is True
    assert config_from_dict(stored) == cfg
    stored["model"]["spatial_attention"]["estimator"] = "gausian"
    with pytest.raises(ValueError, match=r"model.spatial_attention: eala.estimator='gausian'"):
        config_from_dict(stored)
    stored["model"]["spatial_attention"] = "eala"  # a bare name reads as that attention
    assert config_from_dict(stored).model.spatial_attention == EalaOptions()


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
        # Attentions: the key and the valid choices are named when the override is applied.
        (
            "model.spatial_attention=flash",
            ValueError,
            "model.spatial_attention: unknown attention 'flash'; expected one of eala, softmax, "
            "linear, performer, uniform, lln",
        ),
        (
            "model.temporal_attention.estimator=gausian",
            ValueError,
            r"bad value 'gausian' for config key 'model.temporal_attention.estimator': "
            r"eala.estimator='gausian'; expected one of 'gaussian', 'cumulant3', 'segments', "
            r"'random_features', 'clusters', 'exact'",
        ),
        (
            "model.spatial_attention.estimatr=cumulant3",
            KeyError,
            r"unknown config key 'model.spatial_attention.estimatr': eala attention has no option "
            r"'estimatr'; valid options: causal, scale, estimator, theta",
        ),
        ("model.spatial_attention.num_segments=2.5", ValueError, "expected an integer"),
        ("model.spatial_attention.num_segments=0", ValueError, "expected an integer >= 1"),
        ("model.spatial_attention.theta=best", ValueError, "expected one of 'optimal' or a"),
        (
            'model.spatial_attention={"theta": 1.0}',
            ValueError,
            r'model.spatial_attention: a JSON object must name its attention, e.g. \{"name"',
        ),
        (
            'model.spatial_attention={"name": "eala", "nonnegative": "false"}',  # a truthy string
            ValueError,
            r"eala.nonnegative='false'; expected a boolean",
        ),
        ("model.spatial_attention=3", ValueError, "expected an attention name or"),
    ],
)
def test_override_errors(override, error, message):
    with pytest.raises(error, match=message):
        apply_overrides(Config(), [override])


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.loss=mse", r"train.loss='mse'; choose one of mae, huber"),
        ("train.parallel=dp", "train.parallel='dp'"),
        ("model.num_heads=5", "not divisible by num_heads=5"),
        ("model.dropout=1.0", "model.dropout must be in"),
        ("train.plot_horizon=13", "train.plot_horizon must be in"),
        ("data.recipe=fast", "data.recipe='fast'; choose '' .none., 'auto' or one of sub_hourly"),
        # An auto width that turns out off must still fit the heads: 26+26+24+80 does, 26+24+80 not.
        (["model.input_embedding_dim=26", "model.tod_embedding_dim=null"], "auto calendar widths"),
    ],
)
def test_validation_errors(override, message):
    with pytest.raises(ValueError, match=message):
        overrides = override if isinstance(override, list) else [override]
        validate_config(apply_overrides(Config(), overrides))


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
        )
        assert same_model == eala.model
        assert soft.model.spatial_attention == soft.model.temporal_attention == SoftmaxOptions()
        assert eala.model.spatial_attention == EalaOptions(estimator="gaussian")


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
        ("train.log_every=0", r"train.log_every must be >= 1 \(an integer\), got 0"),
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


def test_options_valid_for_one_attention_are_refused_for_another():
    softmax = apply_overrides(Config(), ["model.spatial_attention=softmax"])
    with pytest.raises(KeyError, match="softmax attention has no option 'chunk_size'"):
        apply_overrides(softmax, ["model.spatial_attention.chunk_size=8"])
    linear = apply_overrides(softmax, ["model.spatial_attention=linear"])
    chunked = apply_overrides(linear, ["model.spatial_attention.chunk_size=8"])
    assert chunked.model.spatial_attention == LinearOptions(chunk_size=8)


def test_a_model_config_holds_options_objects_only():
    with pytest.raises(TypeError, match=r"model.spatial_attention must be an attention options"):
        ModelConfig(spatial_attention="softmax")


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
            "model.spatial_attention.estimatr=cumulant3",
        ]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert "has no option 'estimatr'" in err and "PEMS08.npz" not in err
    assert not workdir.exists()


def test_the_command_line_validates_the_config_once(tmp_path, monkeypatch, capsys):
    """experiments.train leaves validation to train_and_evaluate (it used to validate first as
    well); the run stops at the absent data set, after that one validation."""
    import experiments.train as cli
    from eala_jax.train import loop

    calls = []

    def counting(config):
        calls.append(config)
        return validate_config(config)

    monkeypatch.setattr(cli, "validate_config", counting)
    monkeypatch.setattr(loop, "validate_config", counting)
    status = cli.main(
        [
            "--config",
            str(REPO / "experiments/configs/synthetic_elinformer.py"),
            "--workdir",
            str(tmp_path / "run"),
            "--set",
            "data.name=no_such_set",
        ]
    )
    assert status == 1 and "unknown data set 'no_such_set'" in capsys.readouterr().err
    assert len(calls) == 1


@pytest.mark.parametrize("mode", ["none", "mean_std", "last", "last_std"])
def test_instance_norm_takes_a_mode_and_no_boolean(mode):
    """`model.instance_norm` names a mode; the config.json stores the name and reads it back. The
    booleans of older configs are refused by name (no silent mapping to a mode)."""
    cfg = apply_overrides(Config(), [f"model.instance_norm={mode}"])
    assert cfg.model.instance_norm == mode
    saved = config_to_dict(cfg)
    assert saved["model"]["instance_norm"] == mode
    assert config_from_dict(json.loads(json.dumps(saved))) == cfg
    with pytest.raises(ValueError, match=r"model.instance_norm=True; choose one of none"):
        ModelConfig(instance_norm=True)
    with pytest.raises(ValueError, match=r"key 'model.instance_norm'.*choose one of none"):
        apply_overrides(Config(), ["model.instance_norm=true"])
    saved["model"]["instance_norm"] = False  # as an older version wrote "none"
    with pytest.raises(ValueError, match=r"model.instance_norm='?False'?; choose one of none"):
        config_from_dict(saved)


def test_a_bad_instance_norm_override_is_refused_by_name():
    with pytest.raises(ValueError, match=r"model.instance_norm='median'; choose one of none"):
        apply_overrides(Config(), ["model.instance_norm=median"])
    config = Config()
    config.model.instance_norm = "median"  # set after the config was built
    with pytest.raises(ValueError, match=r"model.instance_norm='median'"):
        validate_config(config)


def test_head_options_are_set_saved_and_read_back():
    """`model.linear_path` / `model.head_dropout`: off by default, set by override, stored in the
    config.json and read back; a config.json from before them (no such keys) means off."""
    cfg = apply_overrides(Config(), ["model.linear_path=true", "model.head_dropout=0.25"])
    assert (cfg.model.linear_path, cfg.model.head_dropout) == (True, 0.25)
    saved = json.loads(json.dumps(config_to_dict(cfg)))
    assert (saved["model"]["linear_path"], saved["model"]["head_dropout"]) == (True, 0.25)
    assert config_from_dict(saved) == cfg
    del saved["model"]["linear_path"], saved["model"]["head_dropout"]
    older = config_from_dict(saved).model
    assert (older.linear_path, older.head_dropout) == (False, 0.0)
    assert (Config().model.linear_path, Config().model.head_dropout) == (False, 0.0)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.linear_path=maybe", r"model.linear_path.*expected a boolean, got 'maybe'"),
        (
            "model.head_dropout=1",
            r"model.head_dropout must be in \[0, 1\) \(a finite number\), got 1",
        ),
        ("model.head_dropout=-0.5", r"model.head_dropout must be in \[0, 1\) \(a finite number\)"),
    ],
)
def test_bad_head_options_are_refused_by_name(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(Config(), [override])


def test_head_options_set_after_the_config_was_built_are_checked():
    config = Config()
    config.model.head_dropout = 1.5
    with pytest.raises(
        ValueError, match=r"model.head_dropout must be in \[0, 1\) \(a finite number\)"
    ):
        validate_config(config)
    config = Config()
    config.model.linear_path = "on"
    with pytest.raises(ValueError, match=r"model.linear_path must be True or False"):
        validate_config(config)
