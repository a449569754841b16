"""python -m experiments.train --config experiments/configs/los_loop_elinformer.py --workdir
runs/los_loop_elinformer

ELinFormer (EALA in the temporal and spatial layers, Gaussian entropy estimate, θ*) on Los-loop (207
sensors, one week at 5 min, split 7:1:2), with the paper-size backbone shrunk for 2 CPU cores: model
dim 72 (embeddings 12 + 12 + 0 + 40 + 8 seasonal, no day-of-week embedding: see below), FFN 128, 4
heads, one temporal and one spatial layer; the training split's time-of-day profile (the
historical-average table, per sensor and step of the day) as an input of width 8 and as the
additive residual target (the model predicts the deviation from the profile; a fresh model predicts
the historical average); Adam (L2 3e-4), lr 1e-3 x0.1 after epochs 7 and 11, clip 5, masked MAE;
"epochs" of 25 steps of batch 16, at most 30, early stopping after 5 epochs without a better
validation MAE. docs/training.md gives the overrides for the paper-size backbone (dim 152, FFN 256,
3 + 3 layers, full epochs), about 10 s a step at 207 nodes on 2 cores.

Los-loop holds one week, so its validation and test weekdays never occur in training; their day-of-
week embedding rows would stay random (a small model's validation error rose with them in), and the
profile is the time-of-day mean only (a weekday slot seen on one training day is that window's own
target: docs/training.md).

How the profile was chosen: on the validation split only (seed 0), each trial `python -m
experiments.train --config experiments/configs/los_loop_elinformer.py --workdir runs/trials/<trial>
--set train.seed=0 --set progress_bar=false --set ...` with the overrides below on the config as it
stood before (commit 21742e7: no profile); validation MAE / RMSE at horizons 3, 6, 12 and the
12-step mean, on the shared 2-core machine (load average 2-6, other jobs running):

                                                 h3           h6           h12          mean
    earlier config (no overrides; its per-horizon validation was not stored: best validation
      MAE over the 12-step mean 3.408, experiments/results/reference_runs.json)
    1: model.seasonal_residual=additive model.seasonal_embedding_dim=8, profile with weekday
       slots (before commit 0ebe0ee; best epoch 4 of 9: it learnt to copy its own target)
                                                 4.362/7.371  4.392/7.415  4.455/7.503  4.398/7.422
    2: train.loss=huber train.huber_delta=5.0    2.958/5.199  3.369/6.369  4.113/7.926  3.400/6.421
    3: as 1, time-of-day profile (this config;   2.956/4.996  3.167/5.548  3.581/6.307  3.189/5.540
       best epoch 29 of 30)
    last value                                   3.265/5.585  3.789/6.973  4.753/9.016  3.847/7.137
    seasonal naive (a day)                       4.064/7.405  4.081/7.424  4.125/7.487  4.085/7.429
    historical average                           4.403/7.403  4.436/7.450  4.500/7.539  4.441/7.455

Trial 3 is the only one that beats every baseline on validation at every horizon in MAE and RMSE;
it became this config, and its run is seed 0 below (its config.json equals this file's with
train.seed=0; it ran at commit 0ebe0ee, whose code differs from the next commit's in a log line
only).

Should reach (run here on 2 shared CPU cores, load average 1-6, seeds 0, 1, 2, mean ± population
std): test MAE / RMSE / MAPE % over the 12-step mean 3.758 ± 0.010 / 6.827 ± 0.020 / 10.6 (horizon
3: 3.42 / 6.04 / 9.4; 6: 3.76 / 6.85 / 10.5; 12: 4.29 / 7.82 / 12.5), against last value 4.410 /
8.422 / 11.4, seasonal naive (a day) 5.149 / 10.114 / 16.6 and historical average 5.358 / 9.178 /
17.9 (horizon 12: 5.323 / 9.138): it beats all three at horizons 3, 6, 12 and the mean in MAE and
RMSE, in every seed. Against the config without the profile (commit 21742e7, same seeds) the mean
RMSE falls from 7.635 to 6.827 and horizon 12's from 9.531 to 7.821; horizon 3's MAE rises from
3.337 to 3.420 (+2.5 %) and its MAPE from 9.2 to 9.4 %, the only numbers that got worse. Best
epochs 29, 20, 12 of 30, 25, 17 (seed 0 ran to the 30-epoch cap, the others stopped early,
patience 5); 35, 23 and 22 s a training epoch (median) with other jobs sharing the cores.
`docs/results.md` has the full table.
"""

from eala_jax.train import Config, DataConfig
from experiments.configs import common


def get_config() -> Config:
    return Config(
        name="los_loop_elinformer",
        data=DataConfig(name="los_loop", num_nodes=207, steps_per_day=288),
        model=common.backbone(
            # No day-of-week embedding: Los-loop holds one week, so the validation and test
            # weekdays never occur in training and their embeddings would stay random.
            dow_embedding_dim=0,
            adaptive_embedding_dim=40,
            # The training split's time-of-day profile (the historical average) as an input of
            # width 8 and as the additive residual target: the model predicts the deviation from
            # it and starts from it (trials in the docstring).
            seasonal_embedding_dim=8,
            seasonal_residual="additive",
        ),
        train=common.budget(),
    )
