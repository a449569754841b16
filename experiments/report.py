"""Regenerates docs/results.md and its plots from the result files the benchmarks and experiments
wrote.

    python -m experiments.report

Reads (each section is skipped, and says so, when its file is absent):
  benchmarks/results/attention_full.json   python -m benchmarks.attention --preset full
  benchmarks/results/train_step.json       python -m benchmarks.train_step
  benchmarks/results/profile_eala.json     python -m benchmarks.profile_eala
  benchmarks/results/estimator_error.json  python -m benchmarks.estimator_error
  experiments/results/accuracy_*.json      python -m experiments.compare
  experiments/results/entropy_maps_*.json  python -m experiments.entropy_maps
  experiments/results/reference_runs.json  python -m experiments.report --collect-runs runs/ref/*
  experiments/results/long_horizon.json    python -m experiments.long_horizon
Writes docs/results.md, its appendix docs/results_history.md (rows of earlier configs and of
variants since replaced) and docs/figures/*.png. Nothing in them is typed by hand.

`--collect-runs WORKDIR ...` first gathers the test tables of finished `experiments.train` runs
(their `results.json`, and the command that reproduces each) into
experiments/results/reference_runs.json; with `--merge` the runs already there whose (name, seed)
is not collected again are kept. The reference section shows every run, the mean ± std over the
seeds of each config, the baselines and a computed verdict: does each config beat every baseline at
every reported horizon in MAE and RMSE?
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from eala_jax.bench.machine import describe, machine_info
from eala_jax.bench.tables import (
    SOFTMAX_SIZED,
    attention_table,
    estimator_table,
    profile_table,
    train_step_table,
    with_stored_torch_rows,
)
from eala_jax.models import BASELINE_NAMES as BASELINES
from eala_jax.train import apply_overrides, config_to_dict, load_config_file
from experiments.compare import HORIZONS
from experiments.long_horizon import RESULTS as LONG_HORIZON_RESULTS
from experiments.report_long_horizon import HISTORY_FILE
from experiments.report_long_horizon import history_markdown as long_horizon_history
from experiments.report_long_horizon import markdown as long_horizon_section
from experiments.report_summary import (
    attentions_line,
    cost_line,
    entropy_maps_line,
    estimator_line,
    long_horizon_line,
    reference_line,
    step_line,
    summary,
)

DOCS = pathlib.Path("docs")
FIGURES = DOCS / "figures"


def _load(path: str) -> Any | None:
    p = pathlib.Path(path)
    return json.loads(p.read_text()) if p.is_file() else None


def _find(rows: list[dict], **match: Any) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def cost_section(result: dict[str, Any]) -> list[str]:
    rows = result["rows"]
    lines = [
        "## 1. Cost of one attention call (CPU)",
        "",
        f"`python -m benchmarks.attention --preset full` on {describe(result['machine'])}.",
        "Spatial shape: batch 16 × 12 time steps folded (192), 4 heads, head dim 38; temporal: "
        "batch 16 × 883 sensors folded, 12 steps. Median of repeated calls after warm-up; memory "
        "from XLA's analysis of the compiled program (a point over the budget is compiled, not "
        "run).",
        "",
    ]
    lines += _targets(rows, result["matmul_flops_per_s"]) + [""]
    lines.append(attention_table(result))
    _plot_cost(rows)
    lines += ["", "![time and memory against S](figures/attention_cost.png)", ""]
    return lines


def _targets(rows: list[dict], matmul: float) -> list[str]:
    """The cost targets as a markdown table: each as measured ratio and met / not met."""
    out = ["| target | measured | met |", "|---|---|---|"]
    for label, value, met in target_results(rows, matmul):
        if value is None:
            out.append(f"| {label} | not measured (a point did not fit or is absent) | — |")
        else:
            out.append(f"| {label} | {value} | {'yes' if met else 'no'} |")
    return out


def target_results(rows: list[dict], matmul: float) -> list[tuple[str, str | None, bool | None]]:
    """The cost targets: (target, measured value formatted or None where not measured, met?)."""
    out: list[tuple[str, str | None, bool | None]] = []

    def time_ratio(
        keys: int,
        batch: int,
        method: str = "eala",
        base: str = "softmax",
        mode: str = "forward+backward",
    ):
        a = _find(rows, keys=keys, batch=batch, method=method, mode=mode)
        b = _find(rows, keys=keys, batch=batch, method=base, mode=mode)
        if a and b and a["status"] == b["status"] == "ok":
            return b["median_s"] / a["median_s"]
        return None

    def add(
        label: str, value: float | None, goal: float, fmt: str = "{:.1f}×", higher: bool = True
    ):
        if value is None:
            out.append((label, None, None))
            return
        out.append((label, fmt.format(value), value >= goal if higher else value <= goal))

    add("EALA fwd+bwd ≥ 20× faster than softmax at S = 883 (batch 192)", time_ratio(883, 192), 20)
    sized = _find(rows, shape=SOFTMAX_SIZED, method="softmax", mode="forward+backward")
    small = sized["batch"] if sized else None
    add(
        f"EALA fwd+bwd ≥ 150× faster than softmax at S = 8600 (batch {small}, softmax's largest "
        "that fits)",
        time_ratio(8600, small) if small else None,
        150,
    )
    eala_mem = _find(rows, keys=8600, batch=small, method="eala", mode="forward+backward")
    add(
        f"≥ 20× less peak memory than softmax at S = 8600 (fwd+bwd, batch {small})",
        sized["peak_bytes"] / eala_mem["peak_bytes"] if eala_mem and sized else None,
        20,
    )
    for keys, batch in ((883, 192), (8600, 192), (8600, small), (32768, 24)):
        # time_ratio(method=linear, base=eala) = EALA's time / linear's time.
        add(
            f"EALA fwd+bwd within 1.2× of elu+1 linear attention at S = {keys}, batch {batch} "
            "(EALA / linear time)",
            time_ratio(keys, batch, method="linear", base="eala"),
            1.2,
            fmt="{:.2f}×",
            higher=False,
        )
    for keys, batch in ((8600, 192), (32768, 24)):
        for mode in ("forward", "forward+backward"):
            row = _find(rows, keys=keys, batch=batch, method="eala", mode=mode)
            add(
                f"EALA {mode} at S = {keys}, batch {batch}: ≥ 0.5 of measured float32 matmul FLOP/s"
                f" ({matmul / 1e9:.0f} GFLOP/s)",
                row["fraction_of_matmul"] if row and row["status"] == "ok" else None,
                0.5,
                fmt="{:.3f}",
            )
    return out


def _plot_cost(rows: list[dict]) -> None:
    """Log-log time and compiled memory per folded batch element against S (spatial shapes,
    fwd+bwd).

    Points of different batches (192, 24 at S = 32768, the softmax-sized batch) are divided by their
    batch so they share one axis; at each S the largest batch that ran (time) or compiled (memory)
    is used.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    spatial = [
        r for r in rows if r["shape"].startswith("spatial") and r["mode"] == "forward+backward"
    ]
    for method in sorted({r["method"] for r in spatial}):
        for ax, ok_only, value in (
            (axes[0], True, lambda r: r["median_s"] * 1e3),
            (axes[1], False, lambda r: r["peak_bytes"] / 2**20),
        ):
            best: dict[int, dict] = {}
            for r in spatial:
                if r["method"] == method and (r.get("status") == "ok" or not ok_only):
                    if r["keys"] not in best or r["batch"] > best[r["keys"]]["batch"]:
                        best[r["keys"]] = r
            if best:
                keys = sorted(best)
                ax.loglog(
                    keys, [value(best[s]) / best[s]["batch"] for s in keys], "o-", label=method
                )
    axes[0].set(
        xlabel="keys S",
        ylabel="ms per batch element",
        title="forward+backward time (spatial shape)",
    )
    axes[1].set(
        xlabel="keys S",
        ylabel="MiB per batch element",
        title="compiled memory (incl. points not run)",
    )
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / "attention_cost.png", dpi=120)
    plt.close(fig)


REFERENCE_RUNS = pathlib.Path("experiments/results/reference_runs.json")
CONFIGS = pathlib.Path("experiments/configs")
#: (metric, horizon) pairs the "beats every baseline" check covers: the reported horizons and the
#: mean over the forecast, in MAE and RMSE.
CHECKED = tuple((m, h) for m in ("mae", "rmse") for h in (*HORIZONS, "mean"))


def _override_value(value: Any) -> str:
    """`value` as `--set` parses it back (JSON, except a string JSON would not give back)."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value
    return json.dumps(value, separators=(",", ":"))


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and prefix != "data.options.":  # data options: one value
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def experiment_configs() -> list[pathlib.Path]:
    """The experiment config files (`experiments/configs/*.py` but their shared `common.py`)."""
    return [p for p in sorted(CONFIGS.glob("*.py")) if p.name != "common.py"]


def train_command(workdir: str, config: dict[str, Any]) -> str | None:
    """The `experiments.train` command that reproduces the run whose `config.json` is `config`:
    `experiments/configs/<name>.py` with `--set` for the seed and every field that differs from that
    file (a swapped attention set whole). A run renamed with `--set name=...` has no file of its
    name: then the config file that gives it back with the fewest `--set`s. None when no file's
    overrides give `config` back."""
    if "train" not in config:
        return None
    own = CONFIGS / f"{config.get('name')}.py"
    candidates = [own] if own.is_file() else experiment_configs()
    commands = [
        c for c in (_command_from(path, workdir, config) for path in candidates) if c is not None
    ]
    return min(commands, key=lambda c: (c.count("--set"), c), default=None)


def _command_from(path: pathlib.Path, workdir: str, config: dict[str, Any]) -> str | None:
    """`train_command` from one config file, or None when its overrides do not give `config`."""
    base_config = config_to_dict(load_config_file(path))
    base, want = _leaves(base_config), _leaves(config)
    sets = [f"train.seed={_override_value(want.get('train.seed'))}"]
    for field in ("temporal_attention", "spatial_attention"):  # another attention: set it whole
        value = config.get("model", {}).get(field)
        if isinstance(value, dict) and value.get("name") != base_config["model"][field]["name"]:
            sets.append(f"model.{field}={_override_value(value)}")
            want = {k: v for k, v in want.items() if not k.startswith(f"model.{field}.")}
    sets += [
        f"{key}={_override_value(value)}"
        for key, value in want.items()
        if key != "train.seed" and base.get(key, object()) != value
    ]
    try:
        rebuilt = config_to_dict(apply_overrides(load_config_file(path), sets))
    except (KeyError, ValueError, TypeError):
        return None
    if rebuilt != config:
        return None
    return " ".join(
        [f"python -m experiments.train --config {path} --workdir {workdir}"]
        + [f"--set {shlex.quote(s)}" for s in sets]
    )


def collect_runs(workdirs: list[str]) -> dict[str, Any]:
    """Test tables, stop reason, epoch time and the reproducing command of finished training runs,
    for the reference-run section."""
    runs = []
    for workdir in workdirs:
        path = pathlib.Path(workdir) / "results.json"
        if not path.is_file():
            raise SystemExit(
                f"--collect-runs: {path} not found (is {workdir} a finished experiments.train "
                "workdir?)"
            )
        result = json.loads(path.read_text())
        config = json.loads((pathlib.Path(workdir) / "config.json").read_text())
        keep = (
            "name",
            "data",
            "temporal_attention",
            "spatial_attention",
            "epochs",
            "best_epoch",
            "stop_reason",
            "time_per_epoch_s",
            "first_val_mae",
            "best_val_mae",
        )
        test = {}
        for model, table in result["test"].items():
            test[model] = {
                key: table[key]
                for key in ("mae", "rmse", "mape", "mae_mean", "rmse_mean", "mape_mean")
            }
            test[model].update({k: table[k] for k in ("period", "period_steps") if k in table})
        runs.append(
            {
                **{k: result[k] for k in keep},
                "seed": config["train"]["seed"],
                "workdir": str(workdir),
                "command": train_command(str(workdir), config),
                "test": test,
            }
        )
    return {"machine": machine_info(), "runs": runs}


def merge_runs(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """`new` with the runs of `old` (an earlier reference_runs.json) whose (name, seed) `new` does
    not hold, after the new ones. Kept runs are marked `"kept": true`."""
    if not old:
        return new
    have = {(r["name"], r["seed"]) for r in new["runs"]}
    kept = [{**r, "kept": True} for r in old["runs"] if (r["name"], r["seed"]) not in have]
    return {**new, "runs": new["runs"] + kept}


def _at(table: dict[str, Any], metric: str, horizon: int | str) -> float:
    return float(table[f"{metric}_mean"] if horizon == "mean" else table[metric][horizon - 1])


def seed_summary(runs: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Mean and population std (ddof 0, as `experiments.compare`) over the runs (seeds) of one
    config of the test MAE / RMSE / MAPE at each reported horizon and the forecast mean, keyed
    `"<metric>@<horizon>"`."""
    if not runs:
        raise ValueError("seed_summary: runs is empty")
    out = {}
    for metric in ("mae", "rmse", "mape"):
        for h in (*HORIZONS, "mean"):
            values = np.array([_at(r["test"]["model"], metric, h) for r in runs])
            out[f"{metric}@{h}"] = (float(values.mean()), float(values.std()))
    return out


def losses(
    model: dict[str, float], baselines: dict[str, dict[str, Any]]
) -> list[tuple[str, str, int | str, float, float]]:
    """Where `model` (`"<metric>@<horizon>"` -> value) does not beat (is not strictly below) a
    baseline table, over `CHECKED`: `(baseline, metric, horizon, model, baseline)` tuples; empty
    when it beats every baseline everywhere."""
    out = []
    for name, table in baselines.items():
        for metric, h in CHECKED:
            base = _at(table, metric, h)
            if not model[f"{metric}@{h}"] < base:
                out.append((name, metric, h, model[f"{metric}@{h}"], base))
    return out


def _loss_text(loss: tuple[str, str, int | str, float, float]) -> str:
    name, metric, h, value, base = loss
    where = "the mean" if h == "mean" else f"h{h}"
    return (
        f"{name.replace('_', ' ')} in {metric.upper()} at {where} ({value:.3f} against "
        f"{base:.3f}, +{value - base:.3f}, +{100 * (value - base) / base:.1f} %)"
    )


def dataset_baselines(runs: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None, list[str]]:
    """The baseline tables of one data set's runs (they depend on the data only): taken from the
    first run holding the most of `BASELINES`; also that run's workdir (None for an old entry) and
    a note for every other run whose baselines differ from them (relative 1e-6)."""
    source = max(runs, key=lambda r: sum(b in r["test"] for b in BASELINES))
    tables = {b: source["test"][b] for b in BASELINES if b in source["test"]}
    notes = []
    for run in runs:
        for name, table in tables.items():
            other = run["test"].get(name)
            if other is None:
                continue
            a = np.array([_at(table, m, h) for m, h in CHECKED])
            b = np.array([_at(other, m, h) for m, h in CHECKED])
            if not np.allclose(a, b, rtol=1e-6, atol=0):
                notes.append(
                    f"{run['name']} (seed {run['seed']}) has a different {name.replace('_', ' ')} "
                    f"(largest relative difference {np.max(np.abs(a - b) / np.abs(a)):.2e})"
                )
    return tables, source.get("workdir"), notes


def beats_line(
    label: str, mean: dict[str, float], per_seed: dict[int, dict[str, float]], tables: dict
) -> str:
    """The computed verdict: does `mean` (and each seed of `per_seed`) beat every baseline at every
    reported horizon in MAE and RMSE?"""
    names = ", ".join(b.replace("_", " ") for b in tables)
    lost = losses(mean, tables)
    seeds = len(per_seed)
    head = f"**{label}, " + (
        f"mean of {seeds} seeds" if seeds > 1 else f"seed {next(iter(per_seed))}"
    )
    if lost:
        text = (
            f"{head}: does not beat every baseline ({names}) at every reported horizon (h3, h6, "
            "h12, mean) in MAE and RMSE.** It loses to " + "; ".join(map(_loss_text, lost)) + "."
        )
    else:
        text = (
            f"{head}: beats every baseline ({names}) at every reported horizon (h3, h6, h12, mean) "
            "in MAE and RMSE.**"
        )
    if seeds > 1:
        lost_seeds = {k: losses(v, tables) for k, v in per_seed.items()}
        bad = {k: v for k, v in lost_seeds.items() if v}
        if not bad:
            text += " So does every seed on its own."
        else:
            text += (
                " Seeds on their own: "
                + "; ".join(
                    f"seed {k} loses to " + ", ".join(map(_loss_text, v)) for k, v in bad.items()
                )
                + "."
            )
    missing = [b.replace("_", " ") for b in BASELINES if b not in tables]
    if missing:
        text += f" Not checked (absent from the results): {', '.join(missing)}."
    return text


def _cells(table: dict[str, Any]) -> str:
    """MAE / RMSE / MAPE at each reported horizon and the mean, from one test table."""
    fmt = {"mae": "{:.3f}", "rmse": "{:.3f}", "mape": "{:.2f}"}
    return " | ".join(
        " / ".join(fmt[m].format(_at(table, m, h)) for m in ("mae", "rmse", "mape"))
        for h in (*HORIZONS, "mean")
    )


def _summary_cells(summary: dict[str, tuple[float, float]]) -> str:
    fmt = {"mae": "{:.3f} ± {:.3f}", "rmse": "{:.3f} ± {:.3f}", "mape": "{:.2f} ± {:.2f}"}
    return " | ".join(
        " / ".join(fmt[m].format(*summary[f"{m}@{h}"]) for m in ("mae", "rmse", "mape"))
        for h in (*HORIZONS, "mean")
    )


def reference_section(data: dict[str, Any]) -> list[str]:
    lines = [
        "## Reference training runs (to early stopping)",
        "",
        "`python -m experiments.train --config experiments/configs/<name>.py --workdir "
        "runs/ref/<name>_seed<k> --set train.seed=<k> --set progress_bar=false` for the configs "
        "and seeds below (CPU budget of `docs/training.md`; each row gives its command), then "
        "`python -m experiments.report --collect-runs runs/ref/*` (add `--merge` to keep the runs "
        "of the previous collection that are not collected again). Test split; MAE / RMSE / MAPE % "
        "at horizons 3, 6, 12 and the 12-step mean; s/epoch is the median training time of one "
        "25-step epoch on the shared machine. A config with several seeds gets a mean ± std row "
        "(population std over the seeds, as in the tables further down). The baselines are "
        "written by every run beside its model (`eala_jax.models.evaluate_baselines`; they depend "
        "on the data only): the seasonal naive repeats the value one period earlier, its period "
        "chosen on the validation split. The verdict under each table is computed by "
        "`experiments/report.py` from these numbers (strictly lower MAE and RMSE than every "
        "baseline at h3, h6, h12 and the mean).",
        f"Machine: {describe(data['machine'])}.",
        "",
    ]
    old_note = False
    for dataset in sorted({run["data"] for run in data["runs"]}):
        runs = [run for run in data["runs"] if run["data"] == dataset]
        tables, source, notes = dataset_baselines(runs)
        lines += [
            f"### {dataset}",
            "",
            "| model | h3 | h6 | h12 | mean 1-12 | best epoch / epochs (stop) | s/epoch | "
            "command |",
            "|---|---|---|---|---|---|---|---|",
        ]
        verdicts = []
        for name in dict.fromkeys(run["name"] for run in runs):
            group = sorted((r for r in runs if r["name"] == name), key=lambda r: r["seed"])
            for run in group:
                command = run.get("command")
                old_note |= run.get("kept", False) or "command" not in run
                cell = (
                    f"`{command}`"
                    if command
                    else (
                        "see the note below"
                        if "command" not in run
                        else "not reproducible from its config"
                    )
                )
                lines.append(
                    f"| {run['name']} (seed {run['seed']}) | {_cells(run['test']['model'])} | "
                    f"{run['best_epoch']} / {run['epochs']} ({run['stop_reason']}) | "
                    f"{run['time_per_epoch_s']:.1f} | {cell} |"
                )
            summary = seed_summary(group)
            if len(group) > 1:
                seeds = ", ".join(str(r["seed"]) for r in group)
                epochs = ", ".join(str(r["best_epoch"]) for r in group)
                lines.append(
                    f"| **{name} mean ± std (seeds {seeds})** | {_summary_cells(summary)} | "
                    f"best epochs {epochs} | "
                    f"{np.mean([r['time_per_epoch_s'] for r in group]):.1f} (mean) | "
                    "`python -m experiments.report --collect-runs "
                    + " ".join(r.get("workdir", "?") for r in group)
                    + "` |"
                )
            if tables:
                verdicts.append(
                    beats_line(
                        name,
                        {k: v[0] for k, v in summary.items()},
                        {r["seed"]: {k: v[0] for k, v in seed_summary([r]).items()} for r in group},
                        tables,
                    )
                )
        for baseline, table in tables.items():
            label = baseline.replace("_", " ")
            if "period" in table:
                label += f" (period {table['period']}, {table['period_steps']} steps)"
            origin = f"written by the run in `{source}`" if source else "written by the run above"
            lines.append(f"| {label} | {_cells(table)} | — | — | {origin} |")
        lines.append("")
        for verdict in verdicts:
            lines += [verdict, ""]
        for note in notes:
            lines += [f"Note: {note}; the baselines above are those of `{source}`.", ""]
    if old_note:
        lines += [
            "Rows whose command reads “see the note below” were collected before the report "
            "recorded commands (seed 0 only); the softmax rows ran "
            "`experiments/configs/<data>_softmax.py`, the linear and Performer rows the "
            "ELinFormer config with `--set model.temporal_attention=<a> --set "
            "model.spatial_attention=<a>`.",
            "",
        ]
    return lines


def train_step_section(result: dict[str, Any]) -> list[str]:
    return [
        "## Training step of ELinFormer against the softmax backbone and the PyTorch original",
        "",
        "`python -m benchmarks.train_step`: paper-size model (dim 152, 3 + 3 layers), Adam update, "
        "batch 16 (and the largest smaller batch softmax fits where it does not fit at 16). "
        "PyTorch STAEformer: the official code run by `benchmarks/torch_reference.py` (round robin "
        "with the JAX steps where the row says so; a stored row ran apart, docs/performance.md "
        "gives the commands). uniform: the same model with uniform attention, the floor that "
        "everything but the attention's own maths sets.",
        "",
        train_step_table(with_stored_torch_rows(result)),
        "",
    ]


def accuracy_section(path: pathlib.Path) -> list[str]:
    data = json.loads(path.read_text())
    variants = data["variants"]
    lines = [
        f"### {data['dataset']}",
        "",
        f"`python -m experiments.compare --datasets {data['dataset']} --seeds "
        f"{' '.join(map(str, data['seeds']))}`"
        + (
            f" with `{' '.join('--set ' + o for o in data['overrides'])}`"
            if data["overrides"]
            else ""
        )
        + "; mean ± std over seeds; test split; MAPE in %."
        + (f" Machine: {describe(data['machine'])}." if "machine" in data else ""),
        "",
        "| variant | seeds | MAE@3 | MAE@6 | MAE@12 | MAE mean | RMSE mean | MAPE mean | s/epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in variants.items():

        def cell(key: str, t: dict = t) -> str:
            return f"{t[key][0]:.3f} ± {t[key][1]:.3f}" if "seeds" in t else f"{t[key][0]:.3f}"

        epoch = f"{t['time_per_epoch_s']:.1f}" if "time_per_epoch_s" in t else "—"
        lines.append(
            f"| {name} | {t.get('seeds', '—')} | {cell('mae@3')} | {cell('mae@6')} | "
            f"{cell('mae@12')} | {cell('mae@mean')} | {cell('rmse@mean')} | {cell('mape@mean')} | "
            f"{epoch} |"
        )
    _plot_accuracy(data)
    lines += ["", f"![accuracy]({'figures/accuracy_' + data['dataset'] + '.png'})", ""]
    return lines


def _plot_accuracy(data: dict[str, Any]) -> None:
    names = list(data["variants"])
    means = [data["variants"][n]["mae@mean"][0] for n in names]
    stds = [data["variants"][n]["mae@mean"][1] for n in names]
    fig, ax = plt.subplots(figsize=(max(5, len(names) * 0.9), 3.5))
    ax.bar(range(len(names)), means, yerr=stds, capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="test MAE (12-step mean)", title=data["dataset"])
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / f"accuracy_{data['dataset']}.png", dpi=120)
    plt.close(fig)


def entropy_section(path: pathlib.Path) -> list[str]:
    data = json.loads(path.read_text())
    lines = [f"### {data['title']}", "", f"`{data['command']}`", ""]
    lines += data["markdown"] + [""]
    for figure in data.get("figures", []):
        lines.append(f"![{figure}](figures/{figure})")
    return lines + [""]


def reference_verdicts(data: dict[str, Any]) -> dict[str, tuple[list[tuple], str]]:
    """Per data set of the reference runs: (config, seeds, test MAE of the 12-step mean over its
    seeds, what it does not beat: `losses`) per config, and the best baseline's MAE in words."""
    out = {}
    for dataset in sorted({run["data"] for run in data["runs"]}):
        runs = [run for run in data["runs"] if run["data"] == dataset]
        tables, _, _ = dataset_baselines(runs)
        configs = []
        for name in dict.fromkeys(run["name"] for run in runs):
            group = [r for r in runs if r["name"] == name]
            mean = {k: v[0] for k, v in seed_summary(group).items()}
            configs.append((name, len(group), mean["mae@mean"], losses(mean, tables)))
        best = min(tables, key=lambda b: _at(tables[b], "mae", "mean"))
        out[dataset] = (
            configs,
            f"{best.replace('_', ' ')} {_at(tables[best], 'mae', 'mean'):.3f}",
        )
    return out


def summary_lines(
    *,
    attention: dict | None,
    step: dict | None,
    reference: dict | None,
    accuracy: list[dict],
    long_horizon: dict | None,
    estimator: dict | None,
    entropy: list[dict],
) -> list[str]:
    """One line per claim for the summary, from the result files read (each absent one skipped)."""
    out = []
    if attention:
        out.append(cost_line(target_results(attention["rows"], attention["matmul_flops_per_s"])))
    if step:
        out.append(step_line(with_stored_torch_rows(step)))
    if reference:
        for dataset, (configs, best) in reference_verdicts(reference).items():
            out.append(reference_line(dataset, configs, best))
    out += [attentions_line(data) for data in accuracy]
    if long_horizon:
        out.append(long_horizon_line(long_horizon))
    if estimator:
        out.append(estimator_line(estimator))
    out += [entropy_maps_line(data) for data in entropy]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--collect-runs",
        nargs="+",
        metavar="WORKDIR",
        default=None,
        help="finished training workdirs whose test tables go to " + str(REFERENCE_RUNS),
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --collect-runs: keep the runs of the existing " + str(REFERENCE_RUNS) + " whose "
        "(name, seed) is not collected again",
    )
    args = parser.parse_args(argv)
    if args.merge and not args.collect_runs:
        parser.error("--merge needs --collect-runs")
    if args.collect_runs:
        collected = collect_runs(args.collect_runs)
        if args.merge:
            collected = merge_runs(_load(str(REFERENCE_RUNS)), collected)
        REFERENCE_RUNS.parent.mkdir(parents=True, exist_ok=True)
        REFERENCE_RUNS.write_text(json.dumps(collected, indent=1))
        print(f"wrote {REFERENCE_RUNS}", file=sys.stderr)
    lines = [
        "# Results",
        "",
        "Generated by `python -m experiments.report` from the result files named in each section;"
        " rerun the commands shown to regenerate them. Every section names the machine it ran on.",
        "",
    ]
    head = len(lines)  # the summary goes here, once every file is read
    attention = _load("benchmarks/results/attention_full.json")
    lines += cost_section(attention) if attention else ["## 1. Cost", "", "_not yet run_", ""]
    profile = _load("benchmarks/results/profile_eala.json")
    if profile:
        lines += [
            "### Where EALA's time goes",
            "",
            "`python -m benchmarks.profile_eala`: its two matrix products alone"
            " against the whole op (the rest is memory-bound elementwise work: means, centring, "
            "layout changes).",
            "",
            profile_table(profile),
            "",
        ]
    step = _load("benchmarks/results/train_step.json")
    if step:
        lines += train_step_section(step)
    lines += ["## 2. Accuracy", ""]
    reference = _load(str(REFERENCE_RUNS))
    if reference:
        lines += reference_section(reference)
    accuracy_files = sorted(pathlib.Path("experiments/results").glob("accuracy_*.json"))
    if accuracy_files:
        lines += [
            "## Every attention over 3 seeds, and ablations",
            "",
            "Each run trains for the budget in the overrides shown (far shorter than the reference "
            "runs above, so that 3 seeds of every attention and the ablations fit on 2 CPU cores). "
            "At that budget the models are far from converged and need not beat the last-value "
            "baseline: these tables rank the attentions early in training, and the reference runs "
            "above are the long-budget comparison. Ablation rows have one seed (seed 0).",
            "",
        ]
    for path in accuracy_files:
        lines += accuracy_section(path)
    if not accuracy_files:
        lines += ["_not yet run_", ""]
    long_horizon = _load(str(LONG_HORIZON_RESULTS))
    if long_horizon:
        lines += long_horizon_section(long_horizon)
    lines += ["## 3. The entropy claim", ""]
    estimator = _load("benchmarks/results/estimator_error.json")
    if estimator:
        lines += [
            "### Estimator error on random inputs",
            "",
            "`python -m benchmarks.estimator_error`",
            "",
            estimator_table(estimator),
            "",
        ]
    entropy_files = sorted(pathlib.Path("experiments/results").glob("entropy_maps_*.json"))
    for path in entropy_files:
        lines += entropy_section(path)
    found = dict(
        attention=attention,
        step=step,
        reference=reference,
        accuracy=[json.loads(p.read_text()) for p in accuracy_files],
        long_horizon=long_horizon,
        estimator=estimator,
        entropy=[json.loads(p.read_text()) for p in entropy_files],
    )
    lines[head:head] = summary(summary_lines(**found))
    DOCS.mkdir(exist_ok=True)
    (DOCS / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {DOCS / 'results.md'}")
    history = [
        "# Results: earlier configs",
        "",
        "Appendix of [docs/results.md](results.md), generated with it by `python -m "
        "experiments.report`: the stored rows that today's configs no longer give (trained with an "
        "earlier config, or a variant since replaced), each with the config it was trained with.",
        "",
    ]
    history += long_horizon_history(long_horizon) if long_horizon else []
    (DOCS / HISTORY_FILE).write_text("\n".join(history) + "\n")
    print(f"wrote {DOCS / HISTORY_FILE}")


if __name__ == "__main__":
    main()
