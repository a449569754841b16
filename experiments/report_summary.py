"""The summary that opens docs/results.md: the current answer to each claim in a line or two, with a
link to its section, computed from the same result files as the sections (`experiments.report`
passes what it computed)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from eala_jax.bench.tables import with_stored_torch_rows
from experiments.report_cost import target_results
from experiments.report_long_horizon import beaten_cell, is_current, target_line
from experiments.report_reference import reference_verdicts

#: Headings of the sections the summary links to (as `experiments.report` writes them).
COST = "1. Cost of one attention call (CPU)"
STEP = "Training step of ELinFormer against the softmax backbone and the PyTorch original"
REFERENCE = "Reference training runs (to early stopping)"
ATTENTIONS = "Every attention over 3 seeds, and ablations"
LONG = "Long horizons"
ESTIMATOR = "Estimator error on random inputs"


def anchor(heading: str) -> str:
    """The link target GitHub gives a markdown heading."""
    return "#" + re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _link(heading: str, text: str = "details") -> str:
    return f"[{text}]({anchor(heading)})"


def cost_line(targets: list[tuple[str, str | None, bool | None]]) -> str:
    """Targets met: those against softmax one by one with their measured value, the others counted
    per kind (the same target at several sizes)."""
    met = sum(bool(ok) for _, _, ok in targets)
    parts = []
    groups: dict[str, list[bool | None]] = {}
    for label, value, ok in targets:
        if "softmax" in label:
            verdict = "not measured" if value is None else f"{value}, {'met' if ok else 'not met'}"
            parts.append(f"{label}: {verdict}")
        else:
            groups.setdefault(re.sub(r" at S = \d+(, batch \d+)?", "", label), []).append(ok)
    parts += [
        f"{label}: {sum(map(bool, oks))} of {len(oks)} sizes" for label, oks in groups.items()
    ]
    return (
        f"**Cost of one attention call (CPU)**: {met} of {len(targets)} targets met. "
        + "; ".join(parts)
        + f" ({_link(COST)})."
    )


def step_line(result: dict[str, Any]) -> str:
    """Per graph size at the largest batch timed, the softmax backbone's and the PyTorch original's
    step time over ELinFormer's."""
    rows = result["rows"]
    parts = []
    for nodes in sorted({r["nodes"] for r in rows}):
        batch = max(r["batch"] for r in rows if r["nodes"] == nodes)
        at = {r["attention"]: r for r in rows if (r["nodes"], r["batch"]) == (nodes, batch)}
        eala = at.get("eala")
        if not eala or eala.get("status") != "ok":
            continue
        soft, torch = at.get("softmax"), at.get("torch_staeformer")
        if soft and soft.get("status") == "ok":
            versus = f"{soft['median_s'] / eala['median_s']:.2f}× the softmax backbone's speed"
        else:
            versus = "softmax does not fit" if soft else "softmax not timed"
        if torch:
            stored = " (stored row, not same-run)" if torch.get("stored") else ""
            versus += (
                f", {torch['median_s'] / eala['median_s']:.2f}× the PyTorch original's{stored}"
            )
        parts.append(f"N = {nodes}, batch {batch}: {versus}")
    return (
        "**Training step of the paper-size ELinFormer (CPU)**: "
        + "; ".join(parts)
        + f" ({_link(STEP)})."
    )


def reference_line(dataset: str, configs: list[tuple[str, int, float, list]], best: str) -> str:
    """One data set's reference runs: each config's test MAE (12-step mean, mean over its seeds)
    and whether it beats every baseline at every reported horizon in MAE and RMSE."""
    beats = [name for name, _, _, lost in configs if not lost]
    losers = [name for name, _, _, lost in configs if lost]
    maes = ", ".join(
        f"{name} {mae:.3f}" + (f" ({seeds} seeds)" if seeds > 1 else "")
        for name, seeds, mae, _ in sorted(configs, key=lambda c: c[2])
    )
    verdict = (
        "every config beats every baseline"
        if not losers
        else f"{', '.join(beats) or 'none'} beat every baseline, {', '.join(losers)} do not"
    )
    return (
        f"**Accuracy, {dataset} (reference runs to early stopping)**: test MAE (12-step mean) "
        f"{maes}; {verdict} at h3, h6, h12 and the mean in MAE and RMSE (best baseline: {best}) "
        f"({_link(dataset, 'table')})."
    )


def attentions_line(data: dict[str, Any]) -> str:
    """The attentions of the short-budget comparison ranked by test MAE (mean over seeds)."""
    multi = {n: t for n, t in data["variants"].items() if t.get("seeds", 1) > 1}
    ranked = sorted(multi, key=lambda n: multi[n]["mae@mean"][0])
    cells = ", ".join(
        f"{n} {multi[n]['mae@mean'][0]:.3f} ± {multi[n]['mae@mean'][1]:.3f}" for n in ranked
    )
    return (
        f"**Every attention, {data['dataset']} (short budget, {len(data['seeds'])} seeds)**: test "
        f"MAE (12-step mean), best first: {cells} ({_link(ATTENTIONS)})."
    )


def long_horizon_line(data: dict[str, Any]) -> str:
    """The bars over the current config's ETT rows, and the exchange_rate rows' baselines."""
    rows = [r for r in data.get("rows", {}).values() if is_current(r)]
    text = "**Long horizons (current config)**: "
    bars = target_line(rows)
    text += bars[0][2:].rstrip(".") if bars else "no ETT row of the current config"
    exchange = [r for r in rows if r["dataset"] == "exchange_rate"]
    if exchange:
        beaten = [r for r in exchange if beaten_cell(r) == "all"]
        text += (
            f". exchange_rate: every baseline beaten at {len(beaten)} of {len(exchange)} horizons"
        )
    return text + f" ({_link(LONG)})."


def estimator_line(result: dict[str, Any]) -> str:
    """Mean entropy-estimate error of each estimator over the random inputs, lowest first."""
    names = list(result["rows"][0]["errors"])
    means = {n: float(np.mean([r["errors"][n] for r in result["rows"]])) for n in names}
    cells = ", ".join(f"{n} {means[n]:.3f}" for n in sorted(names, key=means.get))
    return (
        "**Entropy estimate on random inputs**: mean |Ĥ − H| in nats, lowest first: "
        f"{cells} ({_link(ESTIMATOR)})."
    )


def entropy_maps_line(data: dict[str, Any]) -> str:
    """Per layer of a trained model: the Gaussian estimate's error and the L1 distance to softmax's
    weights of EALA's (Gaussian) against elu+1 linear attention's."""
    parts = []
    for layer, d in data["layers"].items():
        weights = d["weights"]
        parts.append(
            f"{layer}: H {d['mean_entropy']:.2f} of log M {d['log_m']:.2f}, Gaussian estimate off "
            f"by {d['estimator_error']['gaussian']:.3f} nats, L1 to softmax's weights "
            f"{weights['eala-gaussian'][0]:.3f} (EALA) against {weights['linear (elu+1)'][0]:.3f} "
            "(elu+1 linear)"
        )
    name = data["title"].split(" (")[0].replace("Attention maps of ", "")
    return (
        f"**Trained attention maps, {name}**: " + "; ".join(parts) + f" ({_link(data['title'])})."
    )


def summary(lines: list[str]) -> list[str]:
    """The summary section from its lines (one per claim)."""
    return [
        "## Summary",
        "",
        "The current answer per claim, computed from the result files of the sections below (rows "
        "of earlier configs: [results_history.md](results_history.md)).",
        "",
        *[f"- {line}" for line in lines],
        "",
    ]


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
