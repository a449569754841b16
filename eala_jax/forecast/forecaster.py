"""`Forecaster`: a trained run loaded for inference from its workdir alone.

    fc = Forecaster.load("runs/synthetic")
    out = fc.predict(history, start_time="2024-01-03T10:00")  # history [T >= in_steps, N]
    out.forecast, out.times, out.lower[0.8], out.upper[0.95]  # [out_steps, N], [out_steps]
    rolling = fc.backtest(series, start, stop)  # windows with first target step in [start, stop)

Everything comes from the workdir: the config resolved for the data, the best checkpoint, and the
record the run wrote when it finished (``forecast/``: scaler, calendar, seasonal table, node ids,
intervals, baseline guard). A workdir that predates that record is rebuilt from the data its
config names, once, and the record is written then. One jitted single-device function serves every
call; it compiles once per input shape. See docs/forecast.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from eala_jax.forecast.checks import as_time, check_history, first_times, minutes
from eala_jax.forecast.graph import GraphSpec, forecast_graph
from eala_jax.train.guard import GUARD_FILE, BaselineGuard
from eala_jax.train.intervals import (
    DEFAULT_LEVELS,
    INTERVALS_FILE,
    ConformalIntervals,
    check_levels,
    conformal_intervals,
)
from eala_jax.train.runinfo import (
    FORECAST_DIR,
    ForecastInputError,
    RunInfo,
    WorkdirError,
    baseline_forecasts,
    load_run_info,
    read_config,
    recompute_run_info,
    save_run_info,
)

__all__ = ["BaselineWarning", "Backtest", "Forecast", "Forecaster"]


class BaselineWarning(UserWarning):
    """A baseline beat the model on validation at some horizon step."""


@dataclasses.dataclass(frozen=True)
class Forecast:
    """The result of `Forecaster.predict`. With a 2-D history the leading batch axis is absent.

    forecast: float32 ``[B, out_steps, N]`` in data units; times: ``datetime64[m] [B, out_steps]``;
    lower / upper: ``{level: [B, out_steps, N]}`` (NaN at steps served by a baseline); node_ids:
    the N columns; served: per step, ``"model"`` or the baseline served there (``fallback=True``).
    """

    forecast: np.ndarray
    times: np.ndarray
    lower: dict[float, np.ndarray]
    upper: dict[float, np.ndarray]
    node_ids: tuple[str, ...]
    served: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Backtest:
    """Rolling forecasts of `Forecaster.backtest`: ``pred``, ``target`` ``[W, out_steps, N]`` in
    data units, ``mask`` (valid targets) and ``starts [W]`` (first target step of each window)."""

    pred: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    starts: np.ndarray


class Forecaster:
    """A run's best model with its scaler, calendar, intervals and baseline guard (`load`)."""

    def __init__(
        self,
        info: RunInfo,
        graphdef: nnx.GraphDef,
        params: Any,
        *,
        intervals: ConformalIntervals | None = None,
        guard: BaselineGuard | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.info = info
        self.workdir = workdir
        self.graphdef = graphdef
        self.params = jax.device_put(params, jax.devices()[0])
        year = info.average.year_table()
        self.spec = GraphSpec(
            info.in_steps,
            info.out_steps,
            info.step_minutes,
            info.config.model.uses_profile,
            year_term=year is not None,
        )
        self.table = jnp.asarray(info.profile_table())
        # The day-of-year term ([366, N]; a placeholder row when the run has none).
        self.year = jnp.asarray(np.zeros((1, info.num_nodes), np.float32) if year is None else year)
        self.mean = jnp.float32(info.scaler.mean)
        self.std = jnp.float32(info.scaler.std)
        self._apply = jax.jit(functools.partial(forecast_graph, graphdef, spec=self.spec))
        self.intervals = intervals
        self.guard = guard

    # ------------------------------------------------------------------------------------------
    @property
    def node_ids(self) -> tuple[str, ...]:
        """The run's node ids (their indices as strings when the data named none)."""
        ids = self.info.node_ids
        return ids if ids is not None else tuple(str(i) for i in range(self.info.num_nodes))

    @property
    def in_steps(self) -> int:
        return self.info.in_steps

    @property
    def out_steps(self) -> int:
        return self.info.out_steps

    @property
    def step(self) -> np.timedelta64:
        return np.timedelta64(self.info.step_minutes, "m")

    @classmethod
    def load(
        cls, workdir: str | Path, *, levels: Sequence[float] | None = None, warn: bool = True
    ) -> Forecaster:
        """The best checkpoint of ``workdir`` as a forecaster, with intervals at ``levels``
        (default: the run's, else 80 % and 95 %) and the baseline guard; warns (`BaselineWarning`)
        per step where a baseline beat the model on validation.

        Raises `WorkdirError` (no config, no best checkpoint, another version's files) before
        reading any parameter. A workdir without the forecast record (older runs) is rebuilt from
        the data its config names; intervals at new levels need that data too.
        """
        workdir = Path(workdir)
        read_config(workdir)  # no config.json, or another version's: refused first
        best = workdir / "best"
        if not best.is_dir() or not any(p.name.isdigit() for p in best.iterdir()):
            raise WorkdirError(
                f"{workdir} holds no best checkpoint (expected {best}/<step>/): the run has not "
                "finished an epoch"
            )
        info, prepared = load_run_info(workdir), None
        if info is None:
            info, prepared = recompute_run_info(workdir)
            _try_write(lambda: save_run_info(info, workdir))
        graphdef, params = _restore_model(workdir, info)
        guard = _load_guard(workdir)
        forecaster = cls(info, graphdef, params, guard=guard, workdir=workdir)
        wanted = None if levels is None else check_levels(levels)
        intervals_path = workdir / FORECAST_DIR / INTERVALS_FILE
        intervals = ConformalIntervals.read(intervals_path) if intervals_path.is_file() else None
        if intervals is None or (wanted is not None and set(wanted) != set(intervals.levels)):
            if prepared is None:
                _, prepared = recompute_run_info(workdir)
            intervals = forecaster.fit_intervals(
                prepared.series, prepared.splits, wanted or DEFAULT_LEVELS
            )
            if not intervals_path.is_file():
                _try_write(lambda: intervals.save(intervals_path))
        forecaster.intervals = intervals
        if warn and guard is not None:
            for line in guard.beaten():
                warnings.warn(
                    f"{workdir}: a baseline beat the model: {line} (fallback=True serves it)",
                    BaselineWarning,
                    stacklevel=2,
                )
        return forecaster

    # ------------------------------------------------------------------------------------------
    def apply(self, windows: np.ndarray, start_minutes: np.ndarray) -> np.ndarray:
        """The model's forecast of float32 ``[B, in_steps, N]`` windows (data units, NaN =
        missing) whose first steps are at ``start_minutes [B]`` (int32 minutes since 1970):
        float32 ``[B, out_steps, N]``. Jitted; compiles once per B."""
        out = self._apply(
            self.params,
            self.table,
            self.year,
            self.mean,
            self.std,
            jnp.asarray(windows, jnp.float32),
            jnp.asarray(start_minutes, jnp.int32),
        )
        return np.array(out)  # a writable host copy

    def backtest(
        self, series: Any, start: int | Any, stop: int | Any, *, batch_size: int | None = None
    ) -> Backtest:
        """Rolling forecasts of ``series`` (a ``SpatioTemporalSeries`` of the run's nodes and step)
        for every window whose first target step ``s`` is in ``[start, stop)`` (step indices, or
        timestamps of the series' steps): inputs ``[s - in_steps, s)``, targets ``[s, s +
        out_steps)``, as the training loop's evaluation reads them. Batches of ``batch_size``
        (default the run's ``train.eval_batch_size``; the last one padded: one compile). With the
        loop's batch size on one device the forecasts equal the loop's bit for bit; another batch
        size may change the last float32 bit or two (XLA's code depends on the shape)."""
        batch_size = batch_size or self.info.config.train.eval_batch_size
        self._check_series(series)
        start, stop = (
            self._step_index(series, v, name) for v, name in ((start, "start"), (stop, "stop"))
        )
        lo, hi = self.in_steps, series.num_steps - self.out_steps + 1
        if not lo <= start < stop <= hi:
            raise ForecastInputError(
                f"backtest range [{start}, {stop}) of first target steps must lie in [{lo}, {hi}] "
                f"for {series.num_steps} steps, in_steps={self.in_steps}, "
                f"out_steps={self.out_steps}, with start < stop"
            )
        values = series.values
        starts = np.arange(start, stop)
        t0 = minutes(series.start_time)
        preds = []
        for i in range(0, len(starts), batch_size):
            chunk = starts[i : i + batch_size]
            padded = np.concatenate([chunk, np.full(batch_size - len(chunk), chunk[-1])])
            windows = np.stack([values[s - self.in_steps : s] for s in padded])
            first = t0 + (padded - self.in_steps).astype(np.int32) * self.info.step_minutes
            preds.append(self.apply(windows, first)[: len(chunk)])
        targets = np.stack([values[s : s + self.out_steps] for s in starts])
        mask = ~np.isnan(targets)
        return Backtest(np.concatenate(preds), np.where(mask, targets, 0.0), mask, starts)

    def fit_intervals(
        self, series: Any, splits: Any, levels: Sequence[float], *, batch_size: int | None = None
    ) -> ConformalIntervals:
        """Split-conformal intervals at ``levels`` from the validation windows of ``splits``
        (``prepare_data(config)``'s series and splits of this run)."""
        val = splits.val
        bt = self.backtest(
            series, val.first_target, val.first_target + len(val), batch_size=batch_size
        )
        return conformal_intervals(bt.pred, bt.target, bt.mask, levels=levels)

    # ------------------------------------------------------------------------------------------
    def predict(
        self,
        history: np.ndarray,
        *,
        start_time: Any = None,
        times: Any = None,
        node_ids: Sequence[str] | None = None,
        fallback: bool = False,
        metric: str = "mae",
    ) -> Forecast:
        """The next ``out_steps`` after ``history``.

        history: ``[T, N]`` or ``[B, T, N]`` in data units, NaN = missing, ``T >= in_steps`` (the
        last ``in_steps`` rows feed the model; older rows serve the seasonal naive baseline).
        start_time: timestamp of ``history``'s first row (scalar, or ``[B]``), or ``times``: the
        ``[T]`` (or ``[B, T]``) timestamps of its rows, one run step apart. node_ids: the columns'
        ids when they are not the run's order (all of the run's nodes, any order). fallback: serve
        the baseline that beat the model on validation ``metric`` ("mae" or "rmse") at each step
        where one did (the guard, docs/forecast.md). Raises `ForecastInputError` for input that
        does not fit the run, before running anything.
        """
        values, batched = check_history(self, history, node_ids)
        b, t, _ = values.shape
        first = first_times(self, b, t, start_time, times)
        window_first = first + np.timedelta64(self.info.step_minutes * (t - self.in_steps), "m")
        pred = self.apply(values[:, -self.in_steps :], minutes(window_first))
        offsets = np.arange(self.out_steps) * self.step
        out_times = (first + self.step * t)[:, None] + offsets[None]
        served = ["model"] * self.out_steps
        lower, upper = {}, {}
        if self.intervals is not None:
            for level in self.intervals.levels:
                lower[level], upper[level] = self.intervals.bounds(pred, level)
        if fallback:
            if self.guard is None:
                raise ForecastInputError(
                    "fallback=True needs the run's baseline guard (results.json of a finished run)"
                )
            served = self.guard.served(metric)
            if any(s != "model" for s in served):
                baselines = self.baselines(values, first)
                for h, name in enumerate(served):
                    if name != "model":
                        pred[:, h] = baselines[name][:, h]
                        for level in lower:
                            lower[level][:, h] = upper[level][:, h] = np.nan
        squeeze = (lambda a: a) if batched else (lambda a: a[0])
        return Forecast(
            forecast=squeeze(pred),
            times=squeeze(out_times),
            lower={k: squeeze(v) for k, v in lower.items()},
            upper={k: squeeze(v) for k, v in upper.items()},
            node_ids=self.node_ids,
            served=tuple(served),
        )

    def baselines(self, values: np.ndarray, first: np.ndarray) -> dict[str, np.ndarray]:
        """Host-side baseline forecasts after ``values [B, T, N]`` (first rows at ``first [B]``),
        as ``evaluate_baselines`` computes them (`runinfo.baseline_forecasts`)."""
        period = None if self.guard is None else self.guard.seasonal_period
        return baseline_forecasts(self.info, values, first, seasonal_period=period)

    # ------------------------------------------------------------------------------------------
    def _check_series(self, series: Any) -> None:
        if series.num_nodes != self.info.num_nodes or series.step_minutes != self.info.step_minutes:
            raise ForecastInputError(
                f"series {series.name!r} has {series.num_nodes} nodes at {series.step_minutes}-min "
                f"steps; the run forecasts {self.info.num_nodes} nodes at "
                f"{self.info.step_minutes}-min steps"
            )

    def _step_index(self, series: Any, value: Any, option: str) -> int:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
        offset = as_time(value, option) - np.datetime64(series.start_time, "m")
        steps, rest = divmod(int(offset.astype(np.int64)), self.info.step_minutes)
        if rest:
            raise ForecastInputError(f"{option}={value!r} is not one of the series' steps")
        return steps


def _try_write(write: Any) -> None:
    try:
        write()
    except OSError as err:  # a read-only workdir: use what was computed, say it was not kept
        warnings.warn(f"could not write the forecast record: {err}", stacklevel=3)


def _load_guard(workdir: Path) -> BaselineGuard | None:
    path = workdir / FORECAST_DIR / GUARD_FILE
    if path.is_file():
        return BaselineGuard.read(path)
    results = workdir / "results.json"
    if results.is_file():
        tables = json.loads(results.read_text()).get("val")
        if tables and "model" in tables:
            return BaselineGuard.from_tables(tables)
    return None


def _restore_model(workdir: Path, info: RunInfo, state: Any = None) -> tuple[nnx.GraphDef, Any]:
    """The best checkpoint's model: (graph definition, parameters and other state, host).
    ``state``: the best checkpoint's split (model, optimiser) state when the caller has read it
    already (the training loop), else it is read here."""
    from eala_jax.train.checkpoint import Checkpoints
    from eala_jax.train.prepare import build_model
    from eala_jax.train.steps import build_optimizer, learning_rate_schedule

    t = info.config.train
    spatial = info.config.model.spatial_attention
    graph = spatial.name == "eala_local" and getattr(spatial, "spatial_keys", "") == "graph"
    model = build_model(
        info.config,
        num_nodes=info.num_nodes,
        steps_per_day=info.steps_per_day,
        rngs=nnx.Rngs(params=t.seed),
        # A stand-in graph: the neighbour table built from the data set's graph is model state,
        # restored from the checkpoint below with the parameters.
        adjacency=np.zeros((info.num_nodes,) * 2, np.float32) if graph else None,
    )
    schedule = learning_rate_schedule(
        t.learning_rate, milestones=t.milestones, decay=t.lr_decay, steps_per_epoch=1
    )
    tx = build_optimizer(
        schedule, optimizer=t.optimizer, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm
    )
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    graphdef, template = nnx.split((model, optimizer))
    if state is None:
        checkpoints = Checkpoints(workdir)
        try:
            state = checkpoints.restore_best(jax.tree.map(np.asarray, template))
        finally:
            checkpoints.close()
    model, _ = nnx.merge(graphdef, jax.tree.map(np.asarray, state))
    return nnx.split(model)
