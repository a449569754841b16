"""Bad input raises ValueError / TypeError at trace time, with a message naming the argument."""

import jax
import numpy as np
import pytest

from eala_jax import eala_attention, eala_weights, estimate_entropy, get_attention, softmax_entropy
from tests.ops.helpers import B, S, T, key_mask, projection, qkv

NAMES = ["eala", "softmax", "linear", "performer", "uniform"]
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
        with pytest.raises(
            ValueError, match=r"unknown entropy estimator 'median'; expected one of .*gaussian"
        ):
            fn(estimator="median")
        with pytest.raises(
            ValueError, match=r"estimator 'random_features' needs rng=<PRNG key> or projection="
        ):
            fn(estimator="random_features")
        with pytest.raises(
            ValueError, match=r"projection must have shape \[num_features, head_dim=4\]"
        ):
            fn(estimator="random_features", projection=np.ones((8, 5), np.float32))
        with pytest.raises(ValueError, match=r"num_segments must be a positive int"):
            fn(estimator="segments", num_segments=0)
        with pytest.raises(ValueError, match=r"num_features must be a positive int"):
            fn(estimator="random_features", rng=jax.random.key(0), num_features=0)
        with pytest.raises(ValueError, match=r"theta must be 'optimal' or a float"):
            fn(theta="best")
        with pytest.raises(TypeError, match=r"theta must be 'optimal' or a finite float"):
            fn(theta=float("nan"))
        with pytest.raises(TypeError, match=r"theta must be 'optimal' or a finite float"):
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
