"""Conversion without retraining: a trained softmax ELinFormer with its attention replaced.

    python -m experiments.convert --workdir runs/ref/los_loop_softmax_seed0 \\
        --to eala linear performer --scope spatial both --finetune-steps 0 100 300 \\
        --from-scratch --out experiments/results/convert_los_loop.json

Loads the best checkpoint of a finished `experiments.train` run whose attention is softmax on the
axes converted, and for each scope (`spatial`: the spatial layers only; `both`: both axes) and
each attention of `--to` (a registered name, or `name:option=value,...`, e.g. `eala:theta=1.0`):
builds the model with that attention, gives it the trained parameters (every attention's layer
holds the same query / key / value / output projections; extra buffers such as the Performer's
random projection are drawn fresh from `--seed` and listed in the output), evaluates the test split
with no training (step 0), then fine-tunes it with the training loop's own optimiser step
(`Session.train_steps`: the run's optimiser, weight decay, clipping and loss; a fresh Adam state;
a constant learning rate, by default the run's learning rate at its best checkpoint, see
`--learning-rate`) and evaluates after each budget of `--finetune-steps` (cumulative: 300 goes on
from 100). `--from-scratch` trains the same attention from a random initialisation (`--seed`) for
the same budgets with the run's own learning-rate schedule from step 0. The unconverted model's
test metrics are the reference row. Every evaluation is the loop's (`evaluate_split` on the test
split, 12-step means). With `--entropy-windows` > 0 each row also holds the mean exact softmax
entropy of each axis's attention scores (the maps the layers' queries and keys form) on that many
test windows.

Results go to `--out` (JSON, rewritten after every row; `python -m experiments.report` turns the
`experiments/results/convert_*.json` files into docs/results.md's conversion section): `--force`
replaces an existing file, `--merge` keeps its rows of other (seed, scope, attention, steps,
from-scratch) keys (another seed's run, say).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from eala_jax.bench.machine import machine_info
from eala_jax.ops import REGISTRY, AttentionOptions, attention_options, softmax_entropy
from eala_jax.train import Checkpoints, Config
from eala_jax.train.evaluate import evaluate_split
from eala_jax.train.runinfo import WorkdirError, read_config
from eala_jax.train.session import Session
from eala_jax.train.transplant import SCOPES, axes_of, transplant, with_attention

__all__ = ["Plan", "convert", "main", "parse_attention", "plan_from_args"]

REFERENCE = "reference"  # the scope of the unconverted model's row


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a conversion run needs, checked before any work (`plan_from_args`)."""

    workdir: pathlib.Path
    config: Config  # the run's config.json
    attentions: tuple[tuple[str, AttentionOptions], ...]  # (label, options)
    scopes: tuple[str, ...]
    steps: tuple[int, ...]  # ascending, distinct
    from_scratch: bool
    seed: int
    learning_rate: float | None  # None: the run's learning rate at its best checkpoint
    entropy_windows: int
    out: pathlib.Path
    merge: bool
    command: str


def parse_attention(spec: str) -> tuple[str, AttentionOptions]:
    """`"eala"` or `"eala:theta=1.0,estimator=cumulant3"` -> (label, validated options); values
    are read as JSON where they parse, else as strings. ValueError naming the spec and the
    registered attentions."""
    name, _, rest = spec.partition(":")
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--to {spec!r}: expected name or name:option=value,... got {item!r}")
        try:
            values[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            values[key.strip()] = text
    try:
        options = attention_options(name.strip(), values)
    except ValueError as err:
        raise ValueError(f"--to {spec!r}: {err}") from None
    label = name.strip() + (
        ":" + ",".join(f"{k}={v}" for k, v in sorted(values.items())) if values else ""
    )
    return label, options


def _check_source(config: Config, scopes: tuple[str, ...], workdir: pathlib.Path) -> None:
    for scope in scopes:
        for axis in axes_of(scope):
            name = getattr(config.model, axis).name
            if name != "softmax":
                raise ValueError(
                    f"--workdir {workdir}: not a softmax run on the axes converted: "
                    f"model.{axis} is {name!r} (--scope {scope} replaces "
                    f"{' and '.join(axes_of(scope))}); train a softmax reference run, e.g. "
                    "experiments/configs/los_loop_softmax.py"
                )


def plan_from_args(args: argparse.Namespace, command: str = "") -> Plan:
    """The checked plan of the command line; ValueError (or `WorkdirError`) naming the argument
    and what was expected, before any data is read."""
    out = pathlib.Path(args.out)
    if args.force and args.merge:
        raise ValueError("--force and --merge: choose one (replace the file, or add to it)")
    if out.exists() and not (args.force or args.merge):
        raise ValueError(f"--out {out} exists: pass --force to replace it or --merge to add to it")
    if out.exists() and out.is_dir():
        raise ValueError(f"--out {out} is a folder; expected a .json file path")
    steps = sorted(set(args.finetune_steps))
    if not steps or any(s < 0 for s in steps):
        raise ValueError(f"--finetune-steps {args.finetune_steps}: expected integers >= 0")
    if args.entropy_windows < 0:
        raise ValueError(f"--entropy-windows {args.entropy_windows}: expected an integer >= 0")
    if args.learning_rate is not None and not (
        math.isfinite(args.learning_rate) and args.learning_rate > 0
    ):
        raise ValueError(f"--learning-rate {args.learning_rate}: expected a positive number")
    attentions = tuple(parse_attention(spec) for spec in args.to)
    labels = [label for label, _ in attentions]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--to {' '.join(args.to)}: an attention is named twice")
    workdir = pathlib.Path(args.workdir)
    config = read_config(workdir)  # WorkdirError: no config.json, or another version's
    scopes = tuple(dict.fromkeys(args.scope))
    _check_source(config, scopes, workdir)
    best = workdir / "best"
    if not best.is_dir() or not any(p.name.isdigit() for p in best.iterdir()):
        raise WorkdirError(f"--workdir {workdir}: no best checkpoint ({best}/<step>/)")
    if args.merge and out.is_file():
        previous = json.loads(out.read_text())
        if previous.get("data") != config.data.name:
            raise ValueError(
                f"--merge: {out} holds data set {previous.get('data')!r}, this run "
                f"{config.data.name!r}; write another file"
            )
    return Plan(
        workdir=workdir,
        config=config,
        attentions=attentions,
        scopes=scopes,
        steps=tuple(steps),
        from_scratch=args.from_scratch,
        seed=config.train.seed if args.seed is None else args.seed,
        learning_rate=args.learning_rate,
        entropy_windows=args.entropy_windows,
        out=out,
        merge=args.merge,
        command=command,
    )


# --------------------------------------------------------------------------------------------
# The work
# --------------------------------------------------------------------------------------------
def _session(config: Config, **train: Any) -> Session:
    """A session of `config` with `train` fields replaced; no memory check (the run passed it,
    and the attentions that replace softmax need less)."""
    t = dataclasses.replace(config.train, check_memory=False, **train)
    return Session.build(dataclasses.replace(config, train=t, progress_bar=False, plots=False))


def _entropy_inputs(session: Session, count: int) -> dict[str, Any] | None:
    """`count` test windows spread over the split, as `layer_queries_keys` takes them."""
    from experiments.entropy_maps import spread_test_inputs

    if count == 0:
        return None
    return spread_test_inputs(session.splits, count)


def map_entropy(session: Session, host_state: Any, inputs: dict[str, Any]) -> dict[str, float]:
    """Mean exact softmax entropy (nats) of each axis's attention scores on `inputs`:
    {"temporal": ..., "spatial": ...} over that axis's layers (absent for an axis without)."""
    from experiments.entropy_maps import layer_queries_keys

    model, _ = nnx.merge(session.dp.graphdef, host_state)
    found: dict[str, list[float]] = {}
    for layer, (q, k) in layer_queries_keys(model, inputs).items():
        found.setdefault(layer.split("_")[0], []).append(float(jnp.mean(softmax_entropy(q, k))))
    return {axis: float(np.mean(values)) for axis, values in found.items()}


class _Writer:
    """The output document, rewritten (atomically) after every row."""

    def __init__(self, plan: Plan, header: dict[str, Any]):
        self.plan = plan
        previous = json.loads(plan.out.read_text()) if plan.merge and plan.out.is_file() else {}
        self.doc = {**previous, **header, "rows": list(previous.get("rows", []))}
        self.doc["commands"] = sorted(set(previous.get("commands", [])) | {plan.command})

    def add(self, row: dict[str, Any]) -> None:
        key = _row_key(row)
        self.doc["rows"] = [r for r in self.doc["rows"] if _row_key(r) != key] + [row]
        self.plan.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.plan.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.doc, indent=1) + "\n")
        tmp.replace(self.plan.out)
        scratch = " from scratch" if row["from_scratch"] else ""
        print(
            f"{row['scope']:9s} {row['attention']:22s} steps {row['steps']:5d}{scratch}: test MAE "
            f"{row['test_mae']:.4f} RMSE {row['test_rmse']:.4f}",
            flush=True,
        )


def _row_key(row: dict[str, Any]) -> tuple:
    return (row["seed"], row["scope"], row["attention"], row["steps"], row["from_scratch"])


def _budgets(
    session: Session, state: Any, steps: tuple[int, ...], seed: int
) -> Iterator[tuple[int, Any, float]]:
    """(budget, device state, training seconds so far) after each budget of `steps`
    (cumulative), trained on `seed`'s batch order."""
    batches = session.train_batches(seed)
    done, seconds = 0, 0.0
    for budget in steps:
        tick = time.perf_counter()
        state, _ = session.train_steps(state, batches, budget - done)
        jax.block_until_ready(state)
        seconds += time.perf_counter() - tick
        done = budget
        yield budget, state, seconds


def convert(plan: Plan) -> dict[str, Any]:
    """Runs `plan`; returns the output document (also written to `plan.out`)."""
    source = _session(plan.config)
    checkpoints = Checkpoints(plan.workdir, keep=plan.config.train.keep_checkpoints)
    try:
        best_step = checkpoints.best_step()
        trained = checkpoints.restore_best(source.initial_state)
    finally:
        checkpoints.close()
    run_lr = float(source.dp.options.schedule(max(best_step - 1, 0)))
    lr = run_lr if plan.learning_rate is None else plan.learning_rate
    data = plan.config.data.name
    results_file = plan.workdir / "results.json"
    run_results = json.loads(results_file.read_text()) if results_file.is_file() else None
    writer = _Writer(
        plan,
        {
            "data": data,
            "machine": machine_info(),
            "learning_rates": "fine-tuning: constant, the run's learning rate at its best "
            "checkpoint unless --learning-rate (each row's learning_rate); from scratch: the "
            "run's own schedule from step 0",
        },
    )
    inputs = _entropy_inputs(source, plan.entropy_windows)

    def row(
        session: Session, state: Any, scope: str, label: str, steps: int, scratch: bool, **extra
    ) -> None:
        result, _, _ = evaluate_split(session, state, session.splits.test)
        entry = {
            "data": data,
            "workdir": str(plan.workdir),
            "seed": plan.seed,
            "run_seed": plan.config.train.seed,
            "scope": scope,
            "attention": label,
            "steps": steps,
            "from_scratch": scratch,
            "test_mae": result["mae_mean"],
            "test_rmse": result["rmse_mean"],
            "test_mape": result["mape_mean"],
            **extra,
        }
        if inputs is not None:
            entry["entropy"] = map_entropy(session, session.dp.host_state(state), inputs)
        writer.add(entry)

    reference_extra = {}
    if run_results is not None:
        reference_extra["run_test_mae"] = run_results["test"]["model"]["mae_mean"]
    row(source, source.dp.put_state(trained), REFERENCE, "softmax", 0, False, **reference_extra)
    for scope in plan.scopes:
        for label, options in plan.attentions:
            target = with_attention(plan.config, options, scope=scope)
            # A constant learning rate: the schedule with no milestones.
            session = _session(target, seed=plan.seed, learning_rate=lr, milestones=())
            state, fresh = transplant(trained, session.initial_state)
            for steps, device_state, seconds in _budgets(
                session, session.dp.put_state(state), plan.steps, plan.seed
            ):
                row(
                    session,
                    device_state,
                    scope,
                    label,
                    steps,
                    False,
                    train_seconds=seconds,
                    learning_rate=lr,
                    lr_source="run" if plan.learning_rate is None else "given",
                    fresh_leaves=list(fresh),
                )
            if plan.from_scratch:
                scratch = _session(target, seed=plan.seed)
                budgets = tuple(s for s in plan.steps if s > 0)
                start = scratch.dp.put_state(scratch.initial_state)
                for steps, device_state, seconds in _budgets(scratch, start, budgets, plan.seed):
                    row(scratch, device_state, scope, label, steps, True, train_seconds=seconds)
    return writer.doc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.convert", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--workdir", required=True, help="a finished softmax experiments.train run")
    parser.add_argument(
        "--to",
        nargs="+",
        required=True,
        metavar="ATTENTION",
        help=f"attentions to convert to: {', '.join(REGISTRY)}, or name:option=value,...",
    )
    parser.add_argument("--scope", nargs="+", choices=SCOPES, default=["spatial"])
    parser.add_argument("--finetune-steps", nargs="+", type=int, default=[0, 100, 300])
    parser.add_argument(
        "--from-scratch",
        action="store_true",
        help="also train each attention from random init for the same budgets",
    )
    parser.add_argument(
        "--seed", type=int, help="init of new buffers / scratch models, batch order, dropout"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        help="constant fine-tuning learning rate (default: the run's at its best checkpoint)",
    )
    parser.add_argument(
        "--entropy-windows",
        type=int,
        default=16,
        help="test windows for the maps' mean exact entropy (0: skip)",
    )
    parser.add_argument("--out", required=True, help="JSON file of the rows")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument(
        "--merge", action="store_true", help="add to an existing --out (rows of the same key go)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m experiments.convert " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    try:
        plan = plan_from_args(args, command)
    except ValueError as err:  # WorkdirError too
        print(f"error: {err}", file=sys.stderr)
        return 2
    doc = convert(plan)
    from experiments.report_convert import convert_table

    print("\n".join(convert_table(doc)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
