"""eala_local on the attention maps of a trained model: how close its rows are to the softmax's.

    python -m experiments.local_maps --workdir runs/ref/los_loop_elinformer_seed0

Loads a finished run (as `experiments.entropy_maps`), takes the queries and keys each layer forms
on evenly spaced test windows and compares, against the exact softmax rows p of those scores:
EALA's rows (Gaussian θ*) and eala_local's with K local keys per query (temporal: a past and a
centred window; spatial: the data set's graph neighbours and the adaptive embedding's top-K).
Per method: mean L1 = Σ_j |p_j − a_j| a row, and the mean |Ĥ − H| of its entropy estimate in nats
(EALA: the Gaussian estimate; eala_local: `h(λ) + λ H_L + (1 − λ) Ĥ_R`, docs/method.md,
"eala_local"). Results: experiments/results/local_maps_<workdir name>.json.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from eala_jax import eala_local_attention, eala_weights, estimate_entropy, softmax_entropy
from eala_jax.ops.neighbours import embedding_neighbours, graph_neighbours, sliding_window
from experiments.entropy_maps import layer_queries_keys, load_trained, spread_test_inputs


def _softmax_rows(q: jax.Array, k: jax.Array) -> jax.Array:
    """`[B, H, T, S]` exact softmax rows."""
    scores = jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
    return jax.nn.softmax(scores, axis=-1)


def _local_rows(q: jax.Array, k: jax.Array, table: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """eala_local's `[B, H, T, S]` rows (read off with one-hot values) and its estimate `[B, T,
    H]`."""
    size = k.shape[1]
    eye = jnp.broadcast_to(jnp.eye(size)[None, :, None], k.shape[:3] + (size,))
    out, stats = eala_local_attention(q, k, eye, jnp.asarray(table), return_stats=True)
    return jnp.moveaxis(out, 1, 2), stats["entropy"]


def analyse(q: jax.Array, k: jax.Array, tables: dict[str, np.ndarray]) -> dict[str, dict]:
    p = _softmax_rows(q, k)
    exact = softmax_entropy(q, k)
    l1 = lambda a: float(jnp.mean(jnp.sum(jnp.abs(p - a), axis=-1)))
    err = lambda h: float(jnp.mean(jnp.abs(h - exact)))
    out = {
        "eala": {
            "l1": l1(eala_weights(q, k)),
            "entropy_error": err(estimate_entropy(q, k, estimator="gaussian")),
        }
    }
    for name, table in tables.items():
        rows, estimate = _local_rows(q, k, table)
        out[f"eala_local ({name})"] = {
            "l1": l1(rows),
            "entropy_error": err(estimate),
            "negative_fraction": float(jnp.mean(rows < 0)),
        }
    out["mean exact entropy"] = float(jnp.mean(exact))
    out["log M"] = float(np.log(k.shape[1]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="a finished training run's workdir")
    parser.add_argument("--windows", type=int, default=8, help="test windows to analyse")
    parser.add_argument("--num-local", type=int, default=8, help="K, local keys per query")
    parser.add_argument("--window-steps", type=int, default=4, help="temporal window length")
    parser.add_argument("--out-dir", default="experiments/results")
    args = parser.parse_args(argv)
    workdir = pathlib.Path(args.workdir)
    if not (workdir / "config.json").is_file():
        parser.error(f"--workdir {workdir}: no config.json (not a training run's workdir)")
    config, splits, model = load_trained(workdir)
    from eala_jax.data import load_dataset

    series = load_dataset(config.data.name, data_dir=config.data.data_dir)
    inputs = spread_test_inputs(splits, args.windows)
    spatial_tables = {}
    if series.adjacency is not None:
        spatial_tables[f"graph, K={args.num_local}"] = graph_neighbours(
            series.adjacency, args.num_local
        )
    if model.adaptive_embedding is not None:
        adaptive = model.adaptive_embedding[...]
        flat = jnp.swapaxes(adaptive, 0, 1).reshape(adaptive.shape[1], -1)
        spatial_tables[f"embedding, K={args.num_local}"] = np.asarray(
            embedding_neighbours(flat, args.num_local)
        )
    layers = {}
    for layer, (q, k) in layer_queries_keys(model, inputs).items():
        if layer.startswith("temporal"):
            w, length = args.window_steps, q.shape[1]
            tables = {
                f"past window, W={w}": sliding_window(length, w),
                f"centred window, W={w}": sliding_window(length, w, centred=True),
            }
        else:
            tables = spatial_tables
        layers[layer] = analyse(q, k, tables)
    markdown = [
        "| layer | rows | mean H / log M | L1 to softmax | mean abs(Ĥ − H) (nats) |",
        "|---|---|---|---|---|",
    ]
    for layer, result in layers.items():
        for name, value in result.items():
            if isinstance(value, dict):
                markdown.append(
                    f"| {layer} | {name} | {result['mean exact entropy']:.2f} / "
                    f"{result['log M']:.2f} | {value['l1']:.3f} | {value['entropy_error']:.3f} |"
                )
    command = (
        f"python -m experiments.local_maps --workdir {args.workdir} --windows {args.windows}"
        f" --num-local {args.num_local} --window-steps {args.window_steps}"
    )
    out = pathlib.Path(args.out_dir) / f"local_maps_{workdir.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"command": command, "layers": layers, "markdown": markdown}, indent=1)
    )
    print("\n".join(markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
