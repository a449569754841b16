"""`export_forecaster`: a forecaster as a `jax.export` artefact (serialized StableHLO with the
parameters, the scaler, the seasonal table and the interval half-widths closed over; symbolic batch
dimension) and a JSON sidecar, for a process that has only ``jax`` and ``numpy``:

    import json, jax, numpy as np
    serve = jax.export.deserialize(open("model.bin", "rb").read())
    meta = json.load(open("model.json"))  # node_ids, step_minutes, in_steps, levels, ...
    start = np.array([np.datetime64("2024-01-03T10:00", "m").astype(np.int64)], np.int32)
    forecast, lower, upper = serve.call(history[None].astype(np.float32), start)

Inputs: ``history`` float32 ``[B, in_steps, N]`` in data units (NaN = missing), ``start`` int32
``[B]`` the minute (since 1970-01-01T00:00) of ``history[:, 0]``. Outputs: ``forecast`` float32
``[B, out_steps, N]``, ``lower`` / ``upper`` ``[B, L, out_steps, N]`` at the sidecar's ``levels``.
The baseline fallback is not in the artefact (the sidecar lists the steps where a baseline won).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from eala_jax.forecast.graph import forecast_graph

__all__ = ["export_forecaster", "sidecar_path"]

EXPORT_FORMAT = "eala_jax.forecast/1"


def sidecar_path(path: str | Path) -> Path:
    """``model.bin`` -> ``model.json``."""
    return Path(path).with_suffix(".json")


def export_forecaster(forecaster: Any, path: str | Path, *, block: int = 8) -> tuple[Path, Path]:
    """Writes the artefact to ``path`` and its sidecar beside it (`sidecar_path`); returns both.
    The batch runs in blocks of ``block`` windows (a batch of 1 costs a block). Compiles nothing;
    tracing costs about one forward's."""
    fc = forecaster
    path = Path(path)
    params = jax.tree.map(np.asarray, fc.params)
    table, mean, std = np.asarray(fc.table), np.float32(fc.mean), np.float32(fc.std)
    year = np.asarray(fc.year)
    if fc.intervals is None:
        half, levels = np.zeros((0, fc.out_steps, fc.info.num_nodes), np.float32), []
    else:
        half, levels = fc.intervals.half_width.astype(np.float32), list(fc.intervals.levels)

    def serve(history: jax.Array, start: jax.Array) -> tuple[jax.Array, ...]:
        # The symbolic batch b is padded to blocks of `block` windows, mapped one block at a
        # time: the model sees a concrete batch (its ops branch on the batch size in Python).
        b, rest = history.shape[0], history.shape[1:]
        blocks = (b + block - 1) // block
        pad = blocks * block - b
        history = jnp.concatenate([history, jnp.zeros((pad, *rest), history.dtype)])
        start = jnp.concatenate([start, jnp.zeros((pad,), start.dtype)])

        def one(args: tuple[jax.Array, jax.Array]) -> jax.Array:
            return forecast_graph(fc.graphdef, params, table, year, mean, std, *args, spec=fc.spec)

        pred = jax.lax.map(
            one, (history.reshape(blocks, block, *rest), start.reshape(blocks, block))
        )
        pred = pred.reshape(blocks * block, *pred.shape[2:])[:b]
        width = jnp.asarray(half)[None]
        return pred, pred[:, None] - width, pred[:, None] + width

    (b,) = jax.export.symbolic_shape("b")
    exported = jax.export.export(jax.jit(serve))(
        jax.ShapeDtypeStruct((b, fc.in_steps, fc.info.num_nodes), jnp.float32),
        jax.ShapeDtypeStruct((b,), jnp.int32),
    )
    path.write_bytes(exported.serialize())
    info = fc.info
    meta = {
        "format": EXPORT_FORMAT,
        "inputs": {
            "history": f"float32 [B, {fc.in_steps}, {info.num_nodes}], data units, NaN = missing",
            "start": "int32 [B], minutes since 1970-01-01T00:00 of history[:, 0]",
        },
        "outputs": {
            "forecast": f"float32 [B, {fc.out_steps}, {info.num_nodes}]",
            "lower": f"float32 [B, {len(levels)}, {fc.out_steps}, {info.num_nodes}]",
            "upper": f"float32 [B, {len(levels)}, {fc.out_steps}, {info.num_nodes}]",
        },
        "node_ids": list(fc.node_ids),
        "step_minutes": info.step_minutes,
        "steps_per_day": info.steps_per_day,
        "in_steps": fc.in_steps,
        "out_steps": fc.out_steps,
        "horizons_minutes": [info.step_minutes * (h + 1) for h in range(fc.out_steps)],
        "scaler": {"mean": float(info.scaler.mean), "std": float(info.scaler.std)},
        "levels": levels,
        "interval_half_width": half.tolist(),
        "platforms": list(exported.platforms),
        "block": block,
        "baseline_won_on_validation": None if fc.guard is None else fc.guard.beaten(),
        "workdir": None if fc.workdir is None else str(fc.workdir),
    }
    meta_path = sidecar_path(path)
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    return path, meta_path
