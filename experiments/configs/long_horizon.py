"""python -m experiments.train --config experiments/configs/long_horizon.py --workdir runs/long

Long-horizon benchmark protocol (docs/results.md, "Long horizons"): ETTh1 with input 336 and
horizon 96, z-scored per variable with training statistics; the other rows are overrides
(`python -m experiments.long_horizon` sets the data set, input, horizon and seed of each row).
Should reach test MSE 0.376 and MAE 0.396 (seed 0, best epoch 10 of 10; last value: 1.294 and
0.713); the config before (stored rows `two_layer`) 0.377 and 0.398, before the linear look-back
path (stored rows `head_only`) 0.402 and 0.411.

A CPU-sized ELinFormer: model dim 32 (16 value + 8 time of day + 8 day of week, no adaptive
embedding), 4 heads, one temporal layer and no spatial layer (each variable is forecast from its own
history, as in PatchTST's channel independence), feed-forward 128; patches of 16 steps every 8 (41
tokens at input 336, 11 at 96) and instance normalisation; a linear look-back path
(`model.linear_path`, DLinear's map from the normalised 336 inputs to the horizon, shared by the
variables, added to the head), dropout 0.3 and head dropout 0.3. Budget: up to 10 epochs of 100
steps of batch 16 (16,000 windows, about two passes over ETTh1's 8,209 training windows), learning
rate 1e-3 cut x0.3 after epoch 7, early stopping after 3 epochs without a better validation MAE,
the best validation MAE kept. The trials below, in the order they were made, chose each piece on
validation: first the spatial layer (removed), then the linear path with dropout 0.3 and head
dropout 0.3, last the single temporal layer without the adaptive embedding (variant
`small` then, the config now; the earlier config's rows are stored as `two_layer`).

How it was chosen: on the validation split only (ETTh1, input 336, seed 0), each trial
`python -m experiments.train --config experiments/configs/long_horizon.py --workdir
runs/search/<trial> --set ...` with the overrides below; validation MSE / MAE of the kept
checkpoint (z-scored units), on the shared 2-core machine (load average 2-11, other jobs running):

    horizon 96                                                     val MSE / MAE
    earlier config: model.num_spatial_layers=1 train.max_epochs=3
      train.max_steps_per_epoch=50 train.patience=2
      train.learning_rate=2e-3 train.milestones=[2]                0.773 / 0.592
    A: model.num_spatial_layers=1 (this budget)                    0.750 / 0.574
    A + model.dropout=0.3                                          0.729 / 0.568
    A + train.huber_delta=100 (the MSE loss in effect)             0.744 / 0.583
    this config (A without the spatial layer)                      0.695 / 0.558
    this config + model.dropout=0.3                                0.706 / 0.559
    seasonal naive (period: day) on the same windows               0.827 / 0.585
    horizon 336 (data.out_steps=336)
    this config (best epoch 1 of 4)                                1.301 / 0.781
    this config + model.dropout=0.3                                1.290 / 0.777
    this config + train.learning_rate=3e-4                         1.314 / 0.780
    seasonal naive (period: day)                                   1.496 / 0.813

Check on ETTh2, horizon 96 (data.name=etth2): this config 0.233 / 0.331 against the earlier
config's 0.242 / 0.338 (seasonal naive 0.271 / 0.349). On the test split the order is the other way
round (test MSE 0.316 against 0.298, the earlier row of docs/results.md at commit 6db5ed4):
validation did not foresee it. The same at ETTh1 horizon 720 (data.out_steps=720): this config
1.504 / 0.844 on validation against the earlier config's 1.526 / 0.856 (seasonal naive 1.810 /
0.918), but test MSE 0.690 against the earlier row's 0.537 (and the seasonal naive's 0.655): at 720
steps this config overfits after 200 steps (best epoch 2, validation MAE 0.844 then 0.92). (A +
train.learning_rate=5e-4 at horizon 96 was stopped unfinished.) Dropout 0.3 and the
Huber-vs-MSE choice move validation MSE by 1-2 % either way; removing the spatial layer moved it
7 %, so that is the one change kept with the longer budget.

With test MSE 6-33 % above the best published at input 336 and the h720 rows overfitting after
100-200 steps: the linear look-back path (`model.linear_path`, docs/architecture.md) and heavier
dropout, on the validation split only, seed 0, each trial `python -m experiments.train --config
experiments/configs/long_horizon.py --workdir runs/val/<trial> --set ...` with the overrides below
on the config before it (`head_only`: dropout 0.1, no head dropout, no linear path); validation
MSE / MAE of the kept checkpoint (best epoch / epochs run), same shared 2-core machine (load
average 3.5-6.5, other training jobs running):

    trial                            ETTh1 h96      ETTh1 h336     ETTh1 h720     ETTh2 h96
    head_only (earlier runs, above)  0.695 / 0.558  1.301 / 0.781  1.504 / 0.844  0.233 / 0.331
    L: model.linear_path=true        0.697 / 0.561  1.235 / 0.764  1.475 / 0.838  0.213 / 0.319
                                     (4 / 7)        (1 / 4)        (2 / 5)        (2 / 5)
    L + model.dropout=0.3
      + model.head_dropout=0.3       0.682 / 0.551  –              1.489 / 0.839  0.205 / 0.314
      (this config)                  (8 / 10)                      (2 / 5)        (4 / 7)
    L + train.learning_rate=3e-4     –              –              1.507 / 0.847  –
    L + model.adaptive_embedding_dim=0: crashed at build (xavier init of a zero-width embedding)

The linear path helps most where the head overfits (ETTh1 h336 -5 %, ETTh2 h96 -9 % in MSE) and
is neutral at ETTh1 h96; dropout 0.3 with head dropout 0.3 on top wins at both 96-step checks and
lets ETTh1 h96 train to epoch 8 of 10, while at h720 it is 1 % behind L alone, a difference this
single-seed validation does not separate from noise: one rule for every horizon, this config.
A lower learning rate does not delay the h720 overfit (best epoch 2 either way). On test
(docs/results.md, `python -m experiments.long_horizon --dataset etth1 --in-steps 336 --horizon 96
192 336 720 --seeds 0 1 2`, and etth2; load average 3.5-4.2) this config's mean MSE is below
`head_only`'s at all 8 ETT rows (ETTh1 0.376 / 0.427 / 0.454 / 0.534 against 0.396 / 0.438 /
0.464 / 0.598; ETTh2 0.289 / 0.351 / 0.377 / 0.421 against 0.302 / 0.361 / 0.378 / 0.431), within
5 % of the best published at ETTh1 h96 and ETTh2 h192, 5.3-5.5 % above at ETTh1 h192 / h336 and
ETTh2 h96, 11-19 % above at ETTh1 h720 and ETTh2 h336 / h720, and below every baseline in MSE and
MAE at all 8. The ETTh2 rows from h192 on still keep epoch 1 or 2 (of 4-5).

After those test rows, trials on this config for the rows furthest from the published numbers
(same command and machine, load average 3-6; this config's own validation numbers are those of its
seed-0 test rows, deterministic on this CPU):

    trial                            ETTh1 h96      ETTh1 h720     ETTh2 h96      ETTh2 h336
    this config                      0.682 / 0.551  1.489 / 0.839  0.205 / 0.314  0.368 / 0.414
    + train.weight_decay=1e-3        –              1.517 / 0.849  –              0.361 / 0.416
    S: model.num_temporal_layers=1
      + model.adaptive_embedding_dim=0
      (model dim 32, `small`)        0.669 / 0.547  1.462 / 0.836  0.202 / 0.307  0.354 / 0.400
                                     (10 / 10)      (3 / 6)        (10 / 10)      (10 / 10)

S wins at all four checks (MSE 1.5-4 % lower) and trains 3x faster (3-4 s an epoch); at ETTh2
h336 it trains to epoch 10 where this config stopped improving after epoch 1. Its test rows are
the variant `small` of `experiments/long_horizon.py` (`python -m experiments.long_horizon
--dataset etth1 --in-steps 336 --horizon 96 192 336 720 --variant small --seeds 0 1 2`, and etth2;
load average 2-4.5), not made the config here for want of time: test MSE (3 seeds) ETTh1 0.375 /
0.415 / 0.441 / 0.482 (+0.1 / +2.5 / +2.4 / +7.3 % against the best published), ETTh2 0.289 /
0.356 / 0.376 / 0.427 (+5.6 / +5.1 / +13.5 / +12.6 %), every baseline beaten at all 8; better
than this config on ETTh1 (h720 0.482 against 0.534), level with it on ETTh2.

S is now this config (the next session): it had won every validation check above and trains 3x
faster; its rows were trained again under the variant name `eala` so that each run keeps its
per-window test errors (`test_windows.npz`, for the published-windows comparison of
docs/training.md), and the rows of the config before are stored as `two_layer`. Trials on it for
the ETTh2 rows that stayed furthest from the published numbers, validation only, seed 0, each
`python -m experiments.train --config experiments/configs/long_horizon.py --workdir
runs/val/<trial> --set data.name=etth2 --set data.out_steps=<H> --set ...` (load average 4-5, two
trials at a time):

    trial                                                  ETTh2 h336     ETTh2 h720
    this config                                            0.354 / 0.400  0.561 / 0.523
    + train.huber_delta=100 (the MSE loss in effect)       0.358 / 0.410  –
    + train.batch_size=64                                  0.357 / 0.401  0.602 / 0.542
    + model.dropout=0.5 + model.head_dropout=0.5           0.362 / 0.409  0.594 / 0.533
    + model.tod_embedding_dim=0 + model.dow_embedding_dim=0
      (model dim 16, as PatchTST's on ETT)                 0.358 / 0.406  0.601 / 0.537
    + train.learning_rate=3e-4 + train.max_epochs=20
      + train.milestones=[15]                              0.355 / 0.405  0.602 / 0.541
    + train.learning_rate=3e-3, halved every epoch
      (RLinear's schedule: train.milestones=[1,...,9]
      train.lr_decay=0.5)                                  0.358 / 0.407  –

and on rows whose best epoch was the budget's last (10 of 10), a longer budget, `--set
train.max_epochs=20` (`data.name=etth1` for the ETTh1 row; validation MSE / MAE, best epoch /
epochs run):

    row, seed 0      this config            + train.max_epochs=20
    ETTh1 h96        0.669 / 0.547 (10/10)  0.669 / 0.547 (10/13)
    ETTh1 h192       0.946 / 0.649 (8/10)   0.946 / 0.649 (8/11)
    ETTh1 h336       1.179 / 0.738 (9/10)   1.170 / 0.737 (12/15)
    ETTh2 h96        0.202 / 0.307 (10/10)  0.202 / 0.307 (10/13)
    ETTh2 h192       0.267 / 0.350 (10/10)  0.266 / 0.348 (13/16)
    ETTh2 h336       0.354 / 0.400 (10/10)  0.354 / 0.400 (10/13)

None of the first six is better on validation, so the config stays; the longer budget changes
only rows that were still improving at epoch 10 (two of these six, by under 1 %) and is left for a
later change (it would mean training every row again). Validation ranks poorly on ETTh2: a
diagnostic run of the linear path alone (the head's output multiplied by 0, scratch code, not kept)
ties this config on h336 validation (0.354 / 0.403) and is worse on h720 validation (0.603 / 0.539),
yet on test it is worse at h336 (MSE 0.389 against 0.378) and better at h720 (0.398 against 0.453).

exchange_rate (daily, 8 currencies), where the config before the linear look-back path (`head_only`)
lost to the last value on test at every horizon: the instance normalisation (`model.instance_norm`,
docs/architecture.md) tried on the validation split only, input 336, horizon 96, seed 0, each trial
`python -m experiments.train --config experiments/configs/long_horizon.py --workdir runs/val/<trial>
--set data.name=exchange_rate --set data.out_steps=96 --set model.instance_norm=<mode> --set ...`
(or `python -m experiments.long_horizon --dataset exchange_rate --variant last_norm last_std_norm`),
same shared 2-core machine (load average 4-5):

    exchange_rate, horizon 96                                      val MSE / MAE
    this config (instance_norm="mean_std", RevIN)                  0.148 / 0.268
    RevIN + train.weight_decay=1e-2                                0.140 / 0.272
    model.instance_norm=last (NLinear)                             0.173 / 0.286
    model.instance_norm=last_std                                   0.137 / 0.255
    last_std + train.learning_rate=3e-4                            0.139 / 0.255
    last_std + train.weight_decay=1e-2 (variant last_std_norm_wd)  0.126 / 0.244
    last_std + train.weight_decay=1e-1                             0.131 / 0.246
    last value on the same windows                                 0.128 / 0.249
    seasonal naive (period: week)                                  0.137 / 0.260
    with the linear path, `python -m experiments.train ... --workdir runs/val/<trial>`, load 4:
    last_std_norm_wd + model.linear_path=true                      0.125 / 0.247
    this config (linear path, dropout 0.3, head dropout 0.3)       0.149 / 0.263

The linear path does not help here: with "last_std" and weight decay it ties
`last_std_norm_wd` (MSE 1 % lower, MAE 1 % higher), within the 2 % by which both beat the last
value on validation and which did not hold on test; with RevIN (this config) it is no better than
RevIN without it (0.148 / 0.268). Its test rows were not run.

The "last" modes start from a zero head, i.e. from the last value itself; every such trial above is
worse than it on validation after its first 100 steps. Only the L2 pull back towards the zero head
(Adam's weight decay, added to the gradient) on top of "last_std" ends below the last value on
validation (2 % in MSE and MAE); the same weight decay does not do that for RevIN. On the test split
(rows `last_std_norm_wd`, 3 seeds) it still loses to the last value at every horizon, by 10-16 % in
MSE and 5-8 % in MAE on the two-layer config then (by 6-13 % and 3-7 % on this config, the rows of
docs/results.md now), against 34-50 % and 17-24 % for the config then (rows `head_only`, stored as
`eala` before the linear look-back path, 3 seeds); and at horizon 96 seed 0 the plain "last" and
"last_std" modes, well behind on validation, came close on test (MSE 0.095 and 0.090 against 0.087):
validation ranks these close trials poorly. On ETTh1 (input 336, horizon 96, seed 0, `python -m
experiments.long_horizon --dataset etth1 --variant last_norm last_std_norm_wd`) "last" is better on
validation (0.675 / 0.552 against the then config's 0.695 / 0.558 above, run again for this
comparison with the same result; last_std + weight decay 0.710 / 0.570) but worse on test (MSE 0.422
against 0.402). The config keeps RevIN (ETTh1 / ETTh2 were chosen with it); the `last_std_norm_wd`
variant gives the exchange_rate rows with the last-value normalisation."""

from eala_jax.ops import EalaOptions
from eala_jax.train import Config, DataConfig, ModelConfig, TrainConfig


def get_config() -> Config:
    return Config(
        name="long_horizon",
        data=DataConfig(
            name="etth1",
            options=(("per_node_zscore", True),),
            in_steps=336,
            out_steps=96,
        ),
        model=ModelConfig(
            temporal_attention=EalaOptions(),
            spatial_attention=EalaOptions(),
            input_embedding_dim=16,
            tod_embedding_dim=8,
            dow_embedding_dim=8,
            adaptive_embedding_dim=0,
            feed_forward_dim=128,
            num_heads=4,
            num_temporal_layers=1,
            num_spatial_layers=0,
            dropout=0.3,
            patch_len=16,
            patch_stride=8,
            instance_norm="mean_std",
            linear_path=True,
            head_dropout=0.3,
        ),
        train=TrainConfig(
            batch_size=16,
            eval_batch_size=256,
            max_epochs=10,
            patience=3,
            max_steps_per_epoch=100,
            learning_rate=1e-3,
            weight_decay=0.0,
            milestones=(7,),
            lr_decay=0.3,
            loss="huber",
            huber_delta=1.0,
            log_every=25,
            plot_sensors=(6,),
            plot_horizon=1,
        ),
        progress_bar=False,
        plots=False,
    )
