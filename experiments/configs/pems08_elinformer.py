"""python -m experiments.train --config experiments/configs/pems08_elinformer.py --workdir runs/pems08 --set data.data_dir=~/data

ELinFormer on PEMS08 (170 sensors, 62 days at 5 min, flow, split 6:2:2) from the file you have:
`data.data_dir` is the folder holding `pems08/PEMS08.npz` (docs/data.md). The backbone is the CPU
budget of the Los-loop config (model dim 64, 1 + 1 layers, 25-step epochs); PEMS08 spans nine
weeks, so the day-of-week embedding is on. For the paper-size model and full epochs see
docs/training.md. Not run by this project (the full PEMS08 file is not in ../shared/data), so no
result is quoted here; `python -m experiments.compare --datasets pems08` compares the attentions.
"""

from eala_jax.train import Config, DataConfig, ModelConfig, TrainConfig


def get_config() -> Config:
    return Config(
        name="pems08_elinformer",
        data=DataConfig(name="pems08", num_nodes=170, steps_per_day=288),
        model=ModelConfig(
            temporal_attention="eala",
            spatial_attention="eala",
            temporal_attention_options=(("estimator", "gaussian"),),
            spatial_attention_options=(("estimator", "gaussian"),),
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
            max_epochs=30,
            patience=5,
            max_steps_per_epoch=25,
            learning_rate=1e-3,
            weight_decay=3e-4,
            milestones=(7, 11),
            lr_decay=0.1,
            max_grad_norm=5.0,
            loss="mae",
        ),
    )
