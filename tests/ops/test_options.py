"""Typed attention options: they agree with the ops' signatures and refuse bad values by name."""

import dataclasses
import inspect

import jax
import numpy as np
import pytest

from eala_jax.ops import REGISTRY, EalaOptions, attention_options, get_attention


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
