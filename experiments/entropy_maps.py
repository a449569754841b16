"""The entropy claim, measured on the attention maps of a trained model (its own queries and keys).

    python -m experiments.entropy_maps --workdir runs/compare/los_loop/softmax/seed0
    python -m experiments.entropy_maps --workdir runs/compare/los_loop/eala/seed0

Loads the best checkpoint of a finished `experiments.train` / `experiments.compare` run, runs it
on test windows, and for each attention layer takes the queries and keys the layer actually forms.
For the spatial layers (and the temporal ones) it reports:
  - each entropy estimator's mean |Ĥ − H| in nats against the exact softmax entropy;
  - L1 = Σ_j |p_j − a_j| and KL(p ‖ a) between the softmax weights p of the layer's scores and the
    weights a of EALA (each estimator, and the exact-entropy oracle), elu+1 linear, Performer, LLN
    (moment-matched, centred keys) and uniform attention; KL uses a = max(a, 1e-12)
    renormalised, since EALA rows may hold negatives;
  - the fraction of negative EALA weights, and the same figures with the non-negative cap;
  - histograms of the exact entropy against each estimate, and of θ*.
Results: experiments/results/entropy_maps_<run name>.json (read by `experiments.report`) and PNGs
in docs/figures/.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from flax import nnx

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from eala_jax import eala_attention, eala_weights, estimate_entropy, softmax_entropy
from eala_jax.ops.entropy import positive_feature_logits
from eala_jax.ops.lln import lln_feature_logits
from eala_jax.train import Checkpoints, build_model, build_optimizer, config_from_dict, prepare_data

ESTIMATORS = {
    "gaussian": {},
    "cumulant3": {},
    "segments": {"num_segments": 32},
    "random_features": {"num_features": 64},
}
FIGURES = pathlib.Path("docs/figures")


def load_trained(workdir: pathlib.Path) -> tuple[Any, Any, Any]:
    """(config, splits, model with the best checkpoint's parameters) of a finished run."""
    config = config_from_dict(json.loads((workdir / "config.json").read_text()))
    _, splits, config, _, _ = prepare_data(config)  # the config resolved for the data
    model = build_model(
        config, num_nodes=splits.num_nodes, steps_per_day=splits.steps_per_day, rngs=nnx.Rngs(0)
    )
    tx = build_optimizer(
        lambda step: config.train.learning_rate,
        optimizer=config.train.optimizer,
        weight_decay=config.train.weight_decay,
        max_grad_norm=config.train.max_grad_norm,
    )
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    checkpoints = Checkpoints(workdir, keep=config.train.keep_checkpoints)
    if checkpoints.best_step() is None:
        raise FileNotFoundError(f"{workdir} holds no best checkpoint: is the run finished?")
    best = checkpoints.restore_best(jax.tree.map(np.asarray, state))
    checkpoints.close()
    model, _ = nnx.merge(graphdef, best)
    return config, splits, model


def spread_test_inputs(splits: Any, count: int) -> dict[str, Any]:
    """`count` test windows of `splits` spread evenly over the split (all when fewer), stacked as
    the model takes them: `x`, `time_of_day`, `day_of_week`, and `seasonal` (`x_profile` and the
    z-scored `y_profile`, as `eala_jax.train.steps` passes them) for a model that reads the
    seasonal profile."""
    test = splits.test
    picks = np.linspace(0, len(test) - 1, min(count, len(test))).astype(int)
    windows = [test[int(i)] for i in picks]
    inputs: dict[str, Any] = {
        key: jnp.asarray(np.stack([w[key] for w in windows]))
        for key in ("x", "time_of_day", "day_of_week")
    }
    if "x_profile" in windows[0]:  # the model reads the training split's seasonal profile
        profile = [np.stack([w[key] for w in windows]) for key in ("x_profile", "y_profile")]
        inputs["seasonal"] = (
            jnp.asarray(profile[0]),
            jnp.asarray(splits.scaler.transform(profile[1]), jnp.float32),
        )
    return inputs


def layer_queries_keys(model: Any, batch: dict[str, Any]) -> dict[str, tuple[jax.Array, jax.Array]]:
    """The (q, k) `[B', L, H, D]` each attention layer forms on a batch of the data contract
    (`x [B, T, N]`, `time_of_day`, `day_of_week [B, T]`; for a model that reads the seasonal
    profile also `seasonal`: `(x_profile, y_profile)` z-scored, as `eala_jax.train.steps` passes
    them)."""
    h = model.embed(batch["x"], batch["time_of_day"], batch["day_of_week"], batch.get("seasonal"))
    batch, steps, nodes = h.shape[:3]
    dim = h.shape[-1]
    found: dict[str, tuple[jax.Array, jax.Array]] = {}

    def project(layer: Any, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        attention = layer.attention
        shape = h.shape[:2] + (attention.num_heads, attention.head_dim)
        return attention.query(h).reshape(shape), attention.key(h).reshape(shape)

    h = jnp.swapaxes(h, 1, 2).reshape(batch * nodes, steps, dim)
    for i, layer in enumerate(model.temporal_layers):
        found[f"temporal_{i}"] = project(layer, h)
        h = layer(h, deterministic=True, rngs=None)
    h = jnp.swapaxes(h.reshape(batch, nodes, steps, dim), 1, 2).reshape(batch * steps, nodes, dim)
    for i, layer in enumerate(model.spatial_layers):
        found[f"spatial_{i}"] = project(layer, h)
        h = layer(h, deterministic=True, rngs=None)
    return found


def _distances(p: np.ndarray, a: np.ndarray) -> tuple[float, float]:
    """Mean L1 and KL(p ‖ a₊) over rows; `[..., S]` weights."""
    l1 = np.abs(p - a).sum(-1)
    a_pos = np.maximum(a, 1e-12)
    a_pos = a_pos / a_pos.sum(-1, keepdims=True)
    kl = (p * (np.log(np.maximum(p, 1e-30)) - np.log(a_pos))).sum(-1)
    return float(l1.mean()), float(kl.mean())


def analyse(
    q: jax.Array, k: jax.Array, rng: jax.Array
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Estimator errors and weight distances for one layer's q, k `[B, L, H, D]`.

    Returns the result table, the entropy values (exact and each estimate) and θ* of each estimator.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    exact = np.asarray(softmax_entropy(q, k))
    p = np.asarray(jax.nn.softmax(scale * jnp.einsum("bthd,bshd->bhts", q, k), axis=-1), np.float64)
    result: dict[str, Any] = {
        "mean_entropy": float(exact.mean()),
        "log_m": math.log(k.shape[1]),
        "estimator_error": {},
        "weights": {},
        "negative_fraction": {},
    }
    histograms: dict[str, np.ndarray] = {"exact": exact.ravel()}
    projection = jax.random.normal(rng, (64, q.shape[-1]))
    for name, options in ESTIMATORS.items():
        extra = {"projection": projection} if name == "random_features" else {}
        estimate = np.asarray(estimate_entropy(q, k, estimator=name, **options, **extra))
        result["estimator_error"][name] = float(np.abs(estimate - exact).mean())
        histograms[name] = estimate.ravel()
    thetas: dict[str, np.ndarray] = {}
    result["mean_theta"] = {}
    for name in list(ESTIMATORS) + ["exact"]:
        options = dict(ESTIMATORS.get(name, {}))
        if name == "random_features":
            options["projection"] = projection
        _, stats = eala_attention(q, k, k, estimator=name, return_stats=True, **options)
        thetas[name] = np.asarray(stats["theta"]).ravel()
        result["mean_theta"][name] = float(thetas[name].mean())
        for cap in (False, True):
            a = np.asarray(
                eala_weights(q, k, estimator=name, nonnegative=cap, **options), np.float64
            )
            label = f"eala-{name}" + (" (non-negative)" if cap else "")
            result["weights"][label] = _distances(p, a)
            result["negative_fraction"][label] = float((a < 0).mean())
    phi_q, phi_k = jax.nn.elu(q) + 1, jax.nn.elu(k) + 1
    linear = np.asarray(jnp.einsum("bthf,bshf->bhts", phi_q, phi_k), np.float64)
    result["weights"]["linear (elu+1)"] = _distances(p, linear / linear.sum(-1, keepdims=True))
    root = math.sqrt(scale)
    fq = jnp.exp(positive_feature_logits(q * root, projection))
    fk = jnp.exp(positive_feature_logits(k * root, projection))
    performer = np.asarray(jnp.einsum("bthf,bshf->bhts", fq, fk), np.float64)
    result["weights"]["performer (64)"] = _distances(
        p, performer / performer.sum(-1, keepdims=True)
    )
    log_q, log_k = lln_feature_logits(
        q, k, None, scale=scale, causal=False, temperature="matched", center_keys=True
    )
    lln = jnp.einsum(
        "bthf,bshf->bhts",
        jnp.exp(log_q - jnp.max(log_q, axis=-1, keepdims=True)),
        jnp.exp(log_k - jnp.max(log_k, axis=(1, 3), keepdims=True)),
    )
    lln = np.asarray(lln, np.float64)
    result["weights"]["lln (matched)"] = _distances(p, lln / lln.sum(-1, keepdims=True))
    result["weights"]["uniform"] = _distances(p, np.full_like(p, 1.0 / p.shape[-1]))
    return result, histograms, thetas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="a finished training run's workdir")
    parser.add_argument(
        "--batches", type=int, default=4, help="test batches of 16 windows to analyse"
    )
    parser.add_argument("--out-dir", default="experiments/results")
    args = parser.parse_args(argv)
    workdir = pathlib.Path(args.workdir)
    if not (workdir / "config.json").is_file():
        parser.error(f"--workdir {workdir}: no config.json (not a training run's workdir)")
    config, splits, model = load_trained(workdir)
    inputs = spread_test_inputs(splits, 16 * args.batches)
    count = len(inputs["x"])
    layers = {}
    figures = []
    for layer, (q, k) in layer_queries_keys(model, inputs).items():
        if layer.startswith("temporal") and config.model.temporal_attention.name not in (
            "softmax",
            "eala",
        ):
            continue
        result, histograms, thetas = analyse(q, k, jax.random.key(0))
        layers[layer] = result
        fig, (ax, ax_theta) = plt.subplots(1, 2, figsize=(11, 3.5))
        for name, values in histograms.items():
            ax.hist(values, bins=60, histtype="step", label=name, density=True)
        ax.axvline(result["log_m"], color="k", lw=0.8, ls="--")
        ax.set(xlabel="entropy (nats); dashed: log M", title=f"{config.name}: {layer}, entropy")
        ax.legend(fontsize=7)
        high = max(float(np.quantile(values, 0.99)) for values in thetas.values())
        for name, values in thetas.items():
            ax_theta.hist(
                np.clip(values, 0.0, high), bins=60, histtype="step", label=name, density=True
            )
        ax_theta.set(
            xlabel="θ* (clipped at the 99th percentile)",
            title=f"{config.name}: {layer}, θ* per estimator",
        )
        ax_theta.legend(fontsize=7)
        FIGURES.mkdir(parents=True, exist_ok=True)
        figure = f"entropy_{config.name}_{layer}.png"
        fig.tight_layout()
        fig.savefig(FIGURES / figure, dpi=110)
        plt.close(fig)
        figures.append(figure)
    markdown = _markdown(layers)
    out = pathlib.Path(args.out_dir) / f"entropy_maps_{config.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "title": f"Attention maps of {config.name} ({config.data.name}, trained with "
                f"{config.model.spatial_attention.name} spatial attention), {count} test windows",
                "command": (
                    f"python -m experiments.entropy_maps --workdir {args.workdir}"
                    f" --batches {args.batches}"
                ),
                "layers": layers,
                "markdown": markdown,
                "figures": figures,
            },
            indent=1,
        )
    )
    print("\n".join(markdown))
    return 0


def _markdown(layers: dict[str, Any]) -> list[str]:
    lines = []
    for layer, r in layers.items():
        lines += [
            f"**{layer}**: mean exact entropy {r['mean_entropy']:.2f} of log M = {r['log_m']:.2f}.",
            "",
            "| estimator | mean abs(Ĥ − H) nats | mean θ* |",
            "|---|---|---|",
        ]
        lines += [
            f"| {n} | {e:.3f} | {r['mean_theta'][n]:.2f} |" for n, e in r["estimator_error"].items()
        ]
        lines += [f"| exact (oracle) | 0 | {r['mean_theta']['exact']:.2f} |"]
        lines += [
            "",
            "| weights | L1 to softmax | KL(softmax ‖ ·) | negative fraction |",
            "|---|---|---|---|",
        ]
        for name, (l1, kl) in r["weights"].items():
            neg = r["negative_fraction"].get(name)
            lines.append(
                f"| {name} | {l1:.3f} | {kl:.3f} | {'' if neg is None else f'{neg:.3f}'} |"
            )
        lines.append("")
    return lines


if __name__ == "__main__":
    sys.exit(main())
