"""experiments.compare: every variant's overrides give a valid config whose model runs, and each
changes exactly what it names."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eala_jax.ops import EalaOptions, attention_options
from eala_jax.train import build_model, load_config_file, validate_config
from experiments import compare

ATTENTIONS = ("softmax", "linear", "performer", "uniform", "lln")


@pytest.fixture(scope="module")
def base_config():
    # The config compare trains for Los-loop: it pins EALA's estimator, which other attentions must
    # not get.
    return load_config_file("experiments/configs/los_loop_elinformer.py")


@pytest.mark.parametrize("variant", sorted(compare.VARIANTS))
def test_variant_builds_and_runs(base_config, variant):
    config = compare.variant_config("los_loop", variant, 3, [])
    validate_config(config)
    assert config.train.seed == 3 and config.name == f"los_loop_{variant}_seed3"
    model = build_model(config, num_nodes=6, steps_per_day=288, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    # The config reads the seasonal profile (input and residual target): every variant keeps it.
    assert config.model.seasonal_embedding_dim == 8 and config.model.seasonal_residual == "additive"
    out = model(
        jnp.asarray(rng.normal(size=(2, 12, 6)), jnp.float32),
        jnp.asarray(rng.integers(0, 288, (2, 12)), jnp.int32),
        jnp.zeros((2, 12), jnp.int32),
        deterministic=True,
        seasonal=tuple(jnp.asarray(rng.normal(size=(2, 12, 6)), jnp.float32) for _ in range(2)),
    )
    assert out.shape == (2, 12, 6) and bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize("variant", sorted(compare.VARIANTS))
def test_variant_changes_exactly_what_it_names(base_config, variant):
    """An attention baseline gets that attention's defaults (nothing of EALA's pinned estimator);
    an ablation changes its option of EALA and keeps the rest of the config's options."""
    model = compare.variant_config("los_loop", variant, 0, []).model
    base = base_config.model
    assert dataclasses.replace(
        model, temporal_attention=base.temporal_attention, spatial_attention=base.spatial_attention
    ) == dataclasses.replace(base)
    pinned = EalaOptions(estimator="gaussian")
    assert base.temporal_attention == base.spatial_attention == pinned
    expected = {
        "eala": (pinned, pinned),
        **{name: (attention_options(name),) * 2 for name in ATTENTIONS},
        "spatial_only": (attention_options("softmax"), pinned),
        "theta_one": (pinned.replace(theta=1.0),) * 2,
        "theta_zero": (pinned.replace(theta=0.0),) * 2,
        "theta_no_gradient": (pinned.replace(theta_gradient=False),) * 2,
        "gaussian": (pinned,) * 2,
        "cumulant3": (pinned.replace(estimator="cumulant3"),) * 2,
        "segments": (
            pinned.replace(estimator="segments", num_segments=4),
            pinned.replace(estimator="segments", num_segments=32),
        ),
        "random_features": (pinned.replace(estimator="random_features"),) * 2,
        "nonnegative": (pinned.replace(nonnegative=True),) * 2,
    }[variant]
    assert (model.temporal_attention, model.spatial_attention) == expected


def test_unknown_dataset_config_is_an_error_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare.main(["--datasets", "nowhere", "--workdir", str(tmp_path)])
    assert "experiments/configs/nowhere_elinformer.py" in capsys.readouterr().err


def test_a_bad_override_fails_before_any_training(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(compare, "train_and_evaluate", lambda *a: trained.append(a))
    with pytest.raises(ValueError, match="model.spatial_attention.estimator"):
        compare.main(
            ["--datasets", "los_loop", "--variants", "eala", "softmax", "--seeds", "0"]
            + ["--workdir", str(tmp_path), "--set", "model.spatial_attention.estimator=nope"]
        )
    assert trained == []
