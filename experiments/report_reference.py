"""The reference training runs of docs/results.md: collecting finished runs (their test tables and
the command that reproduces each), the mean over seeds, the verdict against the baselines and the
section itself."""

from __future__ import annotations

import json
import pathlib
import shlex
from typing import Any

import numpy as np

from eala_jax.bench.machine import describe, machine_info
from eala_jax.models import BASELINE_NAMES as BASELINES
from eala_jax.train import apply_overrides, config_to_dict, load_config_file
from experiments.compare import HORIZONS

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
