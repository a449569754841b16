"""Every recipe trains end to end (one short epoch, evaluation, tables) on synthetic data of its
kind, picked by `data.recipe="auto"` from the file alone; and the generic config trains a 5-minute
CSV through the command line the way README shows."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eala_jax.data import SpatioTemporalSeries
from eala_jax.data.synthetic import make_synthetic_counts, make_synthetic_series, write_series_csv
from eala_jax.train import Config, DataConfig, TrainConfig, train_and_evaluate
from eala_jax.train.recipes import RECIPES
from tests.train.train_helpers import TINY_MODEL

ROOT = Path(__file__).resolve().parents[2]


def _seasonal_series(step_minutes: int, num_steps: int, seed: int = 0) -> SpatioTemporalSeries:
    """Daily or weekly values of 4 sensors: weekly and yearly cycles, AR(1) noise, a few gaps."""
    rng = np.random.default_rng(seed)
    days = np.arange(num_steps) * step_minutes / 1440
    level = rng.uniform(20, 40, 4)
    cycle = 3 * np.sin(2 * np.pi * days / 7)[:, None] + 5 * np.sin(2 * np.pi * days / 365.25)[
        :, None
    ] * rng.uniform(0.5, 1.5, 4)
    noise = np.zeros((num_steps, 4))
    for t in range(1, num_steps):
        noise[t] = 0.7 * noise[t - 1] + rng.normal(0, 1, 4)
    values = (level + cycle + noise).astype(np.float32)
    values[rng.random(values.shape) < 0.02] = np.nan
    return SpatioTemporalSeries(
        name="seasonal",
        values=values,
        steps_per_day=1,
        start_time=np.datetime64("2020-01-06T00:00"),
        step_minutes=step_minutes,
    )


# Each kind of data, sized to give at least one training batch of 8 under its recipe's windows.
KINDS = {
    "sub_hourly": lambda: make_synthetic_series(num_nodes=4, num_days=3),
    "hourly_counts": lambda: make_synthetic_counts(num_nodes=4, num_days=14),
    "hourly": lambda: make_synthetic_series(
        num_nodes=4, num_days=14, step_minutes=60, missing_stretches_per_node=0.2
    ),
    "daily": lambda: _seasonal_series(1440, 400),
    "weekly": lambda: _seasonal_series(10080, 160),
}


def _generic_config(path: Path) -> Config:
    model = dataclasses.replace(TINY_MODEL, tod_embedding_dim=None, dow_embedding_dim=None)
    return Config(
        name="recipe",
        data=DataConfig(
            name="generic", recipe="auto", options=(("path", str(path)), ("time_column", "time"))
        ),
        model=model,
        train=TrainConfig(
            batch_size=8,
            eval_batch_size=64,
            max_epochs=1,
            max_steps_per_epoch=2,
            milestones=(),
            parallel="none",
        ),
        progress_bar=False,
        plots=False,
    )


def test_every_kind_of_data_has_its_end_to_end_test():
    assert set(KINDS) == set(RECIPES)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_recipe_trains_evaluates_and_writes_tables(tmp_path, name):
    write_series_csv(KINDS[name](), tmp_path / "data.csv")
    results = train_and_evaluate(_generic_config(tmp_path / "data.csv"), tmp_path / "run")
    recipe = RECIPES[name]
    assert results["data_notes"][0].startswith(f"Recipe {name} ")
    assert (results["in_steps"], results["out_steps"]) == (recipe.in_steps, recipe.out_steps)
    assert results["epochs"] == 1 and results["steps"] == 2
    model = results["test"]["model"]
    assert len(model["mae"]) == recipe.out_steps
    assert np.isfinite(model["mae_mean"]) and np.isfinite(model["rmse_mean"])
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["test"]["model"]["mae_mean"] == pytest.approx(model["mae_mean"])
    assert (tmp_path / "run" / "results.md").read_text().startswith("# recipe:")


def test_generic_config_trains_a_five_minute_csv_from_the_command_line(tmp_path):
    # README's own-file path: the generic config, recipe auto, a CSV with a time column.
    write_series_csv(make_synthetic_series(num_nodes=4, num_days=3), tmp_path / "mine.csv")
    options = json.dumps({"path": str(tmp_path / "mine.csv"), "time_column": "time"})
    command = [
        sys.executable,
        "-m",
        "experiments.train",
        "--config",
        "experiments/configs/generic_elinformer.py",
        "--workdir",
        str(tmp_path / "run"),
        "--set",
        f"data.options={options}",
        "--set",
        "train.max_epochs=1",
        "--set",
        "train.max_steps_per_epoch=2",
        "--set",
        "progress_bar=false",
        "--set",
        "plots=false",
    ]
    env = {**os.environ, "EALA_TCMALLOC": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Recipe sub_hourly" in done.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["out_steps"] == 12 and np.isfinite(results["test"]["model"]["mae_mean"])
