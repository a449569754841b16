"""Training: typed configs, the functional train/eval steps, device paths, checkpoints, the loop."""

from eala_jax.train.checkpoint import Checkpoints, IncompatibleWorkdirError, check_workdir
from eala_jax.train.config import (
    Config,
    DataConfig,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config_file,
    validate_config,
)
from eala_jax.train.loop import (
    TEST_WINDOWS_FILE,
    TrainingDivergedError,
    build_model,
    prepare_data,
    train_and_evaluate,
)
from eala_jax.train.memory import InsufficientMemoryError
from eala_jax.train.sharding import DataParallel, check_batch_divisible, make_mesh
from eala_jax.train.state import LoopState
from eala_jax.train.steps import (
    StepOptions,
    build_optimizer,
    eval_step,
    learning_rate_schedule,
    loss_fn,
    train_step,
    update_step,
)

__all__ = [
    "TEST_WINDOWS_FILE",
    "Checkpoints",
    "Config",
    "DataConfig",
    "DataParallel",
    "IncompatibleWorkdirError",
    "InsufficientMemoryError",
    "LoopState",
    "ModelConfig",
    "StepOptions",
    "TrainConfig",
    "TrainingDivergedError",
    "apply_overrides",
    "build_model",
    "build_optimizer",
    "check_batch_divisible",
    "check_workdir",
    "config_from_dict",
    "config_to_dict",
    "eval_step",
    "learning_rate_schedule",
    "load_config_file",
    "prepare_data",
    "loss_fn",
    "make_mesh",
    "train_and_evaluate",
    "train_step",
    "update_step",
    "validate_config",
]
