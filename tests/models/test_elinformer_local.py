"""ELinFormer with eala_local: the temporal window and the spatial tables (graph or adaptive
embedding) reach the op, and the model's refusals."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eala_jax.models import ELinFormer
from eala_jax.ops import EalaLocalOptions, SoftmaxOptions
from eala_jax.ops.neighbours import graph_neighbours
from tests.models.model_helpers import make_inputs, tiny_config

NODES = 5


def _model(adjacency=None, **attentions):
    config = tiny_config(**attentions)
    return ELinFormer(
        config, num_nodes=NODES, steps_per_day=24, adjacency=adjacency, rngs=nnx.Rngs(0)
    )


def _run(model):
    return np.asarray(model(*make_inputs(nodes=NODES), deterministic=True))


@pytest.mark.parametrize(
    "axis,options,adjacency",
    [
        ("temporal_attention", EalaLocalOptions(num_local=23, window="centred"), None),
        ("spatial_attention", EalaLocalOptions(num_local=NODES, spatial_keys="embedding"), None),
        ("spatial_attention", EalaLocalOptions(num_local=NODES), np.ones((NODES, NODES))),
    ],
    ids=["temporal-window", "spatial-embedding", "spatial-graph"],
)
def test_every_key_local_is_softmax(axis, options, adjacency):
    """With a table that holds every key the layer is exact softmax: the same parameters give the
    softmax model's output, so the model's tables reach the op."""
    softmax = _model(**{axis: SoftmaxOptions()})
    local = _model(adjacency, **{axis: options})
    nnx.update(local, nnx.state(softmax, nnx.Param))
    np.testing.assert_allclose(_run(local), _run(softmax), atol=1e-5)
    fewer = _model(adjacency, **{axis: options.replace(num_local=2)})
    nnx.update(fewer, nnx.state(softmax, nnx.Param))
    assert np.abs(_run(fewer) - _run(softmax)).max() > 1e-4  # fewer local keys: not softmax


def test_graph_table_is_model_state():
    adjacency = np.eye(NODES, k=1) + np.eye(NODES, k=-1)  # a path
    model = _model(adjacency, spatial_attention=EalaLocalOptions(num_local=2))
    assert model.spatial_local == "graph"
    np.testing.assert_array_equal(model.spatial_neighbours[...], graph_neighbours(adjacency, 2))
    assert model.spatial_neighbours[...].dtype == jnp.int32
    assert "spatial_neighbours" not in nnx.state(model, nnx.Param)  # not trained
    assert _model(spatial_attention=EalaLocalOptions()).spatial_local == "embedding"  # auto


def test_refusals():
    with pytest.raises(ValueError, match="spatial_keys='graph' needs the data set's graph"):
        _model(spatial_attention=EalaLocalOptions(spatial_keys="graph"))
    with pytest.raises(ValueError, match=r"adjacency must be \[num_nodes, num_nodes\]"):
        _model(np.ones((3, 3)), spatial_attention=EalaLocalOptions())
    with pytest.raises(ValueError, match="adaptive_embedding_dim > 0"):
        tiny_config(
            spatial_attention=EalaLocalOptions(spatial_keys="embedding"), adaptive_embedding_dim=0
        )
    with pytest.raises(ValueError, match="adaptive_embedding_dim must be > 0"):
        _model(
            spatial_attention=EalaLocalOptions(), adaptive_embedding_dim=0, input_embedding_dim=8
        )
    with pytest.raises(ValueError, match="use_flax_mha=True cannot pass eala_local"):
        tiny_config(temporal_attention=EalaLocalOptions(), use_flax_mha=True)
