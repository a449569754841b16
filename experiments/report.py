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
  experiments/results/convert_*.json       python -m experiments.convert
Writes docs/results.md, its appendix docs/results_history.md (rows of earlier configs and of
variants since replaced) and docs/figures/*.png. Nothing in them is typed by hand. The sections are
written by experiments.report_cost, report_reference, report_long_horizon, report_convert and
report_summary (the summary that opens the file), the smaller ones here.

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
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from eala_jax.bench.machine import describe
from eala_jax.bench.tables import (
    estimator_table,
    profile_table,
    train_step_table,
    with_stored_torch_rows,
)
from experiments.long_horizon import RESULTS as LONG_HORIZON_RESULTS
from experiments.report_convert import convert_section
from experiments.report_cost import cost_section
from experiments.report_forecast import forecast_section
from experiments.report_long_horizon import HISTORY_FILE
from experiments.report_long_horizon import history_markdown as long_horizon_history
from experiments.report_long_horizon import markdown as long_horizon_section
from experiments.report_reference import (
    REFERENCE_RUNS,
    collect_runs,
    merge_runs,
    reference_section,
)
from experiments.report_summary import summary, summary_lines

DOCS = pathlib.Path("docs")
FIGURES = DOCS / "figures"


def _load(path: str) -> Any | None:
    p = pathlib.Path(path)
    return json.loads(p.read_text()) if p.is_file() else None


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
    lines += (
        cost_section(attention, FIGURES) if attention else ["## 1. Cost", "", "_not yet run_", ""]
    )
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
    convert_files = sorted(pathlib.Path("experiments/results").glob("convert_*.json"))
    if convert_files:
        accuracy = {doc["dataset"]: doc for doc in map(_load, map(str, accuracy_files))}
        lines += convert_section(
            [json.loads(p.read_text()) for p in convert_files], FIGURES, accuracy
        )
    lines += forecast_section(
        _load("experiments/results/coverage.json"),
        _load("benchmarks/results/inference.json"),
        _load("experiments/results/guard.json"),
    )
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
