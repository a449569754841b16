"""What the experiment configs share, as big_vision's configs share common.py: the CPU-sized
ELinFormer backbone and the training budget of the reference runs. Not a config itself (it has no
`get_config`): each config file takes these and names only what its experiment changes.
(`long_horizon.py` has a backbone and budget of its own.)"""

from typing import Any

from eala_jax.ops import EalaOptions
from eala_jax.train import ModelConfig, TrainConfig

#: The paper-size backbone shrunk for 2 CPU cores: model dim 64 (embeddings 12 + 12 + 12 + 28),
#: FFN 128, 4 heads, one temporal and one spatial layer.
BACKBONE: dict[str, Any] = dict(
    # The Gaussian entropy estimate (the ops' default, pinned here). "cumulant3" estimated real
    # maps better in docs/estimators.md but doubled the step time here on 2 CPU cores (2.3 s
    # against 1.2 s a step at 207 nodes, under load); try it with
    # --set model.spatial_attention.estimator=cumulant3.
    temporal_attention=EalaOptions(estimator="gaussian"),
    spatial_attention=EalaOptions(estimator="gaussian"),
    input_embedding_dim=12,
    tod_embedding_dim=12,
    dow_embedding_dim=12,
    adaptive_embedding_dim=28,
    feed_forward_dim=128,
    num_heads=4,
    num_temporal_layers=1,
    num_spatial_layers=1,
    dropout=0.1,
)

#: Adam (L2 3e-4), lr 1e-3 x0.1 after epochs 7 and 11, clip 5, masked MAE; "epochs" of 25 steps of
#: batch 16, at most 30, early stopping after 5 epochs without a better validation MAE; seed 0.
BUDGET: dict[str, Any] = dict(
    seed=0,
    batch_size=16,
    max_epochs=30,
    patience=5,
    max_steps_per_epoch=25,
    learning_rate=1e-3,
    weight_decay=3e-4,
    milestones=(7, 11),
    lr_decay=0.1,
    max_grad_norm=5.0,
    loss="mae",
)


def backbone(**changes: Any) -> ModelConfig:
    """`BACKBONE` with `changes` (ModelConfig fields) in place of its values."""
    return ModelConfig(**{**BACKBONE, **changes})


def budget(**changes: Any) -> TrainConfig:
    """`BUDGET` with `changes` (TrainConfig fields) in place of its values."""
    return TrainConfig(**{**BUDGET, **changes})
