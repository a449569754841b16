"""Section 1 of docs/results.md, the cost of one attention call: the targets met or not, the
table of `benchmarks/results/attention_full.json` and its plot."""

from __future__ import annotations

import pathlib
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from eala_jax.bench.machine import describe
from eala_jax.bench.tables import SOFTMAX_SIZED, attention_table


def _find(rows: list[dict], **match: Any) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def cost_section(result: dict[str, Any], figures: pathlib.Path) -> list[str]:
    """Section 1 of docs/results.md: the targets, the table and the plot (to `figures`)."""
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
    _plot_cost(rows, figures)
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


def _plot_cost(rows: list[dict], figures: pathlib.Path) -> None:
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
    figures.mkdir(parents=True, exist_ok=True)
    fig.savefig(figures / "attention_cost.png", dpi=120)
    plt.close(fig)
