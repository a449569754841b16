"""experiments.compare: every variant's overrides give a valid config whose model runs."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eala_jax.train import apply_overrides, build_model, load_config_file, validate_config
from experiments import compare


@pytest.fixture(scope="module")
def base_config():
    # The config compare trains for Los-loop: it pins EALA's estimator, which other attentions must
    # not get.
    return load_config_file("experiments/configs/los_loop_elinformer.py")


@pytest.mark.parametrize("variant", sorted(compare.VARIANTS))
def test_variant_builds_and_runs(base_config, variant):
    config = apply_overrides(base_config, list(compare.VARIANTS[variant]))
    validate_config(config)
    model = build_model(config, num_nodes=6, steps_per_day=288, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.normal(size=(2, 12, 6, 1)),
            rng.integers(0, 288, (2, 12, 6, 1)) / 288,
            np.zeros((2, 12, 6, 1)),
        ],
        axis=-1,
    ).astype(np.float32)
    out = model(jnp.asarray(x), deterministic=True)
    assert out.shape == (2, 12, 6) and bool(jnp.all(jnp.isfinite(out)))
    if variant in ("softmax", "spatial_only"):
        assert (
            config.model.temporal_attention == "softmax"
            and config.model.temporal_attention_options == ()
        )


def test_unknown_dataset_config_is_an_error_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare.main(["--datasets", "nowhere", "--workdir", str(tmp_path)])
    assert "experiments/configs/nowhere_elinformer.py" in capsys.readouterr().err
