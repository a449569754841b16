"""eala_jax.train.transplant: a trained model's parameters under another attention."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from eala_jax.ops import EalaOptions, LinearOptions, PerformerOptions, SoftmaxOptions
from eala_jax.train.prepare import build_model
from eala_jax.train.transplant import transplant, with_attention
from tests.train.train_helpers import tiny_config, with_model

SOFTMAX = with_model(
    tiny_config(), temporal_attention=SoftmaxOptions(), spatial_attention=SoftmaxOptions()
)


def test_with_attention_replaces_the_spatial_axis_or_both():
    spatial = with_attention(SOFTMAX, EalaOptions(theta=1.0), scope="spatial")
    assert spatial.model.spatial_attention == EalaOptions(theta=1.0)
    assert spatial.model.temporal_attention == SoftmaxOptions()
    both = with_attention(SOFTMAX, LinearOptions(), scope="both")
    assert both.model.temporal_attention == both.model.spatial_attention == LinearOptions()
    assert both.train == SOFTMAX.train and both.data == SOFTMAX.data
    with pytest.raises(ValueError, match="unknown scope 'temporal'; expected one of spatial, both"):
        with_attention(SOFTMAX, LinearOptions(), scope="temporal")


def _model_state(config, nodes=6):
    model = build_model(config, num_nodes=nodes, steps_per_day=288, rngs=nnx.Rngs(params=0))
    return jax.tree.map(np.asarray, nnx.state((model,)))


def test_transplant_keeps_every_trained_leaf_and_only_a_performers_projection_is_fresh():
    trained = _model_state(SOFTMAX)
    performer = with_attention(SOFTMAX, PerformerOptions(num_features=8), scope="spatial")
    fresh_state = _model_state(performer, nodes=6)
    state, fresh = transplant(trained, fresh_state)
    assert fresh == ("0.spatial_layers.0.attention.projection.value",)
    leaves = dict(jax.tree_util.tree_leaves_with_path(state))
    for path, leaf in jax.tree_util.tree_leaves_with_path(trained):
        np.testing.assert_array_equal(leaves[path], leaf)
    projection = state[0]["spatial_layers"][0]["attention"]["projection"]
    np.testing.assert_array_equal(
        projection[...], fresh_state[0]["spatial_layers"][0]["attention"]["projection"][...]
    )


def test_transplant_refuses_a_trained_leaf_it_would_drop_or_reshape():
    performer = _model_state(
        with_attention(SOFTMAX, PerformerOptions(num_features=8), scope="spatial")
    )
    with pytest.raises(ValueError, match="no place for: 0.spatial_layers.0.attention.projection"):
        transplant(performer, _model_state(SOFTMAX))
    with pytest.raises(ValueError, match=r"0.adaptive_embedding.value: trained \(12, 7, 4\)"):
        transplant(
            _model_state(SOFTMAX, nodes=7),
            _model_state(with_attention(SOFTMAX, LinearOptions(), scope="both")),
        )
