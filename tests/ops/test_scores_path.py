"""EALA's "scores" implementation (chosen automatically when S ≤ D) against the float64 reference.

The default shapes of the other tests have S > D and so exercise the "statistics" route; here the
head dim exceeds the key count, as in ELinFormer's temporal layers (12 steps, head dim 38).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from eala_jax import eala_attention
from tests.ops import reference as ref
from tests.ops.helpers import cross_shapes, hlo_shapes, jaxpr_shapes

B, T, S, H, D, DV = 2, 5, 6, 2, 9, 3  # S ≤ D
PROJ = np.random.default_rng(3).standard_normal((16, D))
CASES = [
    ("gaussian", {}),
    ("cumulant3", {}),
    ("exact", {}),
    ("segments", {"num_segments": 3}),
    ("random_features", {"projection": PROJ}),
]


def _inputs(seed):
    g = np.random.default_rng(seed)
    q = 2.5 * g.standard_normal((B, T, H, D))
    k = g.exponential(size=(B, S, H, D)) - 1.0  # skewed scores, so the estimators differ
    v = g.standard_normal((B, S, H, DV))
    mask = g.random((B, S)) < 0.7
    mask[:, 0] = True
    return q, k, v, mask


@pytest.mark.parametrize("estimator,options", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("nonnegative", [False, True], ids=["signed", "nonnegative"])
def test_scores_route_matches_reference_and_statistics_route(estimator, options, nonnegative):
    q, k, v, mask = _inputs(11)
    with jax.enable_x64(True):
        outs = {}
        for implementation in ("scores", "statistics", None):
            out, stats = eala_attention(
                *(jnp.asarray(x) for x in (q, k, v)),
                key_mask=jnp.asarray(mask),
                estimator=estimator,
                nonnegative=nonnegative,
                return_stats=True,
                implementation=implementation,
                **options,
            )
            outs[implementation] = (np.asarray(out), {n: np.asarray(x) for n, x in stats.items()})
    want = ref.eala(q, k, v, mask, estimator=estimator, nonnegative=nonnegative, **options)
    out, stats = outs["scores"]
    np.testing.assert_allclose(out, want["out"], rtol=1e-9, atol=1e-9)
    for name in ("theta", "entropy", "sigma2"):
        np.testing.assert_allclose(stats[name], want[name], rtol=1e-9, atol=1e-9, err_msg=name)
    for implementation in ("statistics", None):
        np.testing.assert_allclose(outs[implementation][0], out, rtol=1e-9, atol=1e-9)
    assert np.ptp(want["theta"]) > 0.05  # θ varies: the comparison is not vacuous


def test_scores_route_empty_and_single_key_rows():
    q, k, v, _ = _inputs(12)
    mask = np.zeros((B, S), bool)
    mask[1, 2] = True  # batch 0: no valid key; batch 1: one valid key
    out = np.asarray(
        eala_attention(
            q.astype(np.float32),
            k.astype(np.float32),
            v.astype(np.float32),
            key_mask=mask,
            implementation="scores",
            estimator="exact",
        )
    )
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(out[1], np.broadcast_to(v[1, 2], out[1].shape), rtol=1e-6)


def test_scores_route_gradients():
    q, k, v, mask = _inputs(13)
    with jax.enable_x64(True):
        f = jax.jit(
            lambda q, k, v: eala_attention(
                q, k, v, key_mask=jnp.asarray(mask), estimator="cumulant3", implementation="scores"
            )
        )
        check_grads(f, (q, k, v), order=1, modes=("rev",), eps=1e-6, atol=1e-6, rtol=1e-6)


def test_auto_takes_scores_only_when_keys_fit_in_head_dim():
    def score_shapes(s):
        """Shapes holding both a query and a key axis (in any layout), in the jaxpr and XLA's
        optimised HLO of the forward pass and the gradient."""
        q = jnp.zeros((1, 7, 1, D))
        kv = jnp.zeros((1, s, 1, D))
        # The value and the gradient in one program: its forward pass and its backward pass.
        fn = jax.value_and_grad(lambda q, k: jnp.sum(eala_attention(q, k, k)), argnums=(0, 1))
        jaxpr = jaxpr_shapes(jax.make_jaxpr(fn)(q, kv).jaxpr)
        hlo = hlo_shapes(jax.jit(fn).lower(q, kv).compile().as_text())
        return cross_shapes(jaxpr, 7, s) + cross_shapes(hlo, 7, s)

    assert score_shapes(S)  # S ≤ D: the [B, T, H, S] scores
    assert score_shapes(D + 4) == []  # S > D: no T×S intermediate


def test_unknown_implementation_is_rejected():
    q, k, v, _ = _inputs(14)
    # Checked where the options are built (EalaOptions), as every option.
    with pytest.raises(
        ValueError, match=r"^implementation='dense'; expected one of 'statistics', 'scores' or None"
    ):
        eala_attention(q, k, v, implementation="dense")
