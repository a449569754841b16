"""ELinFormer with eala_local: the temporal window and the spatial tables (graph or adaptive
embedding) reach the op, and the model's refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

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


def test_node_sharded_forward_equals_the_unsharded_forward():
    """The spatial eala_local layer gathers local keys across the node shards (8 fake devices)."""
    nodes = 8
    adjacency = np.eye(nodes, k=1) + np.eye(nodes, k=-1)
    local = EalaLocalOptions(num_local=3)
    model = ELinFormer(
        tiny_config(temporal_attention=local, spatial_attention=local),
        num_nodes=nodes,
        steps_per_day=24,
        adjacency=adjacency,
        rngs=nnx.Rngs(0),
    )
    graphdef, state = nnx.split(model)
    forward = lambda g, s, *a: nnx.merge(g, s)(*a, deterministic=True)
    inputs = make_inputs(batch=4, nodes=nodes, seed=3)
    expected = jax.jit(forward, static_argnums=0)(graphdef, state, *inputs)
    mesh = jax.make_mesh((2, 4), ("data", "nodes"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    specs = (P("data", None, "nodes"), P("data"), P("data"))
    placed = [jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(inputs, specs, strict=True)]
    with jax.set_mesh(mesh):
        out = jax.jit(forward, static_argnums=0)(graphdef, state, *placed)
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-5, atol=1e-5)
