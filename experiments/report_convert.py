"""docs/results.md, "Conversion without retraining" and "What entropy matching buys": the
`experiments/results/convert_<data>.json` files of `python -m experiments.convert` as tables (mean
± std over the seeds present) and a plot per data set (test MAE against fine-tuning steps, one line
per attention, one panel per scope), and the table that sets EALA's entropy matching (θ*) beside
θ = 1, LLN, eala_local, elu+1, Performer and softmax, from scratch (`accuracy_<data>.json` of
`experiments.compare`) and converted."""

from __future__ import annotations

import pathlib
from collections.abc import Iterable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "MATCHING_ROWS",
    "convert_plot",
    "convert_section",
    "convert_table",
    "entropy_matching_table",
]

REFERENCE = "reference"
#: Rows of "What entropy matching buys": (row label, experiments.compare variant, --to label of
#: experiments.convert; None: the unconverted softmax model).
MATCHING_ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("EALA θ* (entropy matching)", "eala", "eala"),
    ("EALA θ = 1 (centred linear)", "theta_one", "eala:theta=1.0"),
    ("LLN", "lln", "lln"),
    ("eala_local", "eala_local", "eala_local"),
    ("elu+1 linear", "linear", "linear"),
    ("Performer", "performer", "performer"),
    ("softmax", "softmax", None),
)


def _same_attention(label: str, wanted: str) -> bool:
    """Whether two --to labels name the same options (`eala:theta=1` is `eala:theta=1.0`)."""
    if label == wanted:
        return True
    from experiments.convert import parse_attention

    try:
        return parse_attention(label)[1] == parse_attention(wanted)[1]
    except ValueError:  # an attention this version does not register
        return False


def _stats(values: list[float]) -> tuple[float, float, int]:
    return float(np.mean(values)), float(np.std(values)), len(values)


def _cell(values: list[float], digits: int = 3) -> str:
    if not values:
        return "—"
    mean, std, n = _stats(values)
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if n > 1 else "")


def _select(rows: Iterable[dict], **match: Any) -> list[dict]:
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def _order(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["attention"] for r in rows if r["scope"] != REFERENCE))


def convert_table(doc: dict[str, Any]) -> list[str]:
    """Markdown lines: test MAE (12-step mean) of the reference, and of each (scope, attention)
    after each fine-tuning budget, converted and from scratch; the last converted budget's RMSE;
    the spatial maps' mean exact entropy at step 0 and after the last budget."""
    rows = doc["rows"]
    steps = sorted({r["steps"] for r in rows if r["scope"] != REFERENCE})
    scratch_steps = sorted({r["steps"] for r in rows if r["from_scratch"]})
    last = steps[-1] if steps else 0
    head = (
        ["scope", "attention", "seeds"]
        + [f"MAE {s} steps" for s in steps]
        + [f"scratch MAE {s}" for s in scratch_steps]
        + [f"RMSE {last} steps", f"spatial H (0 → {last})"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    reference = _select(rows, scope=REFERENCE)
    if reference:
        mae = [r["test_mae"] for r in reference]
        entropy = [r["entropy"]["spatial"] for r in reference if "entropy" in r]
        cells = ["unconverted", "softmax", str(len(reference))]
        cells += [_cell(mae)] * len(steps) + ["—"] * len(scratch_steps)
        cells += [_cell([r["test_rmse"] for r in reference]), _cell(entropy, 2)]
        lines.append("| " + " | ".join(cells) + " |")
    for scope in dict.fromkeys(r["scope"] for r in rows if r["scope"] != REFERENCE):
        for attention in _order(_select(rows, scope=scope)):
            mine = _select(rows, scope=scope, attention=attention)
            converted = [r for r in mine if not r["from_scratch"]]
            seeds = sorted({r["seed"] for r in converted})
            cells = [scope, attention, str(len(seeds))]
            cells += [_cell([r["test_mae"] for r in _select(converted, steps=s)]) for s in steps]
            cells += [
                _cell([r["test_mae"] for r in _select(mine, steps=s, from_scratch=True)])
                for s in scratch_steps
            ]
            cells.append(_cell([r["test_rmse"] for r in _select(converted, steps=last)]))
            h0, h1 = (
                [r["entropy"]["spatial"] for r in _select(converted, steps=s) if "entropy" in r]
                for s in (steps[0], last)
            )
            cells.append(f"{_cell(h0, 2)} → {_cell(h1, 2)}" if h0 or h1 else "—")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def convert_plot(doc: dict[str, Any], path: pathlib.Path) -> None:
    """Test MAE against fine-tuning steps: one panel per scope, one colour per attention (solid:
    converted; dotted: from scratch), the unconverted softmax model dashed; mean over seeds."""
    rows = doc["rows"]
    scopes = list(dict.fromkeys(r["scope"] for r in rows if r["scope"] != REFERENCE))
    fig, axes = plt.subplots(
        1, max(len(scopes), 1), figsize=(5.5 * max(len(scopes), 1), 3.8), squeeze=False
    )
    reference = [r["test_mae"] for r in _select(rows, scope=REFERENCE)]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, scope in zip(axes[0], scopes, strict=False):
        for i, attention in enumerate(_order(_select(rows, scope=scope))):
            for scratch, style in ((False, "-o"), (True, ":s")):
                mine = _select(rows, scope=scope, attention=attention, from_scratch=scratch)
                steps = sorted({r["steps"] for r in mine})
                if not steps:
                    continue
                means = [np.mean([r["test_mae"] for r in _select(mine, steps=s)]) for s in steps]
                ax.plot(
                    steps,
                    means,
                    style,
                    color=colours[i % len(colours)],
                    label=attention + (" (scratch)" if scratch else ""),
                    ms=4,
                )
        if reference:
            ax.axhline(np.mean(reference), color="k", ls="--", lw=1, label="softmax (unconverted)")
        ax.set(
            xlabel="fine-tuning steps",
            ylabel="test MAE (12-step mean)",
            title=f"{doc['data']}: {scope} converted",
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def entropy_matching_table(
    convert: dict[str, Any] | None, accuracy: dict[str, Any] | None, *, scope: str = "spatial"
) -> list[str]:
    """Markdown lines of "What entropy matching buys" for one data set: each row of
    `MATCHING_ROWS` with its from-scratch test MAE (mean ± std over seeds, `accuracy`), its test
    MAE converted from the softmax model in `scope` after each budget (`convert`) and the spatial
    maps' mean exact entropy after the last budget ("—" where a file or row is missing)."""
    rows = convert["rows"] if convert else []
    steps = sorted({r["steps"] for r in rows if r["scope"] == scope and not r["from_scratch"]})
    head = ["attention", "from scratch (seeds)"] + [f"converted, {s} steps" for s in steps]
    head.append("spatial H, converted")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    variants = (accuracy or {}).get("variants", {})
    reference = _select(rows, scope=REFERENCE)
    for label, variant, wanted in MATCHING_ROWS:
        scratch = variants.get(variant)
        cells = [label]
        if scratch:
            mean, std = scratch["mae@mean"]
            cells.append(f"{mean:.3f} ± {std:.3f} ({scratch.get('seeds', 1)})")
        else:
            cells.append("—")
        if wanted is None:
            cells += [_cell([r["test_mae"] for r in reference])] * len(steps)
            cells.append(_cell([r["entropy"]["spatial"] for r in reference if "entropy" in r], 2))
        else:
            mine = [
                r
                for r in _select(rows, scope=scope, from_scratch=False)
                if _same_attention(r["attention"], wanted)
            ]
            cells += [_cell([r["test_mae"] for r in _select(mine, steps=s)]) for s in steps]
            last = _select(mine, steps=steps[-1]) if steps else []
            cells.append(_cell([r["entropy"]["spatial"] for r in last if "entropy" in r], 2))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def convert_section(
    docs: list[dict[str, Any]], figures: pathlib.Path, accuracy: dict[str, dict[str, Any]]
) -> list[str]:
    """Markdown lines of both sections for the convert files `docs` (their plots written to
    `figures`); `accuracy`: the `accuracy_<data>.json` documents by data set."""
    lines = [
        "### Conversion without retraining",
        "",
        "A trained softmax model (both axes softmax) with the attention of its spatial layers "
        "(`spatial`) or of both axes (`both`) replaced, the trained parameters kept (every "
        "attention's layer holds the same projections; the Performer's random projection is "
        "drawn fresh), tested with no training (0 steps) and after fine-tuning with the run's "
        "optimiser at a constant learning rate (the run's at its best checkpoint unless the "
        "command says otherwise), a fresh Adam state; scratch: the same attention from random "
        "init with the run's schedule for the same steps. Test MAE over the 12-step mean, mean ± "
        "std over the seeds (softmax runs) present; spatial H: the mean exact softmax entropy "
        "(nats) of the spatial layers' scores on 16 test windows.",
        "",
    ]
    for doc in docs:
        data = doc["data"]
        figure = f"convert_{data}.png"
        convert_plot(doc, figures / figure)
        lines += [f"#### {data}", ""]
        lines += [f"`{command}`" for command in doc.get("commands", [])]
        lines += ["", *convert_table(doc), "", f"![conversion](figures/{figure})", ""]
    lines += [
        "### What entropy matching buys",
        "",
        "Per data set: each attention trained from scratch (`experiments.compare`, test MAE, mean "
        "± std over the seeds in brackets) and converted from the softmax model in the spatial "
        "layers (the table above); the spatial maps' mean exact entropy after the last budget.",
        "",
    ]
    for doc in docs:
        lines += [f"#### {doc['data']}", ""]
        lines += entropy_matching_table(doc, accuracy.get(doc["data"])) + [""]
    return lines
