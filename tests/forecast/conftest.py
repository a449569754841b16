"""One tiny trained run shared by the forecast tests (trained once per session)."""

from __future__ import annotations

import dataclasses

import pytest

from eala_jax.ops import EalaOptions
from eala_jax.train import train_and_evaluate
from tests.train.train_helpers import tiny_config, with_model

# The tiny synthetic run with a seasonal profile (input channel and additive residual target), so
# the forecaster's profile path is exercised too, and EALA on both axes (its ops branch on the
# batch size in Python, which a symbolic export batch must not reach).
CONFIG = with_model(
    dataclasses.replace(tiny_config(max_epochs=2, max_steps_per_epoch=3)),
    seasonal_embedding_dim=4,
    seasonal_residual="additive",
    temporal_attention=EalaOptions(estimator="gaussian"),
)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(workdir, results) of the tiny run."""
    workdir = tmp_path_factory.mktemp("forecast") / "run"
    results = train_and_evaluate(CONFIG, workdir)
    return workdir, results
