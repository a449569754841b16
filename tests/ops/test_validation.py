"""Bad input raises ValueError / TypeError at trace time, with a message naming the argument."""

import re

import jax
import numpy as np
import pytest

from eala_jax import eala_attention, eala_weights, estimate_entropy, get_attention, softmax_entropy
from eala_jax.ops import REGISTRY, EalaOptions, LlnOptions, attention_options
from eala_jax.ops.sharded import sharded_eala_attention
from tests.ops.helpers import B, S, T, key_mask, projection, qkv

NAMES = ["eala", "softmax", "linear", "performer", "uniform", "lln"]
Q, K, V = qkv(90)
PROJ = projection(91)


def _attention(name):
    fn = get_attention(name)
    return (lambda *a, **kw: fn(*a, projection=PROJ, **kw)) if name == "performer" else fn


def _qk_functions():
    """Every op that takes (q, k): the attentions (with v) and the entropy functions."""

    def with_v(name):  # a valid v for whatever k is given (k's leading axes, Dv = 3)
        return lambda q, k, **kw: _attention(name)(
            q, k, np.zeros(np.shape(k)[:-1] + (3,), np.float32), **kw
        )

    fns = {name: with_v(name) for name in NAMES}
    fns["eala_weights"] = eala_weights
    fns["softmax_entropy"] = softmax_entropy
    fns["estimate_entropy"] = estimate_entropy
    return fns


QK = _qk_functions()


@pytest.mark.parametrize("fn", list(QK))
def test_shape_errors_name_the_argument(fn):
    f = QK[fn]
    with pytest.raises(ValueError, match=r"head dim of q \(4\) and k \(5\) must match"):
        f(Q, np.zeros((B, S, 2, 5), np.float32))
    with pytest.raises(ValueError, match=r"head count of q \(2\) and k \(3\) must match"):
        f(Q, np.zeros((B, S, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"batch of q \(2\) and k \(3\) must match"):
        f(Q, np.zeros((3, S, 2, 4), np.float32))
    with pytest.raises(
        ValueError, match=r"must all have rank 4 \[batch, length, heads, head_dim\]"
    ):
        f(Q[0, 0], K[0, 0])  # rank 2
    with pytest.raises(ValueError, match=r"must all have rank 4"):
        f(Q, K[0])  # rank 4 and rank 3
    with pytest.raises(ValueError, match=r"must all have rank 4"):
        f(Q[None], K[None])  # rank 5: vmap it instead
    with pytest.raises(TypeError, match=r"q must have a floating dtype"):
        f(Q.astype(np.int32), K)
    with pytest.raises(TypeError, match=r"k must be an array"):
        f(Q, K.tolist())
    with pytest.raises(ValueError, match=r"k must hold at least one key"):
        f(Q, K[:, :0])


@pytest.mark.parametrize("fn", list(QK))
def test_key_mask_errors(fn):
    f = QK[fn]
    with pytest.raises(ValueError, match=r"key_mask must have shape \[batch=2, keys=12\]"):
        f(Q, K, key_mask=np.ones((B, S + 1), bool))
    with pytest.raises(ValueError, match=r"key_mask must have shape \[batch=2, keys=12\]"):
        f(Q, K, key_mask=np.ones((3, S), bool))
    with pytest.raises(ValueError, match=r"key_mask must have shape"):
        f(Q, K, key_mask=np.ones((B, 1, S), bool))
    with pytest.raises(TypeError, match=r"key_mask must be boolean"):
        f(Q, K, key_mask=np.ones((B, S), np.float32))
    # The accepted forms: [B, S], [S], [1, S].
    m = key_mask(92)
    f(Q, K, key_mask=m)
    f(Q, K, key_mask=m[0])
    f(Q, K, key_mask=m[:1])


@pytest.mark.parametrize("name", NAMES)
def test_attention_argument_errors(name):
    f = _attention(name)
    with pytest.raises(ValueError, match=r"v must share k's batch, length and heads"):
        f(Q, K, V[:, :-1])
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*'colour'"):
        f(Q, K, V, colour="blue")
    with pytest.raises(
        ValueError,
        match=r"causal attention needs as many queries as keys; got q length 7, k length 12",
    ):
        f(Q, K, V, causal=True)
    # Strict keywords: Flax's mask, bias and dropout keywords belong to the Flax adapter
    # (tests/models/test_attention_flax.py), not to the op.
    for flax_keyword in ("mask", "bias", "dropout_rng", "deterministic", "is_causal"):
        with pytest.raises(TypeError, match=rf"unexpected keyword argument.*'{flax_keyword}'"):
            f(Q, K, V, **{flax_keyword: None})
    with pytest.raises(TypeError, match=r"positional argument"):
        f(Q, K, V, np.ones((B, 1, 1, S), bool))


def test_estimator_and_option_errors():
    for fn in (lambda **kw: eala_attention(Q, K, V, **kw), lambda **kw: eala_weights(Q, K, **kw)):
        # Checked where the options are built (EalaOptions), named as the keyword was written.
        with pytest.raises(ValueError, match=r"^estimator='median'; expected one of 'gaussian'"):
            fn(estimator="median")
        with pytest.raises(
            ValueError, match=r"estimator 'random_features' needs rng=<PRNG key> or projection="
        ):
            fn(estimator="random_features")
        with pytest.raises(
            ValueError, match=r"projection must have shape \[num_features, head_dim=4\]"
        ):
            fn(estimator="random_features", projection=np.ones((8, 5), np.float32))
        with pytest.raises(ValueError, match=r"num_segments=0; expected an integer >= 1"):
            fn(estimator="segments", num_segments=0)
        with pytest.raises(ValueError, match=r"num_features=0; expected an integer >= 1"):
            fn(estimator="random_features", rng=jax.random.key(0), num_features=0)
        with pytest.raises(ValueError, match=r"theta='best'; expected one of 'optimal' or a"):
            fn(theta="best")
        with pytest.raises(ValueError, match=r"theta=nan; expected one of 'optimal' or a finite"):
            fn(theta=float("nan"))
        with pytest.raises(ValueError, match=r"theta=True; expected one of 'optimal' or a"):
            fn(theta=True)
    q, k, v = qkv(93, s=T)
    with pytest.raises(ValueError, match=r"causal EALA supports estimator='gaussian'.*'cumulant3'"):
        eala_attention(q, k, v, causal=True, estimator="cumulant3")
    eala_attention(
        q, k, v, causal=True, estimator="cumulant3", theta=0.5
    )  # fixed θ needs no estimate
    with pytest.raises(ValueError, match=r"unknown entropy estimator 'median'"):
        estimate_entropy(Q, K, estimator="median")
    with pytest.raises(ValueError, match=r"needs rng=<PRNG key> or projection"):
        estimate_entropy(Q, K, estimator="random_features")
    with pytest.raises(
        ValueError, match=r"performer attention needs projection=\[num_features, head_dim\] or rng"
    ):
        get_attention("performer")(Q, K, V)
    with pytest.raises(
        ValueError, match=r"projection must have shape \[num_features, head_dim=4\]"
    ):
        get_attention("performer")(Q, K, V, projection=np.ones((8, 3), np.float32))
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*'estimator'"):
        get_attention("softmax")(Q, K, V, estimator="gaussian")


def test_errors_are_raised_at_trace_time():
    """Under jit (and eval_shape) the errors come from tracing, before anything runs."""
    bad_k = np.zeros((B, S, 2, 5), np.float32)
    with pytest.raises(ValueError, match=r"head dim"):
        jax.eval_shape(lambda q, k, v: eala_attention(q, k, v), Q, bad_k, V)
    with pytest.raises(ValueError, match=r"key_mask must have shape"):
        jax.jit(lambda q, m: eala_attention(q, K, V, key_mask=m))(Q, np.ones((B, 3), bool))
    with pytest.raises(ValueError, match=r"causal attention needs as many queries as keys"):
        jax.jit(lambda q: eala_attention(q, K, V, causal=True))(Q)


# ----------------------------------------------------------------------------------------------
# Static options: the options classes and the raw ops refuse the same bad values, by name, with
# one shared check (`_validation.check_options`).

NAN, INF = float("nan"), float("inf")
QC, KC, VC = qkv(94, s=T)  # T == S for the causal entry
MESH_Q, MESH_K, MESH_V = qkv(95, t=8, s=8)  # lengths divisible by the 4 "nodes" devices

BAD_VALUES = {
    "scale": [NAN, INF, 0.0, -1.0],
    "chunk_size": [0, -1, 2.5, True],
    "num_segments": [0, -3],
    "num_features": [0, 1.5],
    "min_entropy": [NAN, INF, -INF],
    "theta": [-1.0, -1e-6, NAN, INF, True],
    "temperature": [-1.0, NAN, INF, True, "optimal"],
}


def _sharded_on(q, k, v, **kw):
    auto = (jax.sharding.AxisType.Auto,) * 2
    mesh = jax.make_mesh((2, 4), ("data", "nodes"), axis_types=auto)  # as tests/ops/test_sharded
    return jax.jit(lambda q, k, v: sharded_eala_attention(q, k, v, mesh=mesh, **kw))(q, k, v)


def _sharded(**kw):
    return _sharded_on(MESH_Q, MESH_K, MESH_V, **kw)


# Each public op, called on valid inputs, and the static options it takes.
RAW_OPS = {
    "eala_attention": (
        lambda **kw: eala_attention(Q, K, V, **kw),
        ("scale", "chunk_size", "num_segments", "num_features", "min_entropy", "theta"),
    ),
    "eala_attention[causal]": (
        lambda **kw: eala_attention(QC, KC, VC, causal=True, **kw),
        ("scale", "chunk_size", "min_entropy", "theta"),
    ),
    "eala_weights": (
        lambda **kw: eala_weights(Q, K, **kw),
        ("scale", "chunk_size", "num_segments", "num_features", "min_entropy", "theta"),
    ),
    "softmax_attention": (lambda **kw: _attention("softmax")(Q, K, V, **kw), ("scale",)),
    "linear_attention": (
        lambda **kw: _attention("linear")(Q, K, V, **kw),
        ("scale", "chunk_size"),
    ),
    "performer_attention": (
        lambda **kw: _attention("performer")(Q, K, V, **kw),
        ("scale", "chunk_size", "num_features"),
    ),
    "uniform_attention": (
        lambda **kw: _attention("uniform")(Q, K, V, **kw),
        ("scale", "chunk_size"),
    ),
    "lln_attention": (
        lambda **kw: _attention("lln")(Q, K, V, **kw),
        ("scale", "chunk_size", "temperature"),
    ),
    "lln_attention[causal]": (
        lambda **kw: _attention("lln")(QC, KC, VC, causal=True, **kw),
        ("scale", "chunk_size", "temperature"),
    ),
    "softmax_entropy": (lambda **kw: softmax_entropy(Q, K, **kw), ("scale", "chunk_size")),
    "estimate_entropy": (
        lambda **kw: estimate_entropy(Q, K, **kw),
        ("scale", "chunk_size", "num_segments", "num_features"),
    ),
    "sharded_eala_attention": (_sharded, ("scale", "theta")),
}

RAW_CASES = [
    pytest.param(op, arg, bad, id=f"{op}-{arg}={bad!r}")
    for op, (_, args) in RAW_OPS.items()
    for arg in args
    for bad in BAD_VALUES[arg]
]
OPTION_CASES = [
    pytest.param(name, arg, bad, id=f"{name}-{arg}={bad!r}")
    for name, entry in REGISTRY.items()
    for arg in entry.options.field_names()
    if arg in BAD_VALUES
    for bad in BAD_VALUES[arg]
]


@pytest.mark.parametrize(("op", "arg", "bad"), RAW_CASES)
def test_raw_ops_refuse_bad_static_options_naming_the_argument(op, arg, bad):
    fn, _ = RAW_OPS[op]
    with pytest.raises(ValueError, match=rf"^{arg}={re.escape(repr(bad))}; expected ") as err:
        fn(**{arg: bad})
    # The message of the options class, less its "<attention>." prefix: the one shared check.
    options = LlnOptions if arg == "temperature" else EalaOptions
    with pytest.raises(ValueError) as from_options:
        options(**{arg: bad})
    assert str(from_options.value) == f"{options.name}.{err.value}"


@pytest.mark.parametrize(("name", "arg", "bad"), OPTION_CASES)
def test_options_classes_refuse_bad_static_options_naming_the_field(name, arg, bad):
    with pytest.raises(ValueError, match=rf"^{name}\.{arg}={re.escape(repr(bad))}; expected "):
        attention_options(name, {arg: bad})


@pytest.mark.parametrize("entry", ["EalaOptions", "eala_attention", "eala_weights", "sharded"])
@pytest.mark.parametrize("nonnegative", [True, False])
def test_a_negative_fixed_theta_is_refused(entry, nonnegative):
    """A negative slope inverts the keys' ranking; with `nonnegative` it also gave negative
    weights (min -0.07 at these inputs before the check), so no entry path takes it."""
    call = {
        "EalaOptions": lambda **kw: EalaOptions(**kw),
        "eala_attention": lambda **kw: eala_attention(Q, K, V, **kw),
        "eala_weights": lambda **kw: eala_weights(Q, K, **kw),
        "sharded": _sharded,
    }[entry]
    kw = {} if entry == "sharded" else {"nonnegative": nonnegative}  # sharded has no cap option
    with pytest.raises(ValueError, match=r"theta=-0\.5; expected one of 'optimal' or a finite"):
        call(theta=-0.5, **kw)


def test_the_cap_holds_for_a_fixed_positive_theta():
    """Where θ is accepted the cap keeps its promise: θ = 5 dips far below zero uncapped."""
    assert float(eala_weights(Q, K, theta=5.0).min()) < -0.1
    assert float(eala_weights(Q, K, theta=5.0, nonnegative=True).min()) >= -1e-7
    assert float(eala_weights(QC, KC, theta=5.0, causal=True, nonnegative=True).min()) >= -1e-7


@pytest.mark.parametrize("fn", [*QK, "sharded_eala_attention"])
@pytest.mark.parametrize("scale", [None, 1.0])
def test_an_empty_head_dim_is_refused(fn, scale):
    q, k = MESH_Q[..., :0], MESH_K[..., :0]
    f = QK.get(fn) or (lambda q, k, **kw: _sharded_on(q, k, MESH_V, **kw))
    # (inside shard_map the shapes are the per-device ones)
    with pytest.raises(ValueError, match=r"head_dim >= 1; got q\.shape=\(\d, \d, 2, 0\)"):
        f(q, k, scale=scale)


def test_option_errors_are_raised_at_trace_time():
    with pytest.raises(ValueError, match=r"^chunk_size=0; expected an integer >= 1"):
        jax.eval_shape(
            lambda q, k, v: eala_attention(q, k, v, causal=True, chunk_size=0), QC, KC, VC
        )
    with pytest.raises(ValueError, match=r"^min_entropy=nan; expected a finite number"):
        jax.jit(lambda q: eala_attention(q, K, V, min_entropy=NAN))(Q)
