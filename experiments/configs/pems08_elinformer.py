"""python -m experiments.train --config experiments/configs/pems08_elinformer.py --workdir
runs/pems08 --set data.data_dir=$HOME/data

ELinFormer on PEMS08 (170 sensors, 62 days at 5 min, flow, split 6:2:2) from the file you have:
`data.data_dir` is the folder holding `pems08/PEMS08.npz` (docs/data.md). The backbone and budget
are the Los-loop config's (model dim 64, 1 + 1 layers, 25-step epochs); PEMS08 spans nine
weeks, so the day-of-week embedding is on. For the paper-size model and full epochs see
docs/training.md. Not run by this project (the full PEMS08 file is not in ../shared/data), so no
result is quoted here; `python -m experiments.compare --datasets pems08` compares the attentions.
"""

import dataclasses
import pathlib

from eala_jax.train import Config, DataConfig, load_config_file


def get_config() -> Config:
    # los_loop_elinformer.py's backbone and budget; PEMS08's data and a day-of-week embedding.
    # Without Los-loop's seasonal profile (chosen on Los-loop's validation split, not PEMS08's).
    config = load_config_file(pathlib.Path(__file__).with_name("los_loop_elinformer.py"))
    model = dataclasses.replace(
        config.model,
        dow_embedding_dim=12,
        adaptive_embedding_dim=28,
        seasonal_embedding_dim=0,
        seasonal_residual="none",
    )
    data = DataConfig(name="pems08", num_nodes=170, steps_per_day=288)
    return dataclasses.replace(config, name="pems08_elinformer", data=data, model=model)
