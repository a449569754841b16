"""Train and evaluate one experiment: parse the command line, then `train_and_evaluate(config,
workdir)`.

    python -m experiments.train --config experiments/configs/synthetic_elinformer.py \\
        --workdir runs/synthetic
    python -m experiments.train --config experiments/configs/los_loop_elinformer.py \\
        --workdir runs/los_loop --set train.max_epochs=30 --set model.spatial_attention=softmax

Rerunning a command with an existing workdir resumes it from its newest readable checkpoint (the
config must match, except the budget: train.max_epochs, patience, checkpoint cadence, log cadence,
devices, plots, progress). See docs/training.md.

Exit status: 0 done; 1 an error, printed as one `error: ...` line (bad config or data, a workdir
that cannot be written, a checkpoint that cannot be saved or read, divergence); 130 interrupted
(Ctrl-C), with one line naming the workdir and the checkpoint step the same command resumes from.

Several processes (a pod slice, or 2 on one machine) run the same command, each with
`--coordinator HOST:PORT --num-processes N --process-id I` (process 0 listens on PORT), or with
`--distributed` where `jax.distributed.initialize()` finds them itself (Cloud TPU, SLURM):

    JAX_NUM_CPU_DEVICES=2 python -m experiments.train --config ... --workdir runs/x \\
        --coordinator 127.0.0.1:4455 --num-processes 2 --process-id 0 &
    JAX_NUM_CPU_DEVICES=2 python -m experiments.train --config ... --workdir runs/x \\
        --coordinator 127.0.0.1:4455 --num-processes 2 --process-id 1
"""

from __future__ import annotations

import argparse
import json
import sys

from eala_jax.allocator import reexec_with_tcmalloc
from eala_jax.data import MissingOptionsError
from eala_jax.train import (
    IncompatibleWorkdirError,
    TrainingDivergedError,
    apply_overrides,
    config_to_dict,
    load_config_file,
    train_and_evaluate,
    validate_config,
)
from eala_jax.train.checkpoint import CheckpointSaveError, saved_steps
from eala_jax.train.write_failures import silence_orbax_writers

#: Exit status of a run stopped by Ctrl-C (SIGINT), as a shell reports it (128 + 2).
INTERRUPTED = 130


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--config",
        required=True,
        help="experiment file under experiments/configs/ defining get_config()",
    )
    parser.add_argument(
        "--workdir",
        required=True,
        help="folder for checkpoints, logs and results (resumed if it exists)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a config field, e.g. --set train.batch_size=32 (repeatable)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    group = parser.add_argument_group(
        "several processes", "start one process per host (or several on one machine)"
    )
    group.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="address of process 0, which listens on PORT (with --num-processes, --process-id)",
    )
    group.add_argument("--num-processes", type=int, metavar="N", help="processes in the run")
    group.add_argument("--process-id", type=int, metavar="I", help="this process, 0 .. N-1")
    group.add_argument(
        "--distributed",
        action="store_true",
        help="jax.distributed.initialize() with no arguments: the cluster (Cloud TPU pod, "
        "SLURM, ...) says who is who",
    )
    return parser.parse_args(argv)


def distributed_arguments(args: argparse.Namespace) -> dict[str, object] | None:
    """Keywords for `jax.distributed.initialize` from the command line, None for one process.

    Raises ValueError naming the flag when the flags are incomplete or out of range.
    """
    explicit = {
        "--coordinator": args.coordinator,
        "--num-processes": args.num_processes,
        "--process-id": args.process_id,
    }
    given = [flag for flag, value in explicit.items() if value is not None]
    if args.distributed:
        if given:
            raise ValueError(f"--distributed takes no {', '.join(given)}: use one or the other")
        return {}
    if not given:
        return None
    if len(given) < len(explicit):
        missing = [flag for flag in explicit if flag not in given]
        raise ValueError(
            f"{', '.join(given)} also needs {', '.join(missing)} (or use --distributed where "
            "the cluster provides them)"
        )
    host, _, port = args.coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"--coordinator={args.coordinator!r}: expected HOST:PORT, e.g. 10.0.0.2:4455"
        )
    if args.num_processes < 1:
        raise ValueError(f"--num-processes={args.num_processes}: expected at least 1")
    if not 0 <= args.process_id < args.num_processes:
        raise ValueError(
            f"--process-id={args.process_id}: expected 0 .. {args.num_processes - 1} "
            f"(--num-processes={args.num_processes})"
        )
    return {
        "coordinator_address": args.coordinator,
        "num_processes": args.num_processes,
        "process_id": args.process_id,
    }


def missing_options_message(err: MissingOptionsError, options: dict[str, object]) -> str:
    """`err` in this command line's spelling: the keys to add to `data.options` (which
    `--set 'data.options={...}'` replaces whole), with the run's own options in the example."""
    keys = " and ".join(json.dumps(k) for k in err.options)
    example = json.dumps({**options, **err.options})
    return f"{err.path} {err.why}: add {keys} to data.options, e.g. --set 'data.options={example}'"


def interrupted_message(workdir: str) -> str:
    """One line after Ctrl-C: where the run stands and that the same command resumes it."""
    steps = saved_steps(workdir)
    if not steps:
        return (
            f"interrupted: no checkpoint saved yet in {workdir}; the same command starts the run "
            "afresh"
        )
    return (
        f"interrupted: {workdir} holds checkpoints up to step {steps[-1]}; the same command "
        f"resumes from step {steps[-1]}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = None
    try:
        distributed = distributed_arguments(args)
        config = apply_overrides(load_config_file(args.config), args.overrides)
        if args.print_config:
            validate_config(config)
            print(json.dumps(config_to_dict(config), indent=2))
            return 0
        if distributed is not None:
            import jax

            jax.distributed.initialize(**distributed)  # before anything touches the devices
        train_and_evaluate(config, args.workdir)  # validates the config first
    except KeyboardInterrupt:
        # A save the interrupt cut short is not a checkpoint (the message counts complete ones).
        silence_orbax_writers()
        print(interrupted_message(args.workdir), file=sys.stderr)
        return INTERRUPTED
    except MissingOptionsError as err:
        options = dict(config.data.options) if config is not None else {}
        print(f"error: {missing_options_message(err, options)}", file=sys.stderr)
        return 1
    except (
        KeyError,
        ValueError,
        OSError,  # a workdir or checkpoint that cannot be written (disk full, ...), a missing file
        IncompatibleWorkdirError,
        TrainingDivergedError,
    ) as err:
        if isinstance(err, CheckpointSaveError):
            silence_orbax_writers()  # reported here, once
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    reexec_with_tcmalloc("experiments.train")  # CPU training with the fast allocator
    sys.exit(main())
