"""Every entropy estimator's error and cost on the attention maps of trained runs, by map set.

    python -m experiments.estimator_maps --workdirs RUN [RUN ...] [--batches 4] [--merge]

For each finished `experiments.train` run (its best checkpoint, on test windows picked as
`experiments.entropy_maps` picks them), each attention layer's own queries and keys give one map;
a map set is (data set, spatial or temporal, the attention the model was trained with). For every
estimator of `ESTIMATOR_TABLE` but "exact" it reports the mean |Ĥ − H| in nats against the exact
softmax entropy, and its cost: keys' worth of work per query (multiply-adds per query over the head
dim d: the Gaussian estimate d (one d×d form), cumulant3 d² (a d×d×d form), segments (32)
min(32, S)·d, random features (64) 2·64, clusters S/8 + d (S/8 centres and one d×d form), exact
S) and its time over the exact chunked entropy's on the same map (jitted, median of 3 calls). The
runs of one map set are pooled (the mean over their maps); `--merge` adds runs to the results
file, keeping the maps of the runs it does not measure again. Results:
experiments/results/estimator_maps.json and the table printed (docs/estimators.md).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from eala_jax import estimate_entropy, softmax_entropy
from eala_jax.ops.clusters import num_clusters
from experiments.entropy_maps import layer_queries_keys, load_trained, spread_test_inputs

#: Estimator (label) -> (name, options, keys' worth of work per query given S and d).
ESTIMATORS: dict[str, tuple[str, dict[str, Any], Callable[[int, int], float]]] = {
    "gaussian": ("gaussian", {}, lambda s, d: d),
    "cumulant3": ("cumulant3", {}, lambda s, d: d * d),
    "segments (32)": ("segments", {"num_segments": 32}, lambda s, d: min(32, s) * d),
    "random_features (64)": ("random_features", {"num_features": 64}, lambda s, d: 2 * 64),
    "clusters": ("clusters", {}, lambda s, d: num_clusters(s) + d),
}


def _timed(fn: Callable[[], jax.Array]) -> tuple[np.ndarray, float]:
    """`fn()`'s value and its median wall time over 3 calls after a compiling one."""
    value = np.asarray(jax.block_until_ready(fn()))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return value, float(np.median(times))


def measure(q: jax.Array, k: jax.Array) -> dict[str, Any]:
    """Errors, costs and times of every estimator on one map, `q, k: [B, S, H, d]`."""
    num_keys, dim = k.shape[1], k.shape[-1]
    exact_fn = jax.jit(lambda q, k: softmax_entropy(q, k))
    exact, exact_time = _timed(lambda: exact_fn(q, k))
    row: dict[str, Any] = {
        "keys": num_keys,
        "head_dim": dim,
        "queries": int(np.prod(q.shape[:-1])),
        "mean_entropy": float(exact.mean()),
        "log_m": math.log(num_keys),
        "exact_time_s": exact_time,
        "error": {},
        "keys_per_query": {},
        "time_ratio": {},
    }
    for label, (name, options, cost) in ESTIMATORS.items():
        extra = {"rng": jax.random.key(0)} if name == "random_features" else {}
        fn = jax.jit(
            lambda q, k, name=name, options=options, extra=extra: estimate_entropy(
                q, k, estimator=name, **options, **extra
            )
        )
        estimate, seconds = _timed(lambda fn=fn: fn(q, k))
        row["error"][label] = float(np.abs(estimate - exact).mean())
        row["keys_per_query"][label] = float(cost(num_keys, dim))
        row["time_ratio"][label] = seconds / exact_time
    return row


def map_set(config: Any, layer: str) -> str:
    """`<data set> <spatial|temporal> (<trained attention>-trained)` of a run's layer."""
    kind = layer.split("_")[0]
    attention = getattr(config.model, f"{kind}_attention").name
    return f"{config.data.name} {kind} ({attention}-trained)"


def run(workdirs: list[str], batches: int) -> dict[str, Any]:
    per_set: dict[str, list[dict[str, Any]]] = {}
    for workdir in workdirs:
        config, splits, model = load_trained(pathlib.Path(workdir))
        inputs = spread_test_inputs(splits, 16 * batches)
        count = len(inputs["x"])
        for layer, (q, k) in layer_queries_keys(model, inputs).items():
            row = measure(q, k)
            row.update(run=workdir, layer=layer, windows=count)
            per_set.setdefault(map_set(config, layer), []).append(row)
            print(f"{map_set(config, layer)} {workdir} {layer}: {row['error']}", flush=True)
    sets = {name: _pool(rows) for name, rows in sorted(per_set.items())}
    return {"sets": sets, "maps": per_set}


def merge(earlier: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new`'s maps with `earlier`'s maps of the runs `new` did not measure, pooled by set."""
    measured = {row["run"] for rows in new["maps"].values() for row in rows}
    maps: dict[str, list[dict[str, Any]]] = {}
    for source in (earlier["maps"], new["maps"]):
        for name, rows in source.items():
            kept = [r for r in rows if source is new["maps"] or r["run"] not in measured]
            maps.setdefault(name, []).extend(kept)
    maps = {name: rows for name, rows in sorted(maps.items()) if rows}
    return {"sets": {name: _pool(rows) for name, rows in maps.items()}, "maps": maps}


def _pool(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean over a map set's maps (each weighted by its queries)."""
    weights = np.array([r["queries"] for r in rows], float)
    weights /= weights.sum()

    def mean(field: str) -> dict[str, float]:
        return {
            label: float(sum(w * r[field][label] for w, r in zip(weights, rows, strict=True)))
            for label in rows[0][field]
        }

    return {
        "runs": sorted({r["run"] for r in rows}),
        "keys": rows[0]["keys"],
        "head_dim": rows[0]["head_dim"],
        "mean_entropy": float(
            sum(w * r["mean_entropy"] for w, r in zip(weights, rows, strict=True))
        ),
        "log_m": rows[0]["log_m"],
        "error": mean("error"),
        "keys_per_query": rows[0]["keys_per_query"],
        "time_ratio": mean("time_ratio"),
    }


def markdown(result: dict[str, Any]) -> list[str]:
    labels = list(ESTIMATORS)
    lines = [
        "| map set | S, d | mean H / log M | " + " | ".join(labels) + " |",
        "|---|---|---|" + "---|" * len(labels),
    ]
    for name, r in result["sets"].items():
        cells = [f"{r['error'][label]:.3f}" for label in labels]
        lines.append(
            f"| {name} | {r['keys']}, {r['head_dim']} | {r['mean_entropy']:.2f} / "
            f"{r['log_m']:.2f} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Cost: keys' worth of work per query (multiply-adds / d), and time over the exact "
        "entropy's.",
        "",
        "| map set | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for name, r in result["sets"].items():
        cells = [
            f"{r['keys_per_query'][label]:.0f}, {r['time_ratio'][label]:.2f}×" for label in labels
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdirs", nargs="+", required=True, help="finished training runs")
    parser.add_argument("--batches", type=int, default=4, help="test batches of 16 windows")
    parser.add_argument("--out", default="experiments/results/estimator_maps.json")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the maps of --out's runs that are not measured again (each map set pooled anew)",
    )
    args = parser.parse_args(argv)
    for workdir in args.workdirs:
        if not (pathlib.Path(workdir) / "config.json").is_file():
            parser.error(f"--workdirs {workdir}: no config.json (not a training run's workdir)")
    out = pathlib.Path(args.out)
    earlier: dict[str, Any] = {"maps": {}, "commands": []}
    if args.merge:
        if not out.is_file():
            parser.error(f"--merge: {out} does not exist (run without --merge first)")
        earlier = json.loads(out.read_text())
    command = (
        f"python -m experiments.estimator_maps --workdirs {' '.join(args.workdirs)}"
        f" --batches {args.batches}" + (" --merge" if args.merge else "")
    )
    result = run(args.workdirs, args.batches)
    result = merge(earlier, result)
    result["commands"] = [*earlier.get("commands", [earlier.get("command")]), command]
    result["markdown"] = markdown(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print("\n".join(result["markdown"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
