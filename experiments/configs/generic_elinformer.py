"""python -m experiments.train --config experiments/configs/generic_elinformer.py --workdir
runs/mine --set 'data.options={"path": "mine.csv", "time_column": "time"}'

Your own data through the generic path (docs/data.md, "Your own data set"), with the recipe picked
from the data (`data.recipe="auto"`, docs/training.md "Recipes per kind of data"): look-back,
horizon, loss and the seasonal profile follow the step size (and, for hourly data, the share of
zeros), the calendar embeddings follow the step and the training span (widths None = auto); the
training log says which recipe and which calendar features were picked, and why. Backbone sized for
2 CPU cores (embeddings 12 + 12 + 12 + 28 + seasonal 8, FFN 128, one temporal and one spatial
layer); "epochs" of at most 20 steps of batch 16, at most 10 (lr x0.1 after the 8th), early stopping
after 3 epochs without a better validation MAE.

Should reach on the synthetic hourly counts (`python -m experiments.data --write-synthetic-counts
counts.csv`, then `--set 'data.options={"path": "counts.csv", "time_column": "time"}'`; run here on
2 shared CPU cores, seed 0; recipe hourly_counts picked): test MAE / RMSE over the 12-hour mean
0.362 / 0.806 (horizon 3: 0.350 / 0.775; 6: 0.368 / 0.822; 12: 0.368 / 0.821), against historical
average 0.373 / 0.810, seasonal naive (a week) 0.411 / 0.969 and last value 0.583 / 1.286; best
epoch 6 of 9 (early stopping, patience 3); 166 s a training epoch (median). docs/training.md,
"Recipes per kind of data", has the table.
"""

from eala_jax.train import Config, DataConfig
from experiments.configs import common


def get_config() -> Config:
    return Config(
        name="generic_elinformer",
        data=DataConfig(name="generic", recipe="auto"),
        model=common.backbone(
            tod_embedding_dim=None,  # auto: on for sub-daily steps
            dow_embedding_dim=None,  # auto: on when training holds every weekday twice
        ),
        # Epochs of at most 20 steps, at most 10 (lr x0.1 after the 8th), patience 3.
        train=common.budget(max_epochs=10, patience=3, max_steps_per_epoch=20, milestones=(8,)),
    )
