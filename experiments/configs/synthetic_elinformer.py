"""python -m experiments.train --config experiments/configs/synthetic_elinformer.py --workdir runs/synthetic

The README's main job: ELinFormer (EALA in both axes, default options) on the embedded synthetic set
(20 nodes, 14 days at 5 min, split 7:1:2; no files needed), the CPU-sized backbone (model dim 64,
FFN 128, one temporal and one spatial layer), 4 full epochs of batch 16 (lr x0.1 after the 3rd), then the per-horizon test
table beside the last-value and historical-average baselines.

Should reach: RESULTS_PENDING
"""

from eala_jax.train import Config, DataConfig, ModelConfig, TrainConfig


def get_config() -> Config:
    return Config(
        name="synthetic_elinformer",
        data=DataConfig(name="synthetic"),
        model=ModelConfig(
            temporal_attention="eala",
            spatial_attention="eala",
            # Pinned rather than left to the ops' default: the third-cumulant entropy estimate.
            temporal_attention_options=(("estimator", "cumulant3"),),
            spatial_attention_options=(("estimator", "cumulant3"),),
            input_embedding_dim=12,
            tod_embedding_dim=12,
            dow_embedding_dim=12,
            adaptive_embedding_dim=28,
            feed_forward_dim=128,
            num_heads=4,
            num_temporal_layers=1,
            num_spatial_layers=1,
            dropout=0.1,
        ),
        train=TrainConfig(
            seed=0,
            batch_size=16,
            max_epochs=4,
            patience=3,
            learning_rate=1e-3,
            weight_decay=3e-4,
            milestones=(3,),
            lr_decay=0.1,
            max_grad_norm=5.0,
            loss="mae",
        ),
    )
