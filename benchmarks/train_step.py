"""Time of one ELinFormer training step against the softmax backbone (STAEformer) at graph sizes.

    python -m benchmarks.train_step [--sizes 170 307 883 8600] [--batch 16] [--also 883:4]
        [--torch-python /work/torchvenv/bin/python --staeformer-dir /tmp/staeformer]

N = 170, 307, 883 are the PEMS08, PEMS04 and PEMS07 graph sizes and 8600 the LargeST-CA size. The
signal is synthetic (a step's time does not depend on the values). Full model of docs/method.md (dim
152, 3 temporal + 3 spatial layers, 4 heads), Adam update with clipping, batch 16, one CPU device.
Compile time apart; median of repeated steps after a warm-up; memory from XLA's analysis of the
compiled step; a step that needs more than `--memory-budget-gib` is reported, not run. Where softmax
does not fit at `--batch`, both are timed again at the largest of `--fallback-batches` softmax fits
(or EALA alone at the largest it fits, when softmax fits none), so a ratio exists. `--also N:B`
adds points at other batch sizes. `--floor` also times the same model with uniform attention (each
output the mean of the values: no scores, no statistics), the floor that every other cost of the
step (dense layers, norms, dropout, embeddings, Adam) sets under any attention.

The PyTorch original (official STAEformer, `benchmarks/torch_reference.py`) is the reference row:
with `--torch-python` (a Python that has torch) and `--staeformer-dir` (a checkout of
github.com/XDZhelheim/STAEformer) it runs in a worker process and each point is timed round-robin,
one ELinFormer step, one softmax step, one PyTorch step, `--repeats` times (the two never run at
once, and a change of load hits all three), so the ratios are same-run. Its rows also go to
`benchmarks/results/torch_staeformer.json`; without those options the rows of that file, if present,
are shown (not same-run). The table gives torch / JAX step time per row.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import statistics
import subprocess
import sys
import time

import jax

from eala_jax.allocator import reexec_with_tcmalloc
from eala_jax.bench.machine import machine_info
from eala_jax.bench.step import config_step_and_args
from eala_jax.bench.tables import (
    TORCH,
    TORCH_RESULTS,
    step_row_key,
    train_step_table,
    with_stored_torch_rows,
)
from eala_jax.bench.timing import measure, peak_bytes
from eala_jax.ops import attention_options
from eala_jax.train import (
    Config,
    apply_overrides,
)

STEPS_PER_DAY = 288


def step_and_args(attention: str, num_nodes: int, batch: int) -> tuple:
    config = apply_overrides(
        Config(), [f"model.temporal_attention={attention}", f"model.spatial_attention={attention}"]
    )
    assert config.model.spatial_attention == attention_options(attention)
    return config_step_and_args(config, num_nodes, batch, steps_per_day=STEPS_PER_DAY)


class TorchWorker:
    """`benchmarks.torch_reference --serve` in a subprocess (a Python with torch): one PyTorch
    step on request, so its timings interleave with ours."""

    def __init__(self, python: str, staeformer_dir: str):
        self.command = [python, "-m", "benchmarks.torch_reference", "--serve"]
        self.command += ["--staeformer-dir", staeformer_dir]
        self.version = ""

    def __enter__(self) -> TorchWorker:
        root = pathlib.Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root
        )
        return self

    def __exit__(self, *exc) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)

    def ask(self, request: str) -> str:
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if not answer or answer.startswith("error"):
            raise RuntimeError(f"torch worker: {answer or 'exited'} (request {request!r})")
        return answer

    def setup(self, nodes: int, batch: int) -> int:
        """Builds and warms the point; returns the parameter count."""
        return int(self.ask(f"{nodes}:{batch}").split()[1])

    def step(self) -> float:
        return float(self.ask("step"))


def interleaved_point(
    n: int,
    batch: int,
    worker: TorchWorker,
    repeats: int,
    budget_bytes: float,
    attentions: tuple[str, ...] = ("eala", "softmax"),
) -> list[dict]:
    """Rows for each of `attentions` (ELinFormer, the softmax backbone, ...) and the PyTorch
    original at (n, batch): each compiled and warmed, then `repeats` rounds of one step each, in
    turn; median per row."""
    rows, programs = [], []
    for attention in attentions:
        update, fn_args = step_and_args(attention, n, batch)
        start = time.perf_counter()
        compiled = jax.jit(update).lower(*fn_args).compile()
        row = {"nodes": n, "batch": batch, "attention": attention}
        row.update(compile_s=time.perf_counter() - start, peak_bytes=peak_bytes(compiled))
        rows.append(row)
        if row["peak_bytes"] > budget_bytes:
            row["status"] = f"does not fit the {budget_bytes / 2**30:.0f} GiB budget"
            continue
        jax.block_until_ready(compiled(*fn_args))  # warm-up
        programs.append((row, functools.partial(compiled, *fn_args), []))
    torch_row = {"nodes": n, "batch": batch, "attention": TORCH, "status": "ok"}
    torch_row["parameters"] = worker.setup(n, batch)
    torch_times: list[float] = []
    for _ in range(repeats):
        for _, call, times in programs:
            start = time.perf_counter()
            jax.block_until_ready(call())
            times.append(time.perf_counter() - start)
        torch_times.append(worker.step())
    for row, _, times in programs:
        row.update(status="ok", median_s=statistics.median(times), min_s=min(times))
        row["calls"] = len(times)
    torch_row.update(median_s=statistics.median(torch_times), min_s=min(torch_times))
    torch_row["calls"] = len(torch_times)
    return [*rows, torch_row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[170, 307, 883, 8600])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-budget-gib", type=float, default=14.0)
    parser.add_argument("--out", default="benchmarks/results/train_step.json")
    parser.add_argument(
        "--fallback-batches",
        type=int,
        nargs="*",
        default=[4, 2, 1],
        help="where softmax does not fit at --batch, also time both at the largest of these it"
        " fits",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows already in --out, measure the rest"
    )
    parser.add_argument("--also", nargs="*", default=[], help="extra NODES:BATCH points")
    parser.add_argument("--torch-python", help="a Python with torch: time the PyTorch original")
    parser.add_argument("--staeformer-dir", help="checkout of github.com/XDZhelheim/STAEformer")
    parser.add_argument("--torch-out", default=str(TORCH_RESULTS))
    parser.add_argument(
        "--floor", action="store_true", help="also time the model with uniform attention"
    )
    args = parser.parse_args()
    attentions = ("eala", "softmax", "uniform") if args.floor else ("eala", "softmax")
    if bool(args.torch_python) != bool(args.staeformer_dir):
        parser.error("--torch-python and --staeformer-dir go together")
    if (
        args.staeformer_dir
        and not (pathlib.Path(args.staeformer_dir) / "model" / "STAEformer.py").is_file()
    ):
        parser.error(f"--staeformer-dir: no model/STAEformer.py under {args.staeformer_dir}")
    also = [tuple(int(v) for v in point.split(":")) for point in args.also]
    out = pathlib.Path(args.out)
    rows = json.loads(out.read_text())["rows"] if args.resume and out.is_file() else []
    result = {"machine": machine_info(), "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch_out = pathlib.Path(args.torch_out)
    torch_result = (
        json.loads(torch_out.read_text()) if args.resume and torch_out.is_file() else {"rows": []}
    )

    def timed(attention: str, n: int, batch: int) -> dict:
        row = next(
            (r for r in rows if (r["nodes"], r["batch"], r["attention"]) == (n, batch, attention)),
            None,
        )
        if row is None:
            update, fn_args = step_and_args(attention, n, batch)
            row = {"nodes": n, "batch": batch, "attention": attention}
            row.update(
                measure(
                    update,
                    *fn_args,
                    repeats=args.repeats,
                    budget_bytes=args.memory_budget_gib * 2**30,
                )
            )
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
            out.write_text(json.dumps(result, indent=1))
        return row

    if args.torch_python:
        # Same-run comparison: one step of each JAX program and of the PyTorch original in turn.
        with TorchWorker(args.torch_python, args.staeformer_dir) as worker:
            for n, batch in [(n, args.batch) for n in args.sizes] + also:
                done = {r["attention"] for r in rows if step_row_key(r) == (n, batch)}
                if {*attentions, TORCH} <= done:
                    continue
                rows[:] = [
                    r for r in rows if step_row_key(r) != (n, batch)
                ]  # a point is redone whole
                budget = args.memory_budget_gib * 2**30
                for row in interleaved_point(n, batch, worker, args.repeats, budget, attentions):
                    print(json.dumps(row), file=sys.stderr)
                    rows.append(row)
                    if row["attention"] == TORCH:
                        torch_result["rows"].append(row)
                out.write_text(json.dumps(result, indent=1))
                torch_result["machine"] = {**machine_info(), "torch": worker.version}
                torch_out.write_text(json.dumps(torch_result, indent=1))
        print(train_step_table(result))
        return
    for n in args.sizes:
        timed("eala", n, args.batch)
        if args.floor:
            timed("uniform", n, args.batch)
        if timed("softmax", n, args.batch)["status"] == "ok":
            continue
        # Softmax does not fit at --batch: both again at the largest fallback batch softmax fits, or
        # EALA alone at the largest it fits when softmax fits none.
        smaller = [b for b in args.fallback_batches if b < args.batch]
        fits = next((b for b in smaller if timed("softmax", n, b)["status"] == "ok"), None)
        if fits is not None:
            timed("eala", n, fits)
            continue
        for batch in smaller:
            if timed("eala", n, batch)["status"] == "ok":
                break
    for n, batch in also:
        timed("eala", n, batch)
        timed("softmax", n, batch)
    if not args.torch_python and jax.default_backend() == "cpu":
        result = with_stored_torch_rows(result)
    print(train_step_table(result))


if __name__ == "__main__":
    # CPU timings with the fast allocator where it is installed.
    reexec_with_tcmalloc("benchmarks.train_step")
    main()
