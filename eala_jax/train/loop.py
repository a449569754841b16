"""`train_and_evaluate(config, workdir)`: train to early stopping, keep the best model, test it.

Order of work: validate the config and the workdir, load the data and check it fits, build the
model and optimiser, restore the newest readable checkpoint if the workdir holds one (resume is
automatic; a changed budget, such as more epochs, is logged and applied), train epoch by epoch
(validation MAE after each, best checkpoint kept, early stopping on patience), then evaluate the
best checkpoint and the last-value / historical-average baselines on the test split and write
`results.json`, `results.md`, `metrics.csv`/`.jsonl` and the PNGs.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from eala_jax.metrics import MetricAccumulator, format_horizon_table, horizon_sums
from eala_jax.models import ELinFormer, HistoricalAverage, fill_missing, last_value_forecast
from eala_jax.train import plots
from eala_jax.train.checkpoint import CONFIG_FILE, Checkpoints, budget_changes, check_workdir
from eala_jax.train.config import Config, config_to_dict, options_dict, validate_config
from eala_jax.train.logging import MetricsLogger
from eala_jax.train.sharding import DataParallel, check_batch_divisible, resolve_device_count
from eala_jax.train.steps import (
    Scale,
    build_optimizer,
    learning_rate_schedule,
    make_eval_fn,
    make_update_fn,
)

__all__ = [
    "TrainingDivergedError",
    "build_model",
    "compute_baselines",
    "load_splits",
    "train_and_evaluate",
]

HORIZONS = (3, 6, 12)

# Compiled device paths of recent runs in this process (resuming or rerunning a config in the same
# process, as tests and notebooks do, skips recompiling).
_COMPILED: dict[tuple, DataParallel] = {}


class TrainingDivergedError(FloatingPointError):
    """A non-finite loss, gradient or parameter norm stopped the run (the message names the
    step)."""


# --------------------------------------------------------------------------------------------
# Data and model
# --------------------------------------------------------------------------------------------
def load_splits(config: Config) -> tuple[Any, Any]:
    """Load the data set of `config.data`, check node count and steps per day, return (series,
    splits)."""
    from eala_jax.data import load_dataset, make_forecast_splits

    d = config.data
    series = load_dataset(d.name, data_dir=d.data_dir, **options_dict(d.options))
    if d.num_nodes is not None and d.num_nodes != series.num_nodes:
        raise ValueError(
            f"data.num_nodes={d.num_nodes} but data set {d.name!r} has {series.num_nodes} nodes"
        )
    if d.steps_per_day is not None and d.steps_per_day != series.steps_per_day:
        raise ValueError(
            f"data.steps_per_day={d.steps_per_day} but data set {d.name!r} has "
            f"{series.steps_per_day} steps per day"
        )
    splits = make_forecast_splits(
        series,
        in_steps=d.in_steps,
        out_steps=d.out_steps,
        split=None if d.split is None else tuple(d.split),
    )
    return series, splits


def build_model(
    config: Config, *, num_nodes: int, steps_per_day: int, rngs: nnx.Rngs
) -> ELinFormer:
    """The ELinFormer of `config.model` for a data set with `num_nodes` and `steps_per_day`."""
    m = config.model
    return ELinFormer(
        num_nodes=num_nodes,
        steps_per_day=steps_per_day,
        in_steps=config.data.in_steps,
        out_steps=config.data.out_steps,
        input_embedding_dim=m.input_embedding_dim,
        tod_embedding_dim=m.tod_embedding_dim,
        dow_embedding_dim=m.dow_embedding_dim,
        adaptive_embedding_dim=m.adaptive_embedding_dim,
        feed_forward_dim=m.feed_forward_dim,
        num_heads=m.num_heads,
        num_temporal_layers=m.num_temporal_layers,
        num_spatial_layers=m.num_spatial_layers,
        dropout=m.dropout,
        temporal_attention=m.temporal_attention,
        spatial_attention=m.spatial_attention,
        temporal_attention_options=options_dict(m.temporal_attention_options),
        spatial_attention_options=options_dict(m.spatial_attention_options),
        use_flax_mha=m.use_flax_mha,
        dtype=jnp.bfloat16 if m.dtype == "bfloat16" else None,
        rngs=rngs,
    )


def _stack(source: Any, indices: range | np.ndarray) -> dict[str, np.ndarray]:
    items = [source[int(i)] for i in indices]
    return {k: np.stack([item[k] for item in items]) for k in items[0]}


def _eval_batches(source: Any, batch_size: int) -> list[tuple[dict[str, np.ndarray], int]]:
    """All windows of `source` in order, in batches of `batch_size` padded with masked-out rows."""
    out = []
    for start in range(0, len(source), batch_size):
        idx = range(start, min(start + batch_size, len(source)))
        batch = _stack(source, idx)
        pad = batch_size - len(idx)
        if pad:
            batch = {
                k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)])
                for k, v in batch.items()
            }
        out.append((batch, len(idx)))
    return out


def _evaluate(
    dp: DataParallel, state: Any, batches: list, scale: Scale, *, keep_predictions: bool = False
):
    """Metric result over pre-built eval batches (and, on request, the predictions `[W, T_out,
    N]`)."""
    acc = MetricAccumulator()
    preds = []
    for batch, n in batches:
        sums, pred = dp.evaluate(state, dp.put_batch(batch), scale)
        acc.add(sums)
        if keep_predictions:
            preds.append(pred[:n])
    result = acc.result()
    return (result, np.concatenate(preds)) if keep_predictions else result


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------
def compute_baselines(series: Any, splits: Any, split: str) -> dict[str, dict[str, Any]]:
    """Last-value and historical-average metrics on `split` ("val" or "test"), raw units.

    The historical average is fitted on the training steps `[0, b1)` of the series (see
    `eala_jax.models.baselines`); both baselines read the raw series, so missing inputs are known.
    """
    source = splits[split]
    spd = splits.steps_per_day
    values = series.values
    tod_index = np.round(series.time_of_day().astype(np.float64) * spd).astype(np.int64) % spd
    dow = np.round(series.day_of_week()).astype(np.int64)
    b1 = splits.boundaries[0]
    ha = HistoricalAverage.fit(values[:b1], tod_index[:b1], dow[:b1], spd)
    starts = np.array([source.target_start(i) for i in range(len(source))])
    out_steps, in_steps = splits.out_steps, splits.in_steps
    inputs = values[starts[:, None] + np.arange(-in_steps, 0)[None, :]]  # [W, T_in, N]
    target_idx = starts[:, None] + np.arange(out_steps)[None, :]  # [W, T_out]
    target = values[target_idx]
    mask = np.isfinite(target)
    target = np.where(mask, target, 0.0).astype(np.float32)
    ha_pred = ha.predict(tod_index[target_idx], dow[target_idx])
    lv_pred = fill_missing(last_value_forecast(inputs, out_steps), ha_pred)
    results = {}
    for name, pred in (("last_value", lv_pred), ("historical_average", ha_pred)):
        acc = MetricAccumulator()
        acc.add(horizon_sums(pred, target, mask))
        results[name] = acc.result()
    return results


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _tables_markdown(title: str, tables: dict[str, dict[str, Any]]) -> str:
    parts = [f"## {title}"]
    for name, result in tables.items():
        parts.append(f"\n### {name}\n\n" + format_horizon_table(result, horizons=_horizons(result)))
    return "\n".join(parts) + "\n"


def _horizons(result: dict[str, Any]) -> tuple[int, ...]:
    n = len(np.asarray(result["mae"]))
    return tuple(h for h in HORIZONS if h <= n) or (n,)


def _apply_budget(counters: dict[str, Any], t: Any) -> None:
    """Set `finished` / `stop_reason` of resumed counters from the (possibly changed) budget, as
    the end of an epoch would: a run stopped at `max_epochs` or by `patience` goes on when the
    budget now allows it; one past a lowered budget stops (and its best checkpoint is tested)."""
    counters["finished"], counters["stop_reason"] = False, None
    if counters["step_in_epoch"]:
        return  # mid-epoch: the epoch's end decides
    if t.patience and counters["bad_epochs"] >= t.patience:
        counters["finished"], counters["stop_reason"] = True, "early_stopping"
    elif counters["epoch"] >= t.max_epochs:
        counters["finished"], counters["stop_reason"] = True, "max_epochs"


def _data_line(config: Config, series: Any, splits: Any) -> str:
    """One log line on the data set: name, nodes, steps, windows per split, what is missing."""
    return (
        f"Data {config.data.name}: {splits.num_nodes} nodes x {series.values.shape[0]} steps "
        f"({splits.steps_per_day} per day); windows train {len(splits.train)}, val "
        f"{len(splits.val)}, test {len(splits.test)}. Missing: {series.missing_summary()}"
    )


def _fresh_counters() -> dict[str, Any]:
    return {
        "step": 0,
        "epoch": 0,  # completed epochs
        "step_in_epoch": 0,
        "epoch_loss_sum": 0.0,
        "epoch_loss_count": 0,
        "epoch_time_s": 0.0,
        "best_val_mae": None,
        "best_epoch": None,
        "bad_epochs": 0,
        "finished": False,
        "stop_reason": None,
        "history": [],
    }


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
def train_and_evaluate(
    config: Config, workdir: str | Path, *, stop_at_step: int | None = None
) -> dict[str, Any] | None:
    """Train `config` in `workdir` (resuming from its latest checkpoint) and evaluate the best
    model.

    Returns the results dict (also written to `workdir/results.json`), or None when
    `stop_at_step` (a preemption drill for tests: stop as if killed, right after that global step,
    without saving anything more) ends the call early. Raises ValueError (or a subclass) for bad
    input before any training, `TrainingDivergedError` when the loss turns non-finite.
    """
    validate_config(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    check_workdir(config, workdir)
    changed = budget_changes(config, workdir)

    t = config.train
    num_devices = resolve_device_count(t.num_devices, t.parallel)
    check_batch_divisible(t.batch_size, num_devices)
    eval_batch_size = math.ceil(t.eval_batch_size / num_devices) * num_devices

    series, splits = load_splits(config)
    print(_data_line(config, series, splits))
    steps_per_epoch = len(splits.train) // t.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"train.batch_size={t.batch_size} is larger than the training split "
            f"({len(splits.train)} windows)"
        )
    if t.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, t.max_steps_per_epoch)

    # Model, optimiser, and the pure functions every device path shares.
    model = build_model(
        config,
        num_nodes=splits.num_nodes,
        steps_per_day=splits.steps_per_day,
        rngs=nnx.Rngs(params=t.seed),
    )
    schedule = learning_rate_schedule(
        t.learning_rate, milestones=t.milestones, decay=t.lr_decay, steps_per_epoch=steps_per_epoch
    )
    tx = build_optimizer(
        schedule, optimizer=t.optimizer, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm
    )
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    num_params = int(sum(np.size(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))
    graphdef, state = nnx.split((model, optimizer))
    # Everything the traced functions depend on; an equal key reuses the compiled steps.
    compile_key = (
        config.model,
        config.data.in_steps,
        config.data.out_steps,
        splits.num_nodes,
        splits.steps_per_day,
        t.optimizer,
        t.learning_rate,
        t.weight_decay,
        t.milestones,
        t.lr_decay,
        t.max_grad_norm,
        t.loss,
        t.huber_delta,
        steps_per_epoch,
        t.parallel,
        num_devices,
    )
    dp = _COMPILED.get(compile_key)
    if dp is None:
        dp = DataParallel(
            t.parallel,
            num_devices,
            update_fn_factory=lambda axis: make_update_fn(
                graphdef, schedule=schedule, kind=t.loss, delta=t.huber_delta, axis_name=axis
            ),
            eval_fn=make_eval_fn(graphdef),
        )
        if len(_COMPILED) >= 4:
            _COMPILED.clear()
        _COMPILED[compile_key] = dp
    host_template = jax.tree.map(np.asarray, state)
    scale = Scale(jnp.float32(splits.scaler.mean), jnp.float32(splits.scaler.std))
    dropout_key = jax.random.fold_in(jax.random.PRNGKey(t.seed), 1)

    # Resume from the workdir's newest readable checkpoint, if any (unreadable newer ones are
    # moved aside with a warning; none readable is an error).
    ckpt = Checkpoints(workdir, keep=t.keep_checkpoints)
    counters, data_state = _fresh_counters(), None
    if ckpt.latest_step() is not None:
        try:
            _, state, data_state, counters = ckpt.restore_newest_readable(
                host_template, warn=lambda message: print(f"warning: {message}", file=sys.stderr)
            )
        except BaseException:
            ckpt.close()
            raise
        print(f"Resuming {workdir} from step {counters['step']} (epoch {counters['epoch']}).")
        if changed:
            print(
                "Changed on resume: "
                + "; ".join(f"{k} {saved!r} -> {now!r}" for k, (saved, now) in changed.items())
                + "."
            )
        _apply_budget(counters, t)
    (workdir / CONFIG_FILE).write_text(json.dumps(config_to_dict(config), indent=2) + "\n")
    state = dp.put_state(jax.tree.map(np.asarray, state))

    logger = MetricsLogger(workdir, tensorboard=config.tensorboard)
    logger.rewrite(counters["history"])
    process_batch = t.batch_size // jax.process_count()
    from eala_jax.data import make_loader

    loader = make_loader(
        splits.train,
        batch_size=process_batch,
        shuffle=True,
        seed=t.seed,
        num_epochs=None,
        drop_remainder=True,
        shard_index=jax.process_index(),
        shard_count=jax.process_count(),
    )
    iterator: Iterator = iter(loader)
    if data_state is not None:
        iterator.set_state(data_state)
    val_batches = _eval_batches(splits.val, eval_batch_size)

    try:
        if not counters["finished"]:
            state, counters = _train(
                config,
                dp,
                state,
                counters,
                iterator,
                ckpt,
                logger,
                val_batches,
                scale,
                dropout_key,
                steps_per_epoch=steps_per_epoch,
                schedule=schedule,
                workdir=workdir,
                stop_at_step=stop_at_step,
            )
            if state is None:
                return None
        return _finish(
            config,
            dp,
            ckpt,
            host_template,
            series,
            splits,
            scale,
            counters,
            eval_batch_size,
            workdir,
            num_params,
        )
    finally:
        logger.close()
        ckpt.close()


def _train(
    config: Config,
    dp: DataParallel,
    state: Any,
    counters: dict[str, Any],
    iterator: Any,
    ckpt: Checkpoints,
    logger: MetricsLogger,
    val_batches: list,
    scale: Scale,
    dropout_key: jax.Array,
    *,
    steps_per_epoch: int,
    schedule: Any,
    workdir: Path,
    stop_at_step: int | None,
) -> tuple[Any, dict[str, Any]]:
    """Epochs until early stopping or `max_epochs`; returns (state, counters), state None if stopped
    by the drill."""
    t = config.train
    bar = None
    try:
        while counters["epoch"] < t.max_epochs:
            epoch = counters["epoch"]
            bar = tqdm(
                total=steps_per_epoch,
                initial=counters["step_in_epoch"],
                desc=f"epoch {epoch + 1}",
                disable=not config.progress_bar,
                leave=False,
                dynamic_ncols=True,
            )
            tick, ticks = time.perf_counter(), 0
            while counters["step_in_epoch"] < steps_per_epoch:
                batch = dp.put_batch(next(iterator))
                state, m = dp.update(state, batch, scale, dropout_key)
                m = {k: float(v) for k, v in m.items()}
                counters["step"] += 1
                counters["step_in_epoch"] += 1
                if not all(math.isfinite(m[k]) for k in ("loss", "grad_norm", "param_norm")):
                    raise TrainingDivergedError(
                        f"non-finite training measurements at step {counters['step']} (epoch "
                        f"{epoch + 1}, step {counters['step_in_epoch']} of the epoch): "
                        f"loss={m['loss']}, grad_norm={m['grad_norm']}, "
                        f"param_norm={m['param_norm']}, lr={m['lr']}. Stopped; the last good "
                        f"checkpoint (step {ckpt.latest_step()}) is kept in "
                        f"{workdir / 'checkpoints'}"
                    )
                counters["epoch_loss_sum"] += m["loss"]
                counters["epoch_loss_count"] += 1
                ticks += 1
                bar.update(1)
                if ticks % 5 == 0 or counters["step_in_epoch"] == steps_per_epoch:
                    rate = ticks / max(time.perf_counter() - tick, 1e-9)
                    bar.set_postfix(
                        loss=f"{m['loss']:.3f}", lr=f"{m['lr']:.1e}", steps_per_s=f"{rate:.2f}"
                    )
                if (
                    t.checkpoint_every_steps
                    and counters["step"] % t.checkpoint_every_steps == 0
                    and counters["step_in_epoch"] < steps_per_epoch
                ):
                    counters["epoch_time_s"] += time.perf_counter() - tick
                    tick, ticks = time.perf_counter(), 0
                    ckpt.save(
                        counters["step"],
                        dp.host_state(state),
                        data_state=iterator.get_state(),
                        counters=counters,
                    )
                if stop_at_step is not None and counters["step"] >= stop_at_step:
                    bar.close()
                    return None, counters
            counters["epoch_time_s"] += time.perf_counter() - tick
            bar.close()

            val = _evaluate(dp, state, val_batches, scale)
            counters["epoch"] += 1
            improved = (
                counters["best_val_mae"] is None or val["mae_mean"] < counters["best_val_mae"]
            )
            if improved:
                counters["best_val_mae"], counters["best_epoch"], counters["bad_epochs"] = (
                    val["mae_mean"],
                    counters["epoch"],
                    0,
                )
            else:
                counters["bad_epochs"] += 1
            epoch_time = counters["epoch_time_s"]
            row = {
                "epoch": counters["epoch"],
                "step": counters["step"],
                "train_loss": counters["epoch_loss_sum"] / max(counters["epoch_loss_count"], 1),
                "val_mae": val["mae_mean"],
                "val_rmse": val["rmse_mean"],
                "val_mape": val["mape_mean"],
                "lr": float(schedule(counters["step"] - 1)),
                "epoch_time_s": epoch_time,
                "steps_per_s": steps_per_epoch / max(epoch_time, 1e-9),
            }
            counters["history"].append(row)
            logger.log(row)
            tqdm.write(
                f"epoch {row['epoch']:3d}  step {row['step']:6d}  train_loss "
                f"{row['train_loss']:.4f}  val MAE "
                f"{row['val_mae']:.4f}{'  (best)' if improved else ''}  lr {row['lr']:.1e}  "
                f"{epoch_time:.1f}s ({row['steps_per_s']:.2f} steps/s)"
            )
            sys.stdout.flush()  # one line per epoch reaches a log file as it happens
            counters.update(
                step_in_epoch=0, epoch_loss_sum=0.0, epoch_loss_count=0, epoch_time_s=0.0
            )
            host = dp.host_state(state)
            if improved:
                ckpt.save_best(counters["step"], host, val_mae=float(val["mae_mean"]))
            if t.patience and counters["bad_epochs"] >= t.patience:
                counters["finished"], counters["stop_reason"] = True, "early_stopping"
            elif counters["epoch"] >= t.max_epochs:
                counters["finished"], counters["stop_reason"] = True, "max_epochs"
            ckpt.save(counters["step"], host, data_state=iterator.get_state(), counters=counters)
            if counters["finished"]:
                break
        counters["finished"] = True
        counters["stop_reason"] = counters["stop_reason"] or "max_epochs"
        return state, counters
    finally:
        if bar is not None:
            bar.close()


def _finish(
    config: Config,
    dp: DataParallel,
    ckpt: Checkpoints,
    host_template: Any,
    series: Any,
    splits: Any,
    scale: Scale,
    counters: dict[str, Any],
    eval_batch_size: int,
    workdir: Path,
    num_params: int,
) -> dict[str, Any]:
    """Test the best checkpoint, add the baselines, write results.json/.md and the plots."""
    best_state = dp.put_state(jax.tree.map(np.asarray, ckpt.restore_best(host_template)))
    test_result, test_pred = _evaluate(
        dp, best_state, _eval_batches(splits.test, eval_batch_size), scale, keep_predictions=True
    )
    val_result = _evaluate(dp, best_state, _eval_batches(splits.val, eval_batch_size), scale)
    test_tables = {"model": test_result, **compute_baselines(series, splits, "test")}
    val_tables = {"model": val_result, **compute_baselines(series, splits, "val")}
    history = counters["history"]
    times = [row["epoch_time_s"] for row in history]
    results = {
        "name": config.name,
        "data": config.data.name,
        "temporal_attention": config.model.temporal_attention,
        "spatial_attention": config.model.spatial_attention,
        "epochs": counters["epoch"],
        "steps": counters["step"],
        "best_epoch": counters["best_epoch"],
        "stop_reason": counters["stop_reason"],
        "time_per_epoch_s": float(np.median(times)) if times else None,
        "first_val_mae": history[0]["val_mae"] if history else None,
        "best_val_mae": counters["best_val_mae"],
        "num_parameters": num_params,
        "test": test_tables,
        "val": val_tables,
        "history": history,
    }
    (workdir / "results.json").write_text(json.dumps(_jsonable(results), indent=2) + "\n")
    title = (
        f"{config.name}: {config.data.name}, temporal={config.model.temporal_attention}, "
        f"spatial={config.model.spatial_attention}, best epoch {counters['best_epoch']} of "
        f"{counters['epoch']} ({counters['stop_reason']}), {results['time_per_epoch_s'] or 0:.1f} "
        "s/epoch"
    )
    markdown = (
        f"# {title}\n\n"
        + _tables_markdown("Test", test_tables)
        + "\n"
        + _tables_markdown("Validation", val_tables)
    )
    (workdir / "results.md").write_text(markdown)
    print(markdown)
    if config.plots and history:
        baselines = {k: float(v["mae_mean"]) for k, v in val_tables.items() if k != "model"}
        plots.plot_learning_curve(history, workdir / "learning_curve.png", baselines=baselines)
        target = np.stack([splits.test[i]["y"] for i in range(len(splits.test))])
        mask = np.stack([splits.test[i]["y_mask"] for i in range(len(splits.test))])
        plots.plot_predictions(
            test_pred,
            target,
            mask,
            workdir / "predictions.png",
            sensors=config.train.plot_sensors,
            horizon=config.train.plot_horizon,
        )
    return results
