"""A short training run with eala_local on both axes (tiny synthetic config, which has a graph):
it trains, the run's resolved config names the graph as the spatial keys' source, and the
forecaster restores the graph's neighbour table with the parameters."""

from __future__ import annotations

import json

import numpy as np

from eala_jax.forecast import Forecaster
from eala_jax.ops import EalaLocalOptions
from eala_jax.ops.neighbours import graph_neighbours
from eala_jax.train import train_and_evaluate
from tests.train.train_helpers import tiny_config, with_model


def test_trains_and_restores_with_eala_local(tmp_path):
    config = with_model(
        tiny_config(max_epochs=1, max_steps_per_epoch=2),
        temporal_attention=EalaLocalOptions(num_local=3),
        spatial_attention=EalaLocalOptions(num_local=2),
    )
    results = train_and_evaluate(config, tmp_path / "run")
    assert np.isfinite(results["test"]["model"]["mae_mean"])
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert saved["temporal_attention"]["name"] == "eala_local"

    from eala_jax.data import load_dataset

    adjacency = load_dataset("synthetic", num_days=3, num_nodes=6).adjacency
    forecaster = Forecaster.load(tmp_path / "run", warn=False)
    # The run's record of the config resolved for the data names the graph ("auto" resolved).
    assert forecaster.info.config.model.spatial_attention.spatial_keys == "graph"
    table = forecaster.params["spatial_neighbours"].value  # restored, not the stand-in graph
    np.testing.assert_array_equal(table, graph_neighbours(adjacency, 2))
