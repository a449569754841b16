"""Train and evaluate one experiment: parse the command line, then `train_and_evaluate(config,
workdir)`.

    python -m experiments.train --config experiments/configs/synthetic_elinformer.py \\
        --workdir runs/synthetic
    python -m experiments.train --config experiments/configs/los_loop_elinformer.py \\
        --workdir runs/los_loop --set train.max_epochs=30 --set model.spatial_attention=softmax

Rerunning a command with an existing workdir resumes it from its newest readable checkpoint (the
config must match, except the budget: train.max_epochs, patience, checkpoint cadence, log cadence,
devices, plots, progress). See docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from eala_jax.allocator import reexec_with_tcmalloc
from eala_jax.train import (
    IncompatibleWorkdirError,
    TrainingDivergedError,
    apply_overrides,
    config_to_dict,
    load_config_file,
    train_and_evaluate,
    validate_config,
)


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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = apply_overrides(load_config_file(args.config), args.overrides)
        if args.print_config:
            validate_config(config)
            print(json.dumps(config_to_dict(config), indent=2))
            return 0
        train_and_evaluate(config, args.workdir)  # validates the config first
    except (
        KeyError,
        ValueError,
        FileNotFoundError,
        IncompatibleWorkdirError,
        TrainingDivergedError,
    ) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    reexec_with_tcmalloc("experiments.train")  # CPU training with the fast allocator
    sys.exit(main())
