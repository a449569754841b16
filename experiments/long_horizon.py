"""Long-horizon benchmark protocol: ELinFormer on ETTh1 / ETTh2 / exchange_rate at long look-backs,
one command per table row, results gathered in `experiments/results/long_horizon.json`.

    python -m experiments.long_horizon --dataset etth1 --in-steps 336 --horizon 96 --seeds 0
    python -m experiments.long_horizon --dataset etth1 --in-steps 720 --horizon 96 \\
        --variant softmax_temporal --seeds 0
    python -m experiments.long_horizon --step-time --dataset etth1 --in-steps 336 720 --horizon 96
    python -m experiments.long_horizon --baselines         # baselines missing from stored rows
    python -m experiments.long_horizon --markdown          # the docs/results.md section

Protocol (docs/results.md, "Long horizons"): the standard cuts of `eala_jax.data.registry` (ETT:
12/4/4 months; exchange_rate: int(70 %) / rest / int(20 %)), val and test windows whose inputs reach
back `in_steps` before their split, every variable z-scored with its training mean and std
(`per_node_zscore=True`), MSE and MAE over all variables and horizon steps of every test window
(`MetricAccumulator`'s `mse_mean` / `mae_mean` in those units). Each row trains
`experiments/configs/long_horizon.py` with the row's data set, input, horizon, variant and seed in
`<workdir>/<dataset>_in<T>_h<H>_<variant>/seed<k>` (a finished run is reused, an interrupted one
resumes), then stores its test MSE / MAE and the last-value, seasonal-naive (period chosen on
validation) and historical-average baselines of the same windows; `--baselines` scores them for
stored rows that lack one, without training. `--step-time` times one training step of EALA against
softmax temporal attention (same config, same process). The published DLinear and PatchTST numbers
printed beside ours are in `experiments.published`, with paper and table; the docs section is
written by `experiments.report_long_horizon`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

import numpy as np

from eala_jax.allocator import reexec_with_tcmalloc
from eala_jax.bench.machine import machine_info
from eala_jax.models import BASELINE_NAMES
from eala_jax.train import (
    TEST_WINDOWS_FILE,
    Config,
    apply_overrides,
    check_workdir,
    load_config_file,
    prepare_data,
    train_and_evaluate,
)
from experiments.published import published_entries, scores_on_published_windows

CONFIG = pathlib.Path("experiments/configs/long_horizon.py")
RESULTS = pathlib.Path("experiments/results/long_horizon.json")
DATASETS = ("etth1", "etth2", "exchange_rate")
#: Variant name -> config overrides on top of the row's data set, input and horizon. Rows of
#: earlier configs and variants keep their overrides and config in the results file.
VARIANTS: dict[str, tuple[str, ...]] = {
    "eala": (),
    "softmax_temporal": ("model.temporal_attention=softmax",),
    # NLinear's normalisation instead of RevIN (the config's): each window's last input value
    # subtracted and added back (a fresh model forecasts the last value); "_std" also divides by
    # the window's input std.
    "last_norm": ("model.instance_norm=last",),
    "last_std_norm": ("model.instance_norm=last_std",),
    # ... with an L2 pull towards the zero head, i.e. towards the last value (exchange_rate
    # validation, experiments/configs/long_horizon.py).
    "last_std_norm_wd": ("model.instance_norm=last_std", "train.weight_decay=1e-2"),
    # One token a step: the temporal layers attend over every input step (T_in tokens).
    "no_patch": ("model.patch_len=1", "model.patch_stride=1"),
    "no_patch_softmax_temporal": (
        "model.patch_len=1",
        "model.patch_stride=1",
        "model.temporal_attention=softmax",
    ),
}


def row_key(dataset: str, in_steps: int, horizon: int, variant: str) -> str:
    return f"{dataset}_in{in_steps}_h{horizon}_{variant}"


def config_for(
    dataset: str,
    in_steps: int,
    horizon: int,
    overrides: list[str],
    *,
    seed: int = 0,
    name: str = "",
) -> Config:
    """The long-horizon config with a row's data set, input, horizon and seed, then `overrides`."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    settings = [
        f"data.name={dataset}",
        f"data.in_steps={in_steps}",
        f"data.out_steps={horizon}",
        f"train.seed={seed}",
        *([f"name={name}"] if name else []),
        *overrides,
    ]
    return apply_overrides(load_config_file(CONFIG), settings)


def row_config(
    dataset: str, in_steps: int, horizon: int, variant: str, seed: int, extra: list[str]
) -> Config:
    """The config of one run: the long-horizon config with the row's settings and `extra`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    name = f"{row_key(dataset, in_steps, horizon, variant)}_seed{seed}"
    overrides = [*VARIANTS[variant], *extra]
    return config_for(dataset, in_steps, horizon, overrides, seed=seed, name=name)


def stored_row_config(row: dict[str, Any]) -> Config:
    """Today's config for a stored row of the results file: its data set, input and horizon and
    the overrides stored with it (its variant's and any `--set`), whatever the variant's name."""
    return config_for(row["dataset"], row["in_steps"], row["horizon"], row["overrides"])


#: Settings that the first config summaries did not name, at the values every row stored before
#: them was trained with (`config_summary` names one only where a config moves it from there, so
#: the stored summaries of those rows still read as their config's). Variants' own settings
#: (weight decay, instance norm) are stored with each row as its overrides.
UNNAMED_BEFORE = {
    "model dim": 64,
    "linear path": False,
    "head dropout": 0.0,
    "loss": "huber",
}


def config_summary(config: Config) -> str:
    """The model size and budget of a row's config in words (stored with the row, so a table that
    mixes rows trained with different configs says so)."""
    m, t = config.model, config.train
    milestones = ", ".join(str(e) for e in t.milestones)
    summary = (
        f"{m.num_temporal_layers} temporal + {m.num_spatial_layers} spatial layers, dropout "
        f"{m.dropout:g}; up to {t.max_epochs} epochs x {t.max_steps_per_epoch} steps of batch "
        f"{t.batch_size}, patience {t.patience}, lr {t.learning_rate:g} (x{t.lr_decay:g} at epoch "
        f"{milestones})"
    )
    now = {
        "model dim": m.model_dim,
        "linear path": m.linear_path,
        "head dropout": m.head_dropout,
        "loss": t.loss,
    }
    named = [
        key
        if value is True
        else f"{key} {value:g}"
        if isinstance(value, float)
        else f"{key} {value}"
        for key, value in now.items()
        if value != UNNAMED_BEFORE[key]
    ]
    return summary + "".join(f"; {item}" for item in named)


def _scores(table: dict[str, Any]) -> dict[str, Any]:
    """MSE and MAE of one results table (MSE from the RMSE where the table has none); the seasonal
    naive's period is kept beside them."""
    mse = table["mse_mean"] if "mse_mean" in table else table["rmse_mean"] ** 2
    scores: dict[str, Any] = {"mse": float(mse), "mae": float(table["mae_mean"])}
    if "period" in table:
        scores["period"] = table["period"]
    return scores


def row_baselines(dataset: str, in_steps: int, horizon: int) -> dict[str, dict[str, Any]]:
    """Test MSE / MAE of every baseline of `BASELINE_NAMES` on a row's windows, without training
    (the same splits, scaler and historical average as the row's run: `prepare_data` of its
    config)."""
    from eala_jax.models import evaluate_baselines

    prepared = prepare_data(row_config(dataset, in_steps, horizon, "eala", 0, []))
    tables = evaluate_baselines(
        prepared.splits, "test", scaler=prepared.splits.scaler, average=prepared.average
    )
    missing = [name for name in BASELINE_NAMES if name not in tables]
    if missing:
        raise ValueError(f"no {', '.join(missing)} baseline for {dataset} (evaluate_baselines)")
    return {name: _scores(tables[name]) for name in BASELINE_NAMES}


def run_row(
    dataset: str,
    in_steps: int,
    horizon: int,
    variant: str,
    seeds: list[int],
    workdir: pathlib.Path,
    extra: list[str],
) -> dict[str, Any]:
    """Trains (or reuses) every seed of one row; returns the row's entry of the results file."""
    key = row_key(dataset, in_steps, horizon, variant)
    runs: dict[str, Any] = {}
    baselines: dict[str, dict[str, float]] = {}
    for seed in seeds:
        config = row_config(dataset, in_steps, horizon, variant, seed, extra)
        run_dir = workdir / key / f"seed{seed}"
        done = run_dir / "results.json"
        if done.is_file():  # reused only if trained with this very config (else an error)
            check_workdir(config, run_dir)
            result = json.loads(done.read_text())
        else:
            result = train_and_evaluate(config, str(run_dir))
        test = result["test"]
        runs[str(seed)] = {
            **_scores(test["model"]),
            "epochs": result["epochs"],
            "best_epoch": result["best_epoch"],
            "stop_reason": result["stop_reason"],
            "time_per_epoch_s": result["time_per_epoch_s"],
            "num_parameters": result["num_parameters"],
        }
        windows_file = run_dir / TEST_WINDOWS_FILE
        if windows_file.is_file():  # runs from before the file was written lack it
            sums = dict(np.load(windows_file))
            runs[str(seed)]["published_windows"] = scores_on_published_windows(
                sums, dataset, in_steps, horizon
            )
        if all(name in test for name in BASELINE_NAMES):
            baselines = {name: _scores(test[name]) for name in BASELINE_NAMES}
    if not baselines:  # runs from before the seasonal naive was stored: score them here
        baselines = row_baselines(dataset, in_steps, horizon)
    scores = np.array([[r["mse"], r["mae"]] for r in runs.values()])
    on_published: dict[str, Any] = {}
    if all("published_windows" in r for r in runs.values()):
        for model in published_entries(dataset, in_steps, horizon):
            per_seed = [r["published_windows"][model] for r in runs.values()]
            on_published[model] = {
                "windows": per_seed[0]["windows"],
                "of": per_seed[0]["of"],
                **{
                    metric: [
                        float(np.mean([x[metric] for x in per_seed])),
                        float(np.std([x[metric] for x in per_seed])),
                    ]
                    for metric in ("mse", "mae")
                },
            }
    return {
        "dataset": dataset,
        "in_steps": in_steps,
        "horizon": horizon,
        "variant": variant,
        "overrides": list(VARIANTS[variant]) + extra,
        "config": config_summary(row_config(dataset, in_steps, horizon, variant, 0, extra)),
        "seeds": runs,
        "mse": [float(scores[:, 0].mean()), float(scores[:, 0].std())],
        "mae": [float(scores[:, 1].mean()), float(scores[:, 1].std())],
        "baselines": baselines,
        **({"published_windows": on_published} if on_published else {}),
    }


def step_time(
    dataset: str, in_steps: int, horizon: int, variant: str, batch: int, extra: list[str]
) -> dict[str, Any]:
    """Median time of one training step of a row's model on a synthetic batch (compile apart)."""
    from eala_jax.bench.step import config_step_and_args
    from eala_jax.bench.timing import measure

    config = row_config(dataset, in_steps, horizon, variant, 0, extra)
    num_nodes = {"etth1": 7, "etth2": 7, "exchange_rate": 8}[dataset]
    steps_per_day = 1 if dataset == "exchange_rate" else 24
    update, args = config_step_and_args(config, num_nodes, batch, steps_per_day=steps_per_day)
    timing = measure(update, *args, repeats=3, max_seconds=120.0)
    return {
        "dataset": dataset,
        "in_steps": in_steps,
        "horizon": horizon,
        "variant": variant,
        "batch": batch,
        "config": config_summary(config),
        **timing,
    }


def _load() -> dict[str, Any]:
    if RESULTS.is_file():
        return json.loads(RESULTS.read_text())
    return {"machine": machine_info(), "rows": {}, "step_time": []}


def _save(data: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.long_horizon", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--dataset", choices=DATASETS)
    parser.add_argument("--in-steps", type=int, nargs="+", default=[336])
    parser.add_argument("--horizon", type=int, nargs="+", default=[96])
    parser.add_argument("--variant", choices=tuple(VARIANTS), nargs="+", default=["eala"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workdir", default="runs/long_horizon")
    parser.add_argument("--step-time", action="store_true", help="time one training step")
    parser.add_argument("--batch", type=int, default=32, help="batch of --step-time")
    parser.add_argument("--markdown", action="store_true", help="print the docs section")
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="score the baselines missing from stored rows (no training) and store them",
    )
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if not (args.markdown or args.baselines) and args.dataset is None:
        parser.error("--dataset is required (unless --markdown or --baselines)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown:
        from experiments.report_long_horizon import markdown  # the writer imports this module

        print("\n".join(markdown(_load())))
        return 0
    if args.baselines:
        data = _load()
        for key, row in data["rows"].items():
            if all(name in row["baselines"] for name in BASELINE_NAMES):
                continue
            row["baselines"] = row_baselines(row["dataset"], row["in_steps"], row["horizon"])
            print(key, json.dumps(row["baselines"]), file=sys.stderr)
            _save(data)
        return 0
    for in_steps in args.in_steps:
        for horizon in args.horizon:
            for variant in args.variant:
                row_config(args.dataset, in_steps, horizon, variant, 0, args.overrides)  # checks
    for in_steps in args.in_steps:
        for horizon in args.horizon:
            for variant in args.variant:
                # The file is read after the minutes of work, just before it is written: another
                # process filling other rows meanwhile keeps its rows.
                if args.step_time:
                    entry = step_time(
                        args.dataset, in_steps, horizon, variant, args.batch, args.overrides
                    )
                    data = _load()
                    data["step_time"] = [
                        t
                        for t in data["step_time"]
                        if (t["dataset"], t["in_steps"], t["horizon"], t["variant"], t["batch"])
                        != (args.dataset, in_steps, horizon, variant, args.batch)
                    ] + [entry]
                    print(json.dumps(entry), file=sys.stderr)
                else:
                    entry = run_row(
                        args.dataset,
                        in_steps,
                        horizon,
                        variant,
                        args.seeds,
                        pathlib.Path(args.workdir),
                        args.overrides,
                    )
                    data = _load()
                    data["rows"][row_key(args.dataset, in_steps, horizon, variant)] = entry
                    print(json.dumps(entry), file=sys.stderr)
                data["machine"] = machine_info()
                _save(data)
    return 0


if __name__ == "__main__":
    reexec_with_tcmalloc("experiments.long_horizon")
    sys.exit(main())
