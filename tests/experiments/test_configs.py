"""experiments/configs: every experiment config builds and validates, and those built on the shared
`common.py` differ from its backbone and budget only where they say so."""

import pathlib

import pytest

from eala_jax.train import load_config_file, validate_config
from experiments import report_reference
from experiments.configs import common

CONFIGS = report_reference.experiment_configs()


def test_common_is_not_an_experiment_config():
    names = {p.name for p in CONFIGS}
    assert "common.py" not in names and len(names) == 8
    assert not hasattr(common, "get_config")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_each_config_builds_and_validates(path: pathlib.Path):
    config = load_config_file(path)
    validate_config(config)
    assert config.name == path.stem


@pytest.mark.parametrize(
    "name, model, train",
    [
        ("sz_taxi_elinformer", {}, {}),
        ("sz_taxi_softmax", {"temporal_attention", "spatial_attention"}, {}),
        ("pems08_elinformer", {}, {}),
        ("los_loop_elinformer", {"dow_embedding_dim", "adaptive_embedding_dim"}, {}),
        (
            "synthetic_elinformer",
            {},
            {"max_epochs", "patience", "max_steps_per_epoch", "milestones"},
        ),
        (
            "generic_elinformer",
            {"tod_embedding_dim", "dow_embedding_dim"},
            {"max_epochs", "patience", "max_steps_per_epoch", "milestones"},
        ),
    ],
)
def test_configs_on_common_change_only_what_they_name(name, model, train):
    """Every backbone and budget field but the named ones is common.py's."""
    config = load_config_file(pathlib.Path("experiments/configs") / f"{name}.py")
    for key, value in common.BACKBONE.items():
        assert (getattr(config.model, key) == value) != (key in model), (name, key)
    for key, value in common.BUDGET.items():
        assert (getattr(config.train, key) == value) != (key in train), (name, key)
