"""ELinFormer under node sharding (mesh ("data", "nodes") = 2 x 4 on 8 CPU devices) and with
rematerialised blocks: the same function as the plain model.

EALA on both axes. The sharded forward runs under `jax.set_mesh`, which switches on the model's
activation annotations; its output must keep the sensors sharded, and the compiled program must
reduce the spatial key statistics across devices (otherwise each device would attend over its own
sensors only and the outputs would differ).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from eala_jax.models import ELinFormer
from eala_jax.ops import EalaOptions, SoftmaxOptions
from tests.models.model_helpers import make_inputs, tiny_config

NODES = 8
EALA = EalaOptions(estimator="gaussian")


def build(**changes) -> ELinFormer:
    config = tiny_config(**{"temporal_attention": EALA, "spatial_attention": EALA, **changes})
    return ELinFormer(config, num_nodes=NODES, steps_per_day=24, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def mesh():
    return jax.make_mesh((2, 4), ("data", "nodes"), axis_types=(jax.sharding.AxisType.Auto,) * 2)


@pytest.fixture(scope="module")
def inputs():
    x, tod, dow = make_inputs(batch=4, nodes=NODES, seed=3)
    x[:, :, 5] += 40.0  # one sensor far from the others: spatial key means matter
    return x, tod, dow


def forward(graphdef, state, x, tod, dow):
    return nnx.merge(graphdef, state)(x, tod, dow, deterministic=True)


def test_node_sharded_forward_equals_the_unsharded_forward(mesh, inputs):
    graphdef, state = nnx.split(build())
    expected = jax.jit(forward, static_argnums=0)(graphdef, state, *inputs)
    x, tod, dow = inputs
    placed = (
        jax.device_put(x, NamedSharding(mesh, P("data", None, "nodes"))),
        jax.device_put(tod, NamedSharding(mesh, P("data"))),
        jax.device_put(dow, NamedSharding(mesh, P("data"))),
    )
    with jax.set_mesh(mesh):
        compiled = jax.jit(forward, static_argnums=0).lower(graphdef, state, *placed).compile()
    out, hlo = compiled(state, *placed), compiled.as_text()
    assert out.sharding.spec == P("data", None, "nodes")
    assert "all-reduce" in hlo
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_remat_gives_the_same_output_and_gradient(inputs):
    """With dropout on, so the rematerialised forward must redraw the same masks (softmax over
    time: one compile fewer of EALA's gradient)."""
    x, tod, dow = (jnp.asarray(a) for a in inputs)

    def loss(model):
        out = model(x, tod, dow, deterministic=False, rngs=nnx.Rngs(dropout=7))
        return jnp.mean(out**2)

    graphdef, state = nnx.split(build(remat=True))
    jaxpr = jax.make_jaxpr(lambda s: forward(graphdef, s, x, tod, dow))(state)
    assert str(jaxpr).count("remat") == 2  # one checkpoint per block (1 temporal, 1 spatial)
    results = {}
    for remat in (False, True):
        model = build(remat=remat, dropout=0.3, temporal_attention=SoftmaxOptions())
        results[remat] = nnx.jit(nnx.value_and_grad(loss))(model)
    (value, grads), (value_remat, grads_remat) = results[False], results[True]
    np.testing.assert_allclose(value_remat, value, rtol=1e-6)
    leaves, leaves_remat = jax.tree.leaves(grads), jax.tree.leaves(grads_remat)
    assert len(leaves) == len(leaves_remat)
    for g, g_remat in zip(leaves, leaves_remat, strict=True):
        np.testing.assert_allclose(g_remat, g, rtol=1e-5, atol=1e-7)


def test_dropout_masks_are_drawn_shard_by_shard():
    """A node-sharded training forward with dropout needs about as much memory per device as
    without it: each device draws the masks of its own sensors. (XLA left the earlier
    `lax.rng_bit_generator` whole inside the model: almost 4 activation-sized buffers more.)"""
    nodes, batch = 64, 4
    mesh = jax.make_mesh((1, 8), ("data", "nodes"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    x, tod, dow = make_inputs(batch=batch, nodes=nodes, seed=3)
    placed = (
        jax.device_put(x, NamedSharding(mesh, P("data", None, "nodes"))),
        jax.device_put(tod, NamedSharding(mesh, P("data"))),
        jax.device_put(dow, NamedSharding(mesh, P("data"))),
    )
    temp = {}
    for rate in (0.0, 0.1):
        config = tiny_config(dropout=rate)
        graphdef, state = nnx.split(
            ELinFormer(config, num_nodes=nodes, steps_per_day=24, rngs=nnx.Rngs(0))
        )

        def loss(state, x, tod, dow, key, graphdef=graphdef):
            model = nnx.merge(graphdef, state)
            out = model(x, tod, dow, deterministic=False, rngs=nnx.Rngs(dropout=key))
            return jnp.sum(out**2)

        with jax.set_mesh(mesh):
            lowered = jax.jit(loss).lower(state, *placed, jax.random.key(0))
        temp[rate] = lowered.compile().memory_analysis().temp_size_in_bytes
        activation = batch * 12 * nodes * config.model_dim * 4  # bytes of one whole activation
    assert temp[0.1] - temp[0.0] < 2 * activation, (temp, activation)
