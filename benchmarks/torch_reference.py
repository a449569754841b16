"""Time of the official PyTorch STAEformer's training step: the reference row of the step table.

    /path/to/torch/python -m benchmarks.torch_reference --staeformer-dir DIR \
        [--points 170:16 307:16 883:16 883:4] [--threads 2]

`DIR` is a checkout of the official repository (github.com/XDZhelheim/STAEformer; the file
`model/STAEformer.py` is loaded from it, nothing of it is copied here). Run with a Python that has
torch (e.g. a venv apart from this project's: `python3 -m venv /work/torchvenv &&
/work/torchvenv/bin/pip install torch numpy`); this script imports neither jax nor eala_jax, so
`benchmarks.train_step --torch-python` can run it beside the JAX rows. One step = forward, masked
MAE of the inverse-scaled prediction (the official `masked_mae_loss`), backward, gradient clipping
at norm 5 and Adam with L2 3e-4 (the settings of `benchmarks.train_step`), dropout on. The paper
model: dim 152, 3 + 3 layers, 4 heads, feed-forward 256. Median of `--repeats` steps after
`--warmup` steps. Writes `benchmarks/results/torch_staeformer.json` (rows: nodes, batch, median_s,
min_s, calls; `--merge` keeps the rows of other points).

OpenMP threads wait passively (`OMP_WAIT_POLICY=PASSIVE` unless set): with torch's default
spin-waiting, a step on 2 shared, busy cores took about 10x longer (N = 20, batch 2: 3.4 s against
0.35 s), which would flatter any comparison; on an idle machine the policy changes little.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import statistics
import sys
import time
import types


def _load_cpu_name():
    """`eala_jax.bench.machine.cpu_name`, loaded by its file path: importing `eala_jax` would
    import JAX, which this script's Python need not have."""
    path = pathlib.Path(__file__).resolve().parent.parent / "eala_jax" / "bench" / "machine.py"
    spec = importlib.util.spec_from_file_location("_eala_jax_bench_machine", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cpu_name


cpu_name = _load_cpu_name()

STEPS_PER_DAY = 288
DEFAULT_POINTS = ("170:16", "307:16", "883:16", "883:4")


def parse_point(text: str) -> tuple[int, int]:
    """`"N:B"` -> (nodes, batch), both positive."""
    try:
        nodes, batch = (int(part) for part in text.split(":"))
    except ValueError:
        raise SystemExit(f"--points: expected NODES:BATCH such as 170:16, got {text!r}") from None
    if nodes < 1 or batch < 1:
        raise SystemExit(f"--points: nodes and batch must be positive, got {text!r}")
    return nodes, batch


def load_staeformer(staeformer_dir: str) -> type:
    """The `STAEformer` class of `<staeformer_dir>/model/STAEformer.py` (torchinfo stubbed if
    absent: the file imports it for its `__main__` only)."""
    path = pathlib.Path(staeformer_dir) / "model" / "STAEformer.py"
    if not path.is_file():
        raise SystemExit(
            f"--staeformer-dir: {path} not found; pass a checkout of "
            "github.com/XDZhelheim/STAEformer"
        )
    if importlib.util.find_spec("torchinfo") is None:
        sys.modules["torchinfo"] = types.SimpleNamespace(summary=None)  # type: ignore[assignment]
    spec = importlib.util.spec_from_file_location("official_staeformer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.STAEformer


def masked_mae_loss(preds, labels, null_val: float = 0.0):
    """The official repository's `lib/losses.masked_mae_loss` (zeros of the target are missing)."""
    import torch

    mask = (labels != null_val).float()
    mask /= torch.mean(mask)
    mask = torch.nan_to_num(mask)
    loss = torch.nan_to_num(torch.abs(preds - labels) * mask)
    return torch.mean(loss)


def time_point(model_class: type, nodes: int, batch: int, *, repeats: int, warmup: int) -> dict:
    """Median/min seconds of the training step at (nodes, batch)."""
    step, parameters = training_step(model_class, nodes, batch)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "nodes": nodes,
        "batch": batch,
        "attention": "torch_staeformer",
        "status": "ok",
        "median_s": statistics.median(times),
        "min_s": min(times),
        "calls": len(times),
        "parameters": parameters,
    }


def training_step(model_class: type, nodes: int, batch: int) -> tuple:
    """(one training step as a no-argument function, parameter count) at (nodes, batch)."""
    import torch

    torch.manual_seed(0)
    model = model_class(nodes, in_steps=12, out_steps=12, steps_per_day=STEPS_PER_DAY)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=3e-4, eps=1e-8)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 12, nodes, 1, generator=generator)
    tod = torch.randint(0, STEPS_PER_DAY, (batch, 12, nodes, 1), generator=generator)
    dow = torch.randint(0, 7, (batch, 12, nodes, 1), generator=generator)
    inputs = torch.cat([x, tod.float() / STEPS_PER_DAY, dow.float()], dim=-1)
    y = 50.0 + 10.0 * torch.randn(batch, 12, nodes, 1, generator=generator)
    mean, std = 50.0, 10.0

    def step() -> None:
        optimizer.zero_grad()
        pred = model(inputs) * std + mean  # the official trainer inverse-scales before the loss
        loss = masked_mae_loss(pred, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    return step, sum(p.numel() for p in model.parameters())


def serve(model_class: type, warmup: int) -> None:
    """Step on request, for interleaving with other timings: each stdin line `NODES:BATCH` builds
    that point and warms it up (answers `ready <parameters>`), each line `step` times one step
    (answers its seconds); one answer line per request on stdout."""
    step = None
    for line in sys.stdin:
        request = line.strip()
        if request == "step" and step is not None:
            start = time.perf_counter()
            step()
            print(time.perf_counter() - start, flush=True)
        elif request and request != "step":
            step, parameters = training_step(model_class, *parse_point(request))
            for _ in range(warmup):
                step()
            print(f"ready {parameters}", flush=True)
        else:
            print("error: send NODES:BATCH before step", flush=True)


def machine_info(threads: int) -> dict:
    import torch

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count() or 0,
        "torch": torch.__version__,
        "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--staeformer-dir", required=True)
    parser.add_argument("--points", nargs="+", default=list(DEFAULT_POINTS), help="NODES:BATCH")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/torch_staeformer.json")
    parser.add_argument(
        "--merge", action="store_true", help="keep the rows of other points already in --out"
    )
    parser.add_argument(
        "--serve", action="store_true", help="time steps on request (see `serve`), write nothing"
    )
    args = parser.parse_args()
    points = [parse_point(p) for p in args.points]
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads OpenMP
    model_class = load_staeformer(args.staeformer_dir)
    import torch

    torch.set_num_threads(args.threads)
    if args.serve:
        serve(model_class, args.warmup)
        return
    result = {"machine": machine_info(args.threads), "rows": []}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and out.is_file():  # keep the other points' rows
        kept = json.loads(out.read_text())["rows"]
        result["rows"] = [r for r in kept if (r["nodes"], r["batch"]) not in points]
    for nodes, batch in points:
        row = time_point(model_class, nodes, batch, repeats=args.repeats, warmup=args.warmup)
        print(json.dumps(row), file=sys.stderr)
        result["rows"].append(row)
        out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
