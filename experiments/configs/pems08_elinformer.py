"""python -m experiments.train --config experiments/configs/pems08_elinformer.py --workdir
runs/pems08 --set data.data_dir=$HOME/data

ELinFormer on PEMS08 (170 sensors, 62 days at 5 min, flow, split 6:2:2) from the file you have:
`data.data_dir` is the folder holding `pems08/PEMS08.npz` (docs/data.md). The backbone and budget
are the Los-loop config's (model dim 64, 1 + 1 layers, 25-step epochs); PEMS08 spans nine
weeks, so the day-of-week embedding is on. For the paper-size model and full epochs see
docs/training.md. Not run by this project (the full PEMS08 file is not in ../shared/data), so no
result is quoted here; `python -m experiments.compare --datasets pems08` compares the attentions.
"""

from eala_jax.train import Config, DataConfig
from experiments.configs import common


def get_config() -> Config:
    # The shared backbone and budget (Los-loop's without its seasonal profile, chosen on Los-loop's
    # validation split, not PEMS08's; with a day-of-week embedding, as PEMS08 spans nine weeks).
    return Config(
        name="pems08_elinformer",
        data=DataConfig(name="pems08", num_nodes=170, steps_per_day=288),
        model=common.backbone(),
        train=common.budget(),
    )
