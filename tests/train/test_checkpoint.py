"""A workdir's saved config against the config of a resume (`check_workdir`): a key added to the
config after the run was saved matches while it keeps its default, and only then."""

import json

import pytest

from eala_jax.train import IncompatibleWorkdirError, apply_overrides, config_to_dict
from eala_jax.train.checkpoint import CONFIG_FILE, check_workdir
from tests.train.train_helpers import tiny_config


def save_without(config, workdir, section: str, key: str) -> None:
    saved = config_to_dict(config)
    del saved[section][key]  # as written by a version without that field
    (workdir / CONFIG_FILE).write_text(json.dumps(saved))


def test_a_key_newer_than_the_saved_config_matches_at_its_default(tmp_path):
    config = tiny_config()
    save_without(config, tmp_path, "train", "microbatches")
    assert check_workdir(config, tmp_path) is False  # no checkpoint: compatible, nothing to resume
    changed = apply_overrides(config, ["train.microbatches=2"])
    with pytest.raises(IncompatibleWorkdirError, match="microbatches: saved '<absent>' vs now 2"):
        check_workdir(changed, tmp_path)
    other = apply_overrides(config, ["train.seed=5"])
    with pytest.raises(IncompatibleWorkdirError, match="train.seed: saved 0 vs now 5"):
        check_workdir(other, tmp_path)


def test_a_saved_boolean_instance_norm_is_a_difference(tmp_path):
    """A config.json written when `model.instance_norm` was a bool is not read as a mode: the
    resume is refused, naming the key and both values."""
    revin = apply_overrides(tiny_config(), ["model.instance_norm=mean_std"])
    saved = config_to_dict(revin)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(saved))
    assert check_workdir(revin, tmp_path) is False
    saved["model"]["instance_norm"] = True
    (tmp_path / CONFIG_FILE).write_text(json.dumps(saved))
    with pytest.raises(
        IncompatibleWorkdirError, match="instance_norm: saved True vs now 'mean_std'"
    ):
        check_workdir(revin, tmp_path)
