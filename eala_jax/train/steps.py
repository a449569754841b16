"""Loss, learning-rate schedule, optimiser, and the train and eval steps, as free functions.

`train_step` works on NNX objects (model, `nnx.Optimizer`); `update_step` and `eval_step` are its
pure forms over the split state `nnx.split((model, optimizer))`, which `eala_jax.train.sharding`
jits over a mesh or `jax.pmap`s (then `axis_name` names the device axis and gradients and counts
are summed across it). The loss is the masked mean over the *global* batch (sum over devices /
valid count over devices), so every device path computes the same numbers.

Everything the traced functions depend on besides their arrays is a hashable value (the graph
definition, `StepOptions`, the schedule and optimiser dataclasses), so `jax.jit`'s own cache
reuses a compiled step for an equal configuration: a resumed or repeated run in one process does
not compile again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from eala_jax.data.scaler import StandardScaler
from eala_jax.metrics import horizon_sums, masked_huber, masked_mae

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "MultiStepSchedule",
    "StepOptions",
    "ClippedAdam",
    "build_optimizer",
    "eval_step",
    "learning_rate_schedule",
    "loss_fn",
    "microbatch_split",
    "train_step",
    "update_step",
]

Batch = dict[str, jax.Array]

#: Training losses by name (`train.loss`), from `eala_jax.metrics`.
LOSSES = ("mae", "huber")
#: Optimisers by name (`train.optimizer`), see `ClippedAdam`.
OPTIMIZERS = ("adam", "adamw")


@dataclasses.dataclass(frozen=True)
class MultiStepSchedule:
    """`learning_rate * decay**k` after the k-th milestone epoch; an optax schedule (step ->
    learning rate) that is hashable by value."""

    learning_rate: float
    milestones: tuple[int, ...]
    decay: float
    steps_per_epoch: int

    def __call__(self, step: jax.Array | int) -> jax.Array:
        boundaries = {
            int(m) * self.steps_per_epoch: self.decay for m in sorted(self.milestones) if m > 0
        }
        return optax.piecewise_constant_schedule(self.learning_rate, boundaries)(step)


def learning_rate_schedule(
    learning_rate: float, *, milestones: tuple[int, ...], decay: float, steps_per_epoch: int
) -> MultiStepSchedule:
    """Multi-step decay: `learning_rate * decay**k` after the k-th milestone epoch."""
    return MultiStepSchedule(float(learning_rate), tuple(milestones), float(decay), steps_per_epoch)


@dataclasses.dataclass(frozen=True)
class ClippedAdam:
    """Clip by global norm (`max_grad_norm` > 0), then Adam with L2 added to the gradient
    (`"adam"`, torch-style) or decoupled decay (`"adamw"`). An `optax.GradientTransformation`
    (`init` / `update`) that is hashable by value, so `nnx.Optimizer`'s graph definition is too."""

    schedule: Any
    optimizer: str = "adam"
    weight_decay: float = 0.0
    max_grad_norm: float = 0.0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )

    def chain(self) -> optax.GradientTransformation:
        parts: list[optax.GradientTransformation] = []
        if self.max_grad_norm > 0:
            parts.append(optax.clip_by_global_norm(self.max_grad_norm))
        if self.optimizer == "adam":
            if self.weight_decay > 0:
                parts.append(optax.add_decayed_weights(self.weight_decay))
            parts.append(optax.adam(self.schedule))
        else:
            parts.append(optax.adamw(self.schedule, weight_decay=self.weight_decay))
        return optax.chain(*parts)

    def init(self, params: Any) -> Any:
        return self.chain().init(params)

    def update(self, updates: Any, state: Any, params: Any = None, **extra: Any) -> Any:
        return self.chain().update(updates, state, params, **extra)


def build_optimizer(
    schedule: Any, *, optimizer: str = "adam", weight_decay: float = 0.0, max_grad_norm: float = 0.0
) -> ClippedAdam:
    """The `ClippedAdam` of these settings (see there)."""
    return ClippedAdam(schedule, optimizer, weight_decay, max_grad_norm)


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """Static settings of the train step: learning-rate schedule, loss (`"mae"` or `"huber"` with
    `huber_delta`), and `microbatches`: the batch (each device's rows) split into that many equal
    parts whose gradients are summed in a `lax.scan` before the one optimiser update (gradient
    accumulation: the same gradient, the activation memory of one part)."""

    schedule: Any
    loss: str = "mae"
    huber_delta: float = 1.0
    microbatches: int = 1

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if not isinstance(self.microbatches, int) or self.microbatches < 1:
            raise ValueError(
                f"train.microbatches must be a positive integer, got {self.microbatches!r}"
            )


def _psum(x: Any, axis_name: str | None) -> Any:
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def _predict(
    model: nnx.Module,
    batch: Batch,
    scaler: StandardScaler,
    *,
    deterministic: bool,
    rngs: nnx.Rngs | None = None,
) -> jax.Array:
    """The model's prediction of a batch of the data contract, in the data's units `[B, T_out,
    N]`. A model with a seasonal residual target predicts the deviation from the profile at the
    target steps (`y_profile`): in units of the scaler's std ("additive") or as the log of a factor
    ("multiplicative")."""
    seasonal = (
        {"seasonal": (batch["x_profile"], scaler.transform(batch["y_profile"]))}
        if "x_profile" in batch
        else {}
    )
    scaled = model(
        batch["x"],
        batch["time_of_day"],
        batch["day_of_week"],
        deterministic=deterministic,
        rngs=rngs,
        **seasonal,
    )
    residual = getattr(model, "seasonal_residual", "none")
    if residual == "additive":
        return batch["y_profile"] + scaled * scaler.std
    if residual == "multiplicative":
        return batch["y_profile"] * jnp.exp(jnp.clip(scaled, -10.0, 10.0))
    return scaler.inverse_transform(scaled)


def loss_fn(
    model: nnx.Module,
    batch: Batch,
    scaler: StandardScaler,
    *,
    count: jax.Array,
    loss: str = "mae",
    huber_delta: float = 1.0,
    deterministic: bool = True,
    rngs: nnx.Rngs | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Masked loss of the inverse-scaled prediction, its sum divided by `count` (the global valid
    count); `eala_jax.metrics.masked_mae` or `masked_huber`.

    batch: the data contract (`x [B, T_in, N]`, `time_of_day`, `day_of_week [B, T_in]`, `y
    [B, T_out, N]` in the data's units, `y_mask`). Returns (loss, prediction `[B, T_out, N]`).
    """
    pred = _predict(model, batch, scaler, deterministic=deterministic, rngs=rngs)
    if loss == "mae":
        value = masked_mae(pred, batch["y"], batch["y_mask"], count=count)
    elif loss == "huber":
        value = masked_huber(pred, batch["y"], batch["y_mask"], delta=huber_delta, count=count)
    else:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return value, pred


def train_step(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    batch: Batch,
    scaler: StandardScaler,
    key: jax.Array,
    *,
    options: StepOptions,
    axis_name: str | None = None,
) -> dict[str, jax.Array]:
    """One optimiser step in place on `model`/`optimizer`; returns scalar measurements.

    The dropout key is `fold_in(key, step)` (and the device index under pmap), so a resumed run
    draws the same dropout masks. With `options.microbatches` > 1 the loss and gradient are sums
    over micro-batches (`microbatch_split`), one at a time. Measurements: loss (before the
    update), grad_norm, param_norm (after), lr (used for this step).
    """
    step = optimizer.step[...].astype(jnp.int32)  # optax schedules misbehave on uint32 counts
    dropout_key = jax.random.fold_in(key, step)
    if axis_name is not None:
        dropout_key = jax.random.fold_in(dropout_key, jax.lax.axis_index(axis_name))
    count = _psum(jnp.sum(batch["y_mask"].astype(jnp.float32)), axis_name)

    def objective(m: nnx.Module, part: Batch, part_key: jax.Array) -> tuple[jax.Array, jax.Array]:
        return loss_fn(
            m,
            part,
            scaler,
            count=count,
            loss=options.loss,
            huber_delta=options.huber_delta,
            deterministic=False,
            rngs=nnx.Rngs(dropout=part_key),
        )

    grad_fn = nnx.value_and_grad(objective, argnums=nnx.DiffState(0, nnx.Param), has_aux=True)
    if options.microbatches == 1:
        (loss, _), grads = grad_fn(model, batch, dropout_key)
    else:
        loss, grads = _accumulated_gradient(
            grad_fn, model, batch, dropout_key, options.microbatches
        )
    loss = _psum(loss, axis_name)
    grads = _psum(grads, axis_name)
    optimizer.update(model, grads)
    return {
        "loss": loss,
        "grad_norm": optax.global_norm(grads),
        "param_norm": optax.global_norm(nnx.state(model, nnx.Param)),
        "lr": jnp.asarray(options.schedule(step), jnp.float32),
    }


def microbatch_split(batch: Batch, parts: int) -> Batch:
    """Every array `[B, ...]` of `batch` as `[parts, B / parts, ...]`: part `i` holds rows `i, i +
    parts, i + 2 * parts, ...`, so that a batch sharded over devices in contiguous blocks of rows
    (a multiple of `parts` each) is split on every device in place, without moving rows."""
    size = next(iter(batch.values())).shape[0]
    if size % parts:
        raise ValueError(f"train.microbatches={parts} does not divide the batch's {size} rows")
    return {
        name: x.reshape(size // parts, parts, *x.shape[1:]).swapaxes(0, 1)
        for name, x in batch.items()
    }


def _accumulated_gradient(
    grad_fn: Any, model: nnx.Module, batch: Batch, key: jax.Array, parts: int
) -> tuple[jax.Array, Any]:
    """Loss and gradient of `batch` as sums over `parts` micro-batches (`microbatch_split`), one
    at a time in a `lax.scan`: the activations of one part live at once. Part `i` draws dropout
    with `fold_in(key, i)`. The loss divides by the whole batch's valid count, so the sums equal
    the whole batch's loss and gradient."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def add_part(carry: tuple[jax.Array, Any], part_and_index: tuple[Batch, jax.Array]):
        part, index = part_and_index
        # Fresh Variables inside the scan's trace (those of `params` belong to the outer one).
        m = nnx.merge(graphdef, *jax.tree.map(lambda x: x, (params, rest)))
        (loss, _), grads = grad_fn(m, part, jax.random.fold_in(key, index))
        total_loss, total_grads = carry
        return (total_loss + loss, jax.tree.map(jnp.add, total_grads, grads)), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    (loss, grads), _ = jax.lax.scan(
        add_part,
        (jnp.zeros((), jnp.float32), zeros),
        (microbatch_split(batch, parts), jnp.arange(parts)),
    )
    return loss, grads


def update_step(
    state: nnx.State,
    batch: Batch,
    scaler: StandardScaler,
    key: jax.Array,
    graphdef: nnx.GraphDef,
    options: StepOptions,
    axis_name: str | None = None,
) -> tuple[nnx.State, dict[str, jax.Array]]:
    """`train_step` on the split state of `nnx.split((model, optimizer))`: `(state, batch, scaler,
    key) -> (new state, measurements)`. `graphdef`, `options` and `axis_name` are static."""
    model, optimizer = nnx.merge(graphdef, state)
    measurements = train_step(
        model, optimizer, batch, scaler, key, options=options, axis_name=axis_name
    )
    return nnx.state((model, optimizer)), measurements


def eval_step(
    state: nnx.State, batch: Batch, scaler: StandardScaler, graphdef: nnx.GraphDef
) -> tuple[dict[str, jax.Array], jax.Array]:
    """Per-horizon metric sums (`eala_jax.metrics.horizon_sums`) of one batch and its prediction
    `[B, T_out, N]` in the data's units, over the split state; `graphdef` is static."""
    model, _ = nnx.merge(graphdef, state)
    pred = _predict(model, batch, scaler, deterministic=True)
    return horizon_sums(pred, batch["y"], batch["y_mask"]), pred
