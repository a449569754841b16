"""Loss, optimiser, train step and eval step as free functions.

`train_step` works on NNX objects (model, `nnx.Optimizer`) and is shared by every device path:
`make_update_fn` wraps it in one small jitted, donated function over the split state, and
`eala_jax.train.sharding` jits it over a mesh or `jax.pmap`s it (then `axis_name` names the device
axis and gradients and counts are summed across it). The loss is the masked mean over the *global*
batch (sum over devices / valid count over devices), so every path computes the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from eala_jax.metrics import horizon_sums

__all__ = [
    "Scale",
    "build_optimizer",
    "eval_step",
    "learning_rate_schedule",
    "loss_fn",
    "make_eval_fn",
    "make_update_fn",
    "masked_loss_sum",
    "train_step",
]

Batch = dict[str, jax.Array]


class Scale(NamedTuple):
    """Inverse scaling of model outputs: `raw = scaled * std + mean` (arrays broadcast to `[B, T,
    N]`)."""

    mean: jax.Array
    std: jax.Array


def learning_rate_schedule(
    learning_rate: float, *, milestones: tuple[int, ...], decay: float, steps_per_epoch: int
) -> optax.Schedule:
    """Multi-step decay: `learning_rate * decay**k` after the k-th milestone epoch."""
    boundaries = {int(m) * steps_per_epoch: decay for m in sorted(milestones) if m > 0}
    return optax.piecewise_constant_schedule(learning_rate, boundaries)


def build_optimizer(
    schedule: optax.Schedule,
    *,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    max_grad_norm: float = 0.0,
) -> optax.GradientTransformation:
    """Clip by global norm, then Adam with L2 (`"adam"`, torch-style) or decoupled decay
    (`"adamw"`)."""
    parts: list[optax.GradientTransformation] = []
    if max_grad_norm > 0:
        parts.append(optax.clip_by_global_norm(max_grad_norm))
    if optimizer == "adam":
        if weight_decay > 0:
            parts.append(optax.add_decayed_weights(weight_decay))
        parts.append(optax.adam(schedule))
    elif optimizer == "adamw":
        parts.append(optax.adamw(schedule, weight_decay=weight_decay))
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose adam or adamw")
    return optax.chain(*parts)


def masked_loss_sum(
    pred: jax.Array, target: jax.Array, mask: jax.Array, *, kind: str = "mae", delta: float = 1.0
) -> jax.Array:
    """Sum over valid entries of |pred - target| (`"mae"`) or the Huber loss (`"huber"`); `[B, T,
    N]` -> scalar."""
    err = pred.astype(jnp.float32) - target.astype(jnp.float32)
    if kind == "mae":
        per = jnp.abs(err)
    elif kind == "huber":
        per = optax.huber_loss(err, delta=delta)
    else:
        raise ValueError(f"unknown loss {kind!r}; choose mae or huber")
    return jnp.sum(jnp.where(mask, per, 0.0))


def _psum(x: Any, axis_name: str | None) -> Any:
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def loss_fn(
    model: nnx.Module,
    batch: Batch,
    scale: Scale,
    *,
    count: jax.Array,
    kind: str = "mae",
    delta: float = 1.0,
    deterministic: bool = True,
    rngs: nnx.Rngs | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Masked loss on inverse-scaled predictions, divided by `count` (the global valid count).

    batch: x `[B, T_in, N, 3]`, y `[B, T_out, N]` raw units, y_mask bool `[B, T_out, N]`.
    Returns (loss, prediction `[B, T_out, N]` raw units).
    """
    pred = model(batch["x"], deterministic=deterministic, rngs=rngs)
    pred = pred * scale.std + scale.mean
    total = masked_loss_sum(pred, batch["y"], batch["y_mask"], kind=kind, delta=delta)
    return total / jnp.maximum(count, 1.0), pred


def train_step(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    batch: Batch,
    scale: Scale,
    key: jax.Array,
    *,
    schedule: optax.Schedule,
    kind: str = "mae",
    delta: float = 1.0,
    axis_name: str | None = None,
) -> dict[str, jax.Array]:
    """One optimiser step in place on `model`/`optimizer`; returns scalar measurements.

    The dropout key is `fold_in(key, step)` (and the device index under pmap), so a resumed run
    draws the same dropout masks. Measurements: loss (before the update), grad_norm,
    param_norm (after), lr (used for this step).
    """
    step = optimizer.step[...].astype(jnp.int32)  # optax schedules misbehave on uint32 counts
    dropout_key = jax.random.fold_in(key, step)
    if axis_name is not None:
        dropout_key = jax.random.fold_in(dropout_key, jax.lax.axis_index(axis_name))
    count = _psum(jnp.sum(batch["y_mask"].astype(jnp.float32)), axis_name)

    def objective(m: nnx.Module) -> tuple[jax.Array, jax.Array]:
        return loss_fn(
            m,
            batch,
            scale,
            count=count,
            kind=kind,
            delta=delta,
            deterministic=False,
            rngs=nnx.Rngs(dropout=dropout_key),
        )

    grad_fn = nnx.value_and_grad(objective, argnums=nnx.DiffState(0, nnx.Param), has_aux=True)
    (loss, _), grads = grad_fn(model)
    loss = _psum(loss, axis_name)
    grads = _psum(grads, axis_name)
    optimizer.update(model, grads)
    return {
        "loss": loss,
        "grad_norm": optax.global_norm(grads),
        "param_norm": optax.global_norm(nnx.state(model, nnx.Param)),
        "lr": jnp.asarray(schedule(step), jnp.float32),
    }


def eval_step(
    model: nnx.Module, batch: Batch, scale: Scale
) -> tuple[dict[str, jax.Array], jax.Array]:
    """Per-horizon metric sums of one batch and its prediction `[B, T_out, N]` (raw units)."""
    pred = model(batch["x"], deterministic=True) * scale.std + scale.mean
    return horizon_sums(pred, batch["y"], batch["y_mask"]), pred


def make_update_fn(
    graphdef: nnx.GraphDef,
    *,
    schedule: optax.Schedule,
    kind: str = "mae",
    delta: float = 1.0,
    axis_name: str | None = None,
) -> Callable[[nnx.State, Batch, Scale, jax.Array], tuple[nnx.State, dict[str, jax.Array]]]:
    """The pure update `(state, batch, scale, key) -> (state, measurements)` over `nnx.split((model,
    optimizer))`.

    Not jitted here: `eala_jax.train.sharding` jits (with shardings, donating the state) or pmaps
    it.
    """

    def update(state: nnx.State, batch: Batch, scale: Scale, key: jax.Array):
        model, optimizer = nnx.merge(graphdef, state)
        measurements = train_step(
            model,
            optimizer,
            batch,
            scale,
            key,
            schedule=schedule,
            kind=kind,
            delta=delta,
            axis_name=axis_name,
        )
        return nnx.state((model, optimizer)), measurements

    return update


def make_eval_fn(
    graphdef: nnx.GraphDef,
) -> Callable[[nnx.State, Batch, Scale], tuple[dict[str, jax.Array], jax.Array]]:
    """The pure eval `(state, batch, scale) -> (sums, prediction)` over the same split state."""

    def evaluate(state: nnx.State, batch: Batch, scale: Scale):
        model, _ = nnx.merge(graphdef, state)
        return eval_step(model, batch, scale)

    return evaluate
