"""Tiny configs and batches shared by the training tests (imported as a plain module)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from eala_jax.ops import EalaOptions, SoftmaxOptions
from eala_jax.train import (
    Checkpoints,
    Config,
    DataConfig,
    ModelConfig,
    TrainConfig,
    config_to_dict,
)

TINY_MODEL = ModelConfig(
    input_embedding_dim=4,
    tod_embedding_dim=4,
    dow_embedding_dim=4,
    adaptive_embedding_dim=4,
    feed_forward_dim=16,
    num_heads=2,
    num_temporal_layers=1,
    num_spatial_layers=1,
    # Fast to compile: softmax over the 12 steps, EALA (Gaussian estimate) over the nodes.
    temporal_attention=SoftmaxOptions(),
    spatial_attention=EalaOptions(estimator="gaussian"),
)

# Synthetic set cut down to 6 nodes x 3 days (864 steps): ~590 train, 63 val, 150 test windows.
TINY_DATA = DataConfig(name="synthetic", options=(("num_days", 3), ("num_nodes", 6)))


def tiny_config(**train: object) -> Config:
    """A config that trains in seconds: 2 epochs of 4 steps, batch 8, one device unless
    overridden."""
    options = dict(
        batch_size=8,
        eval_batch_size=64,
        max_epochs=2,
        max_steps_per_epoch=4,
        milestones=(1,),
        patience=0,
        parallel="none",
    )
    options.update(train)
    return Config(
        name="tiny",
        data=TINY_DATA,
        model=TINY_MODEL,
        train=TrainConfig(**options),
        progress_bar=False,
        plots=False,
    )


def with_model(config: Config, **model: object) -> Config:
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **model))


def fixed_batch(size: int = 8, seed: int = 0) -> tuple[dict[str, np.ndarray], object]:
    """`size` training windows of the tiny synthetic set, and its splits."""
    from eala_jax.data import load_dataset, make_forecast_splits

    splits = make_forecast_splits(load_dataset("synthetic", num_days=3, num_nodes=6))
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(splits.train), size, replace=False)
    items = [splits.train[int(i)] for i in idx]
    return {k: np.stack([it[k] for it in items]) for k in items[0]}, splits


def write_config_file(path: Path, config: Config) -> Path:
    """A config file for `python -m experiments.train --config` that returns `config`."""
    path.write_text(
        "import json\nfrom eala_jax.train import config_from_dict\n\n"
        "def get_config():\n    return "
        f"config_from_dict(json.loads({json.dumps(json.dumps(config_to_dict(config)))}))\n"
    )
    return path


def state_template(config: Config):
    """The split state of a fresh model and optimiser of `config` on the tiny synthetic set."""
    from flax import nnx

    from eala_jax.data import load_dataset, make_forecast_splits
    from eala_jax.train import build_model, build_optimizer

    splits = make_forecast_splits(load_dataset("synthetic", num_days=3, num_nodes=6))
    model = build_model(
        config, num_nodes=splits.num_nodes, steps_per_day=splits.steps_per_day, rngs=nnx.Rngs(0)
    )
    optimizer = nnx.Optimizer(
        model,
        build_optimizer(
            lambda _: 1e-3,
            weight_decay=config.train.weight_decay,
            max_grad_norm=config.train.max_grad_norm,
        ),
        wrt=nnx.Param,
    )
    return nnx.split((model, optimizer))[1]


def final_state(workdir: Path, template):
    """The state of `workdir`'s newest resumable checkpoint, restored onto `template`."""
    ckpt = Checkpoints(workdir)
    try:
        return ckpt.restore(template)[0]
    finally:
        ckpt.close()


def drop_time(rows):
    """Epoch rows without their wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "steps_per_s")} for r in rows]
