"""Entropy-estimate error of each EALA estimator on random inputs of three sharpness levels.

    python -m benchmarks.estimator_error [--out benchmarks/results/estimator_error.json]

For keys drawn Gaussian (symmetric score distributions) and skewed (a squared-Gaussian factor gives
each query's scores a long tail, as trained spatial maps have: docs/estimators.md), and queries
scaled so that the exact softmax entropy is broad, moderate or sharp, prints mean |Ĥ − H| in nats
per estimator against the exact chunked entropy. Shapes: M = 207 and 883 keys, 256 queries, 4 heads,
head dim 38 (the ELinFormer spatial layer). Seeded: the same command gives the same table.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib

import jax
import numpy as np

from eala_jax import estimate_entropy, softmax_entropy
from eala_jax.allocator import reexec_with_tcmalloc
from eala_jax.bench.inputs import make_inputs
from eala_jax.bench.machine import machine_info
from eala_jax.bench.tables import estimator_table

# Query norm multipliers; each level's resulting mean exact H / log M is reported beside it.
SHARPNESS = {"broad": 0.3, "moderate": 0.6, "sharp": 1.0}
ESTIMATOR_SETTINGS = {
    "gaussian": {},
    "cumulant3": {},
    "segments (32)": {"num_segments": 32},
    "random_features (64)": {"num_features": 64},
    "random_features (256)": {"num_features": 256},
    "clusters": {},
}


def run() -> dict:
    rng = np.random.default_rng(0)
    rows = []
    for keys in (207, 883):
        for kind in ("gaussian", "skewed"):
            for level, sharpness in SHARPNESS.items():
                q, k = make_inputs(rng, keys=keys, kind=kind, sharpness=sharpness)
                exact = np.asarray(softmax_entropy(q, k))
                row = {
                    "keys": keys,
                    "kind": kind,
                    "level": level,
                    "mean_entropy": float(exact.mean()),
                    "log_m": math.log(keys),
                    "errors": {},
                }
                for name, options in ESTIMATOR_SETTINGS.items():
                    method = name.split(" ")[0]
                    extra = {"rng": jax.random.key(1)} if method == "random_features" else {}
                    estimate = np.asarray(
                        estimate_entropy(q, k, estimator=method, **options, **extra)
                    )
                    row["errors"][name] = float(np.abs(estimate - exact).mean())
                rows.append(row)
    return {"machine": machine_info(), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/estimator_error.json")
    args = parser.parse_args()
    result = run()
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
    print(estimator_table(result))


if __name__ == "__main__":
    # CPU timings with the fast allocator where it is installed.
    reexec_with_tcmalloc("benchmarks.estimator_error")
    main()
