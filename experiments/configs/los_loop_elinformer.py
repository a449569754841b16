"""python -m experiments.train --config experiments/configs/los_loop_elinformer.py --workdir runs/los_loop_elinformer

ELinFormer (EALA in the temporal and the spatial layers, cumulant3 entropy estimate, θ*) on Los-loop
(207 sensors, one week at 5 min; split 7:1:2), at the CPU budget of the project's reference runs:
the EALA.md backbone shrunk to model dim 64 (embeddings 12 + 12 + 0 + 40: no day-of-week embedding,
see below), FFN 128, one temporal and
one spatial layer, and "epochs" of 30 steps (batch 16) with early stopping after 3 epochs without a
better validation MAE (at most 12). For the paper-size backbone (dim 152, FFN 256, 3 + 3 layers, full
epochs) see docs/training.md; on 2 CPU cores that is ~10 s a step.

Should reach: RESULTS_PENDING
"""

from eala_jax.train import Config, DataConfig, ModelConfig, TrainConfig


def get_config() -> Config:
    return Config(
        name="los_loop_elinformer",
        data=DataConfig(name="los_loop", num_nodes=207, steps_per_day=288),
        model=ModelConfig(
            temporal_attention="eala",
            spatial_attention="eala",
            # Pinned rather than left to the ops' default: the third-cumulant entropy estimate.
            temporal_attention_options=(("estimator", "cumulant3"),),
            spatial_attention_options=(("estimator", "cumulant3"),),
            input_embedding_dim=12,
            tod_embedding_dim=12,
            # No day-of-week embedding: Los-loop holds one week, so the validation and test
            # weekdays never occur in training and their embeddings would stay random.
            dow_embedding_dim=0,
            adaptive_embedding_dim=40,
            feed_forward_dim=128,
            num_heads=4,
            num_temporal_layers=1,
            num_spatial_layers=1,
            dropout=0.1,
        ),
        train=TrainConfig(
            seed=0,
            batch_size=16,
            max_epochs=12,
            patience=3,
            max_steps_per_epoch=30,
            learning_rate=1e-3,
            weight_decay=3e-4,
            milestones=(8, 11),
            lr_decay=0.1,
            max_grad_norm=5.0,
            loss="mae",
        ),
    )
