"""Accuracy of ELinFormer against the same backbone with other attentions, over seeds, and
ablations.

    python -m experiments.compare --datasets los_loop sz_taxi --seeds 0 1 2 --workdir runs/compare
    python -m experiments.compare --datasets los_loop --variants theta_one theta_zero --seeds 0
    --workdir runs/ablate

Each (data set, variant, seed) trains `experiments/configs/<data set>_elinformer.py` with the
variant's overrides and the seed, with the same budget for every variant, in
`<workdir>/<data set>/<variant>/seed<k>` (a finished run is reused; an interrupted one resumes).
The test tables of every run, their mean ± std over seeds, and the last-value and historical-average
baselines go to `experiments/results/accuracy_<data set>.json`; `python -m experiments.report`
turns them into docs/results.md.
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
from eala_jax.train import Config, apply_overrides, load_config_file, train_and_evaluate

HORIZONS = (3, 6, 12)
#: Variant name -> config overrides. The attention baselines (a new attention starts from its own
#: default options), then the ablations, which change one option of EALA in both axes.
VARIANTS: dict[str, tuple[str, ...]] = {
    "eala": (),
    "softmax": ("model.temporal_attention=softmax", "model.spatial_attention=softmax"),
    "linear": ("model.temporal_attention=linear", "model.spatial_attention=linear"),
    "performer": ("model.temporal_attention=performer", "model.spatial_attention=performer"),
    "uniform": ("model.temporal_attention=uniform", "model.spatial_attention=uniform"),
    "lln": ("model.temporal_attention=lln", "model.spatial_attention=lln"),
    # Ablations (EALA in both axes unless named otherwise).
    "theta_one": ("model.temporal_attention.theta=1.0", "model.spatial_attention.theta=1.0"),
    "theta_zero": ("model.temporal_attention.theta=0.0", "model.spatial_attention.theta=0.0"),
    "theta_no_gradient": (
        "model.temporal_attention.theta_gradient=false",
        "model.spatial_attention.theta_gradient=false",
    ),
    "gaussian": (
        "model.temporal_attention.estimator=gaussian",
        "model.spatial_attention.estimator=gaussian",
    ),
    "cumulant3": (
        "model.temporal_attention.estimator=cumulant3",
        "model.spatial_attention.estimator=cumulant3",
    ),
    "segments": (
        "model.temporal_attention.estimator=segments",
        "model.temporal_attention.num_segments=4",
        "model.spatial_attention.estimator=segments",
        "model.spatial_attention.num_segments=32",
    ),
    "random_features": (
        "model.temporal_attention.estimator=random_features",
        "model.spatial_attention.estimator=random_features",
    ),
    "nonnegative": (
        "model.temporal_attention.nonnegative=true",
        "model.spatial_attention.nonnegative=true",
    ),
    "spatial_only": ("model.temporal_attention=softmax",),
}


def variant_config(dataset: str, variant: str, seed: int, extra: list[str]) -> Config:
    """The config of one run: `experiments/configs/<dataset>_elinformer.py` with the variant's
    overrides, the seed and `extra` (attention options are checked here, before any training)."""
    config = load_config_file(pathlib.Path("experiments/configs") / f"{dataset}_elinformer.py")
    return apply_overrides(
        config,
        list(VARIANTS[variant])
        + [f"train.seed={seed}", f"name={dataset}_{variant}_seed{seed}", "progress_bar=false"]
        + extra,
    )


def run_one(config: Config, workdir: pathlib.Path) -> dict[str, Any]:
    """Trains (or reuses) one run in `workdir`; returns its results.json content."""
    results_file = workdir / "results.json"
    if results_file.is_file():
        return json.loads(results_file.read_text())
    result = train_and_evaluate(config, workdir)
    if result is None:
        raise RuntimeError(f"run {workdir} stopped before finishing")
    return result


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Mean and std over seeds of test MAE/RMSE/MAPE at each horizon and the 12-step mean."""
    summary: dict[str, Any] = {}
    for variant, results in runs.items():
        table: dict[str, Any] = {}
        for metric in ("mae", "rmse", "mape"):
            per_seed = np.array(
                [r["test"]["model"][metric] for r in results], dtype=float
            )  # [seeds, T_out]
            means = np.array([r["test"]["model"][f"{metric}_mean"] for r in results], dtype=float)
            for h in HORIZONS:
                table[f"{metric}@{h}"] = (
                    float(per_seed[:, h - 1].mean()),
                    float(per_seed[:, h - 1].std()),
                )
            table[f"{metric}@mean"] = (float(means.mean()), float(means.std()))
        table["seeds"] = len(results)
        table["time_per_epoch_s"] = float(np.mean([r["time_per_epoch_s"] for r in results]))
        table["epochs"] = [r["epochs"] for r in results]
        summary[variant] = table
    first = next(iter(runs.values()))[0]
    for baseline in ("last_value", "historical_average", "seasonal_naive"):
        if baseline in first["test"]:
            base = first["test"][baseline]
            summary[baseline] = {
                f"{m}@{h}": (float(base[m][h - 1]), 0.0)
                for m in ("mae", "rmse", "mape")
                for h in HORIZONS
            }
            summary[baseline].update(
                {f"{m}@mean": (float(base[f"{m}_mean"]), 0.0) for m in ("mae", "rmse", "mape")}
            )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["los_loop", "sz_taxi"])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["eala", "softmax", "linear", "performer", "uniform", "lln"],
        choices=sorted(VARIANTS),
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", default="runs/compare")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="extra override for every run (same budget for all)",
    )
    parser.add_argument("--out-dir", default="experiments/results")
    args = parser.parse_args(argv)
    for dataset in args.datasets:  # fail before any training on a missing config
        if not (pathlib.Path("experiments/configs") / f"{dataset}_elinformer.py").is_file():
            parser.error(
                f"no config experiments/configs/{dataset}_elinformer.py for --datasets {dataset}"
            )
    configs = {  # every run's config first: a bad override fails before any training
        (dataset, variant, seed): variant_config(dataset, variant, seed, args.overrides)
        for dataset in args.datasets
        for variant in args.variants
        for seed in args.seeds
    }
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        runs = {
            variant: [
                run_one(
                    configs[dataset, variant, seed],
                    pathlib.Path(args.workdir) / dataset / variant / f"seed{seed}",
                )
                for seed in args.seeds
            ]
            for variant in args.variants
        }
        summary = summarise(runs)
        out = out_dir / f"accuracy_{dataset}.json"
        previous = json.loads(out.read_text()) if out.is_file() else {"variants": {}}
        previous["variants"].update({k: v for k, v in summary.items()})
        # Several invocations (the attentions over 3 seeds, ablations over one) share the file: the
        # seeds are their union; each variant's row keeps its own seed count.
        seeds = sorted(set(previous.get("seeds", [])) | set(args.seeds))
        previous.update(
            dataset=dataset, overrides=args.overrides, seeds=seeds, machine=machine_info()
        )
        out.write_text(json.dumps(previous, indent=1))
        print(f"{dataset}: wrote {out}", file=sys.stderr)
        for variant, table in summary.items():
            print(
                f"  {variant:20s} MAE@mean {table['mae@mean'][0]:.3f} ± {table['mae@mean'][1]:.3f}"
            )
    return 0


if __name__ == "__main__":
    reexec_with_tcmalloc("experiments.compare")  # CPU training with the fast allocator
    sys.exit(main())
