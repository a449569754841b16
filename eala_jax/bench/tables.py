"""Markdown tables of the stored benchmark results (`benchmarks/results/*.json`): printed by each
benchmark and gathered into docs/results.md by `experiments.report`."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from eala_jax.bench.inputs import DIM, HEADS
from eala_jax.bench.machine import describe

#: The shape label of the attention benchmark's points at softmax's largest fitting batch.
SOFTMAX_SIZED = "spatial (softmax-sized batch)"
#: The attention label of the PyTorch original's rows in the training-step results.
TORCH = "torch_staeformer"
#: Where `benchmarks.torch_reference` / `benchmarks.train_step --torch-python` store those rows.
TORCH_RESULTS = pathlib.Path("benchmarks/results/torch_staeformer.json")


def attention_table(result: dict[str, Any], baseline: str = "softmax") -> str:
    """Markdown: time per call and the baseline's time over each method's, per shape and mode."""
    lines = [
        "| shape | batch | S | mode | method | median ms | compile s | memory MiB | × faster than "
        f"{baseline} | × less memory | fraction of matmul FLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = result["rows"]
    for row in rows:
        base = next(
            (
                r
                for r in rows
                if r["method"] == baseline
                and r["mode"] == row["mode"]
                and r["shape"] == row["shape"]
                and r["keys"] == row["keys"]
                and r["batch"] == row["batch"]
            ),
            None,
        )
        prefix = (
            f"| {row['shape']} | {row['batch']} | {row['keys']} | {row['mode']} | {row['method']} |"
        )
        if row["status"] != "ok":
            lines.append(
                f"{prefix} {row['status']} | {row['compile_s']:.2f} | "
                f"{row['peak_bytes'] / 2**20:.0f} | | | |"
            )
            continue
        speed = memory = "n/a"
        if base is not None and base["status"] == "ok":
            speed = f"{base['median_s'] / row['median_s']:.1f}"
            memory = f"{base['peak_bytes'] / row['peak_bytes']:.1f}"
        elif base is not None:
            memory = f"{base['peak_bytes'] / row['peak_bytes']:.0f} (compiled, not run)"
        lines.append(
            f"{prefix} {row['median_s'] * 1e3:.2f} | {row['compile_s']:.2f} | "
            f"{row['peak_bytes'] / 2**20:.0f} | {speed} | {memory} | "
            f"{row['fraction_of_matmul']:.3f} |"
        )
    lines.append(
        f"\nfloat32 matmul: {result['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s. Machine: "
        f"{describe(result['machine'])}."
    )
    return "\n".join(lines)


def estimator_table(result: dict) -> str:
    """Markdown: mean |Ĥ − H| per estimator and input kind (`benchmarks.estimator_error`)."""
    names = list(result["rows"][0]["errors"])  # the estimators, in the order run
    lines = [
        "| M | keys | level | mean H / log M | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for row in result["rows"]:
        cells = " | ".join(f"{row['errors'][n]:.3f}" for n in names)
        lines.append(
            f"| {row['keys']} | {row['kind']} | {row['level']} | "
            f"{row['mean_entropy']:.2f} / {row['log_m']:.2f} | {cells} |"
        )
    means = {n: np.mean([r["errors"][n] for r in result["rows"]]) for n in names}
    lines.append("| all | | | mean | " + " | ".join(f"{means[n]:.3f}" for n in names) + " |")
    return "\n".join(lines) + f"\n\nMean |Ĥ − H| in nats. Machine: {describe(result['machine'])}."


def profile_table(result: dict) -> str:
    """Markdown: EALA's parts against the whole op (`benchmarks.profile_eala`)."""
    lines = [
        f"B = {result['batch']}, S = T = {result['keys']}, {HEADS} heads, head dim {DIM}; float32 "
        f"matmul {result['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s. Machine: "
        f"{describe(result['machine'])}.",
        "",
        "| part | median ms | compiled memory MiB | fraction of matmul FLOP/s (formula FLOPs) |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        fraction = "—" if row["matmul_fraction"] is None else f"{row['matmul_fraction']:.2f}"
        lines.append(
            f"| {row['part']} | {row['median_s'] * 1e3:.1f} | {row['peak_bytes'] / 2**20:.0f} | "
            f"{fraction} |"
        )
    return "\n".join(lines)


def step_row_key(row: dict) -> tuple[int, int]:
    return row["nodes"], row["batch"]


def with_stored_torch_rows(result: dict, path: pathlib.Path = TORCH_RESULTS) -> dict:
    """`result` plus the PyTorch rows stored in `path` (marked `stored`: not same-run) for the
    points that have no same-run PyTorch row."""
    if not path.is_file():
        return result
    same_run = {step_row_key(r) for r in result["rows"] if r["attention"] == TORCH}
    stored = json.loads(path.read_text())["rows"]
    stored = [{**r, "stored": True} for r in stored if step_row_key(r) not in same_run]
    return {**result, "rows": result["rows"] + stored}


def train_step_table(result: dict) -> str:
    """Markdown: step time, compile time and memory per (N, batch, attention), softmax / this and
    PyTorch original / this step time."""
    lines = [
        "| N | batch | attention | step ms | compile s | memory MiB | softmax / this | torch / this"
        " |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = result["rows"]
    for row in sorted(rows, key=lambda r: (r["nodes"], -r["batch"], r["attention"])):
        if row["attention"] == TORCH:
            stored = " (stored, not same-run)" if row.get("stored") else ""
            lines.append(
                f"| {row['nodes']} | {row['batch']} | PyTorch STAEformer{stored} | "
                f"{row['median_s'] * 1e3:.0f} | - | - | - | 1.00 |"
            )
            continue
        torch_row = next(
            (
                r
                for r in rows
                if (r["nodes"], r["batch"], r["attention"]) == (*step_row_key(row), TORCH)
            ),
            None,
        )
        base = next(
            (
                r
                for r in rows
                if (r["nodes"], r["batch"], r["attention"])
                == (row["nodes"], row["batch"], "softmax")
            ),
            None,
        )
        ok = row["status"] == "ok"
        ratio = (
            f"{base['median_s'] / row['median_s']:.2f}"
            if ok and base and base["status"] == "ok"
            else "n/a"
        )
        step = f"{row['median_s'] * 1e3:.0f}" if ok else row["status"]
        versus_torch = (
            f"{torch_row['median_s'] / row['median_s']:.2f}" if ok and torch_row else "n/a"
        )
        lines.append(
            f"| {row['nodes']} | {row['batch']} | {row['attention']} | {step} | "
            f"{row['compile_s']:.1f} | {row['peak_bytes'] / 2**20:.0f} | {ratio} | {versus_torch} |"
        )
    lines.append(f"\nMachine: {describe(result['machine'])}.")
    return "\n".join(lines)


def inference_table(rows: list[dict]) -> str:
    """Markdown of `benchmarks.inference` rows: latency at batch 1, compile time, throughput."""
    lines = [
        "| N | attention | latency, batch 1 (ms) | compile (s) | batch | windows/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        latency = f"{1e3 * r['latency_s']:.1f}" if r.get("latency_s") else r["latency_status"]
        rate = f"{r['windows_per_s']:.2f}" if "windows_per_s" in r else r.get("batch_status", "")
        lines.append(
            f"| {r['nodes']} | {r['attention']} | {latency} | {r['latency_compile_s']:.1f} | "
            f"{r.get('batch', '-')} | {rate} |"
        )
    return "\n".join(lines)
