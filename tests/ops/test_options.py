"""Typed attention options: they agree with the ops' signatures and refuse bad values by name."""

import dataclasses
import inspect

import jax
import numpy as np
import pytest

from eala_jax.ops import (
    ESTIMATORS,
    REGISTRY,
    EalaOptions,
    attention_options,
    eala_attention,
    get_attention,
)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_options_are_the_ops_keyword_options_with_the_same_defaults(name):
    function, options = REGISTRY[name]
    # The op's own keywords, and those of the core it wraps (baselines share one entry wrapper).
    params = {
        **inspect.signature(function).parameters,
        **inspect.signature(function, follow_wrapped=False).parameters,
    }
    for field in dataclasses.fields(options):
        assert field.name in params, f"{name}: option {field.name} is not a keyword of the op"
        param = params[field.name]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, (name, field.name)
        assert param.default == field.default, (name, field.name, param.default, field.default)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_defaults_and_as_kwargs_give_the_ops_default_output(name):
    keys = jax.random.split(jax.random.key(3), 3)
    q, k, v = (jax.random.normal(key, (2, 9, 2, 4)) for key in keys)
    function = get_attention(name)
    extra = {"rng": jax.random.key(0)} if name == "performer" else {}
    want = function(q, k, v, **extra)
    got = function(q, k, v, **attention_options(name).as_kwargs(), **extra)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"estimatr": "gaussian"}, r"unknown option\(s\) \['estimatr'\].*valid options: causal"),
        ({"estimator": "gauss"}, r"eala.estimator='gauss'; expected one of 'gaussian'"),
        ({"theta": "best"}, r"eala.theta='best'; expected one of 'optimal' or a finite number"),
        ({"theta": float("nan")}, r"eala.theta=nan"),
        ({"num_segments": 0}, r"eala.num_segments=0; expected an integer >= 1"),
        ({"num_segments": 2.5}, r"eala.num_segments=2.5; expected an integer"),
        ({"nonnegative": "yes"}, r"eala.nonnegative='yes'; expected a boolean"),
        ({"scale": -1.0}, r"eala.scale=-1.0; expected a finite number > 0, or None"),
        ({"theta": -1.0}, r"eala.theta=-1.0; expected one of 'optimal' or a finite number >= 0"),
        ({"min_entropy": float("nan")}, r"eala.min_entropy=nan; expected a finite number"),
        ({"implementation": "fast"}, r"expected one of 'statistics', 'scores' or None"),
    ],
)
def test_bad_values_are_refused_naming_the_option(values, message):
    with pytest.raises(ValueError, match=message):
        attention_options("eala", values)


def test_unknown_attention_lists_the_registered_names():
    with pytest.raises(ValueError, match="unknown attention 'eal'; expected one of eala, softmax"):
        attention_options("eal")


def test_options_are_hashable_values_and_replace_validates():
    a = EalaOptions(estimator="cumulant3")
    assert a == attention_options("eala", {"estimator": "cumulant3"})
    assert hash(a) == hash(EalaOptions(estimator="cumulant3"))
    assert a.replace(theta=1.0).theta == 1.0 and a.theta == "optimal"
    with pytest.raises(ValueError, match="unknown option"):
        a.replace(thetta=1.0)
    with pytest.raises(ValueError, match="softmax.*valid options: causal, scale"):
        attention_options("softmax", {"estimator": "gaussian"})


def test_an_options_object_reaches_the_op_unchanged_and_unchecked(monkeypatch):
    """`options=` is used as given: the op builds nothing and runs no option check; keywords build
    the object once, over `options` when both are given."""
    import eala_jax.ops.options as options_module

    q, k, v = (
        jax.random.normal(key, (2, 9, 2, 4)) for key in jax.random.split(jax.random.key(5), 3)
    )
    opts, base = EalaOptions(theta=0.5, nonnegative=True), EalaOptions(theta=0.25)
    want = eala_attention(q, k, v, theta=0.5, nonnegative=True)
    calls = []
    real = options_module.check_options
    monkeypatch.setattr(
        options_module, "check_options", lambda *a, **kw: calls.append(kw) or real(*a, **kw)
    )
    np.testing.assert_array_equal(eala_attention(q, k, v, options=opts), want)
    assert calls == []
    got = eala_attention(q, k, v, options=base, theta=0.5, nonnegative=True)
    np.testing.assert_array_equal(got, want)
    assert len(calls) == len(options_module.CHECKED_OPTIONS & set(EalaOptions.field_names()))
    with pytest.raises(TypeError, match=r"options must be EalaOptions, got SoftmaxOptions"):
        eala_attention(q, k, v, options=attention_options("softmax"))
    with pytest.raises(TypeError, match=r"softmax_attention got unexpected keyword.*'theta'"):
        get_attention("softmax")(q, k, v, theta=0.5)


def test_causal_with_an_estimator_beyond_the_variance_is_refused_when_built():
    """The rule between fields is checked with the others, where the config is written (it was
    accepted here and failed inside the first call)."""
    with pytest.raises(ValueError, match=r"causal EALA supports estimator='gaussian'.*'segments'"):
        EalaOptions(causal=True, estimator="segments")
    EalaOptions(causal=True, estimator="segments", theta=0.5)  # a fixed θ needs no estimate
    with pytest.raises(ValueError, match=r"causal EALA supports"):
        EalaOptions(estimator="exact").replace(causal=True)


def test_the_estimator_dispatch_is_the_list_of_estimator_names():
    from typing import get_args

    from eala_jax.ops.entropy import ESTIMATOR_TABLE, EstimatorName

    assert tuple(ESTIMATOR_TABLE) == get_args(EstimatorName) == ESTIMATORS
    assert [n for n, e in ESTIMATOR_TABLE.items() if e.variance_only] == ["gaussian"]
    assert EalaOptions(estimator="random_features", num_features=8).random_features() == 8
    assert EalaOptions(num_features=8).random_features() is None
    assert attention_options("performer", {"num_features": 5}).random_features() == 5
