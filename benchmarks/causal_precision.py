"""float32 accuracy of EALA's statistics when the keys have a large mean, causal and not.

    python -m benchmarks.causal_precision [--out benchmarks/results/causal_precision.json]

Keys `k ~ N(offset, 1)` per coordinate, queries `N(0, 2²)`, values `N(0, 1)`, all float32;
T = S = 48, head dim 4, batch 4, 2 heads, θ* optimal with the Gaussian estimate (docs/method.md
steps 2, 5 and 8). For each offset (0, 30, 300, 3000) `eala_attention` runs in float32, causal (the
default key chunk, 64, so the whole sequence is one chunk, and chunk 16, three chunks) and
non-causal, and is compared with a direct quadratic NumPy float64 computation from the explicit
scores of the same float32 inputs. Reported per case: the largest relative error of σ² over the
rows with at least two visible keys, the largest absolute error of θ* (same rows), and the largest
absolute error of the output. Seeded: the same command gives the same table.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib

import numpy as np

from eala_jax import eala_attention
from eala_jax.bench.machine import describe, machine_info

BATCH, LENGTH, HEADS, DIM = 4, 48, 2, 4
OFFSETS = (0.0, 30.0, 300.0, 3000.0)
# Query spread: σ² ≈ Q_SCALE² around 2 log M, so θ* = min(1, √(2 log M)/σ) is below 1 on many rows.
Q_SCALE = 2.0
CASES = {
    "causal (chunk 64)": (True, 64),
    "causal (chunk 16)": (True, 16),
    "non-causal": (False, 64),
}


def make_inputs(offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 `q, k, v: [B, T, H, D]`; the same draws at every offset, only the key mean moves."""
    rng = np.random.default_rng(0)
    q = Q_SCALE * rng.standard_normal((BATCH, LENGTH, HEADS, DIM))
    k = offset + rng.standard_normal((BATCH, LENGTH, HEADS, DIM))
    v = rng.standard_normal((BATCH, LENGTH, HEADS, DIM))
    return tuple(x.astype(np.float32) for x in (q, k, v))


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, causal: bool) -> dict:
    """σ², θ* = min(1, √(2 log M)/σ) and the output, from each row's explicit float64 scores."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    sigma2 = np.zeros(q.shape[:-1])
    theta = np.zeros(q.shape[:-1])
    out = np.zeros(q.shape[:-1] + v.shape[-1:])
    count = np.zeros(q.shape[:-1], int)
    for b in range(q.shape[0]):
        for h in range(q.shape[2]):
            for i in range(q.shape[1]):
                m = i + 1 if causal else k.shape[1]
                s = scale * k[b, :m, h] @ q[b, i, h]
                var = s.var()
                th = min(1.0, math.sqrt(2 * math.log(m)) / math.sqrt(var)) if var > 0 else 1.0
                weights = (1.0 + th * (s - s.mean())) / m
                sigma2[b, i, h], theta[b, i, h], count[b, i, h] = var, th, m
                out[b, i, h] = weights @ v[b, :m, h]
    return dict(sigma2=sigma2, theta=theta, out=out, count=count)


def run() -> dict:
    rows = []
    for offset in OFFSETS:
        q, k, v = make_inputs(offset)
        for name, (causal, chunk) in CASES.items():
            # The float64 reference takes the same float32 inputs: only the computation differs.
            want = reference(*(x.astype(np.float64) for x in (q, k, v)), causal=causal)
            out, stats = eala_attention(
                q,
                k,
                v,
                causal=causal,
                chunk_size=chunk,
                estimator="gaussian",
                return_stats=True,
            )
            rows_used = want["count"] >= 2
            error = np.abs(np.asarray(stats["sigma2"], np.float64) - want["sigma2"])
            rel = error[rows_used] / want["sigma2"][rows_used]
            rows.append(
                {
                    "offset": offset,
                    "case": name,
                    "sigma2_max_relative_error": float(rel.max()),
                    "theta_max_abs_error": float(
                        np.abs(np.asarray(stats["theta"], np.float64) - want["theta"])[
                            rows_used
                        ].max()
                    ),
                    "output_max_abs_error": float(
                        np.abs(np.asarray(out, np.float64) - want["out"]).max()
                    ),
                }
            )
    return {"machine": machine_info(), "rows": rows}


def table(result: dict) -> str:
    lines = [
        "| offset | case | σ² max relative error | θ* max abs error | output max abs error |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['offset']:g} | {row['case']} | {row['sigma2_max_relative_error']:.1e} | "
            f"{row['theta_max_abs_error']:.1e} | {row['output_max_abs_error']:.1e} |"
        )
    return (
        "\n".join(lines) + f"\n\nfloat32 against float64. Machine: {describe(result['machine'])}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/causal_precision.json")
    args = parser.parse_args()
    result = run()
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
    print(table(result))


if __name__ == "__main__":
    main()
