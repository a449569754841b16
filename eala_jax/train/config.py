"""Typed experiment configuration: data set, model and optimisation, with command-line overrides.

A config file under `experiments/configs/` defines `get_config() -> Config`. Overrides are
`key=value` strings with dotted keys (`train.batch_size=32`); values are parsed as JSON where they
parse, else taken as strings, then converted to the field's type. Unknown keys are errors.

The attention of each axis is one typed options object (`eala_jax.ops.AttentionOptions`, e.g.
`EalaOptions(estimator="cumulant3")`), validated when it is built. Overrides:
`model.spatial_attention=softmax` selects an attention with its default options,
`model.spatial_attention.estimator=cumulant3` changes one option of the current one, and
`model.spatial_attention={"name": "eala", "theta": 1.0}` sets both. The JSON form of a config
(`config_to_dict`, the workdir's config.json) stores `{"name": ..., <options>}`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

from eala_jax._checks import check_choice, check_range
from eala_jax.models.config import ModelConfig
from eala_jax.ops import AttentionOptions, attention_options

__all__ = [
    "Config",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config_file",
    "validate_config",
]

Options = tuple[tuple[str, Any], ...]


@dataclasses.dataclass(unsafe_hash=True)
class DataConfig:
    # Data set name for `eala_jax.data.load_dataset` ("synthetic", "los_loop", "sz_taxi", ...).
    name: str = "synthetic"
    # Folder holding the data files; None = the loader's default ($EALA_DATA_DIR or ../shared/data).
    data_dir: str | None = None
    # Extra keyword options of `load_dataset` as (key, value) pairs, e.g. path= for your own file
    # or num_nodes= / num_days= of the synthetic set.
    options: Options = ()
    # Recipe per kind of data (docs/training.md): "" keeps this config's windows, loss and seasonal
    # settings; "auto" picks them from the data's step and zero share (the log says which); or a
    # recipe's name ("sub_hourly", "hourly_counts", "hourly", "daily", "weekly").
    recipe: str = ""
    # Input and output window lengths (steps); a recipe replaces them.
    in_steps: int = 12
    out_steps: int = 12
    # Chronological train/val/test fractions; None = the data set's default split.
    split: tuple[float, float, float] | None = None
    # Expected node count and steps per day; None = take them from the data. Set, they are
    # checked against the data before training (a clear error when they do not fit).
    num_nodes: int | None = None
    steps_per_day: int | None = None

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """ValueError naming the key unless every field is in its domain."""
        _check_data(self)


@dataclasses.dataclass(unsafe_hash=True)
class TrainConfig:
    # Seed for parameters, dropout and data order; the same seed gives the same metrics on CPU.
    seed: int = 0
    # Global batch size (split across devices; must divide by the device count).
    batch_size: int = 16
    # Gradient accumulation: each device's rows split into this many micro-batches, run one after
    # another (lax.scan) and their gradients summed before one optimiser step: the same step with
    # the activation memory of one micro-batch (docs/training.md, "Memory per device").
    microbatches: int = 1
    # Evaluation batch size (padded; a multiple of the device count is used).
    eval_batch_size: int = 64
    max_epochs: int = 200
    # Early stopping: stop after this many epochs without a better validation MAE (0 = never).
    patience: int = 30
    # Cap on steps per epoch (None = a full pass over the training split); for short runs.
    max_steps_per_epoch: int | None = None
    # "adam" (L2 added to the gradient, like torch Adam's weight_decay) or "adamw" (decoupled).
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 3e-4
    # Multi-step decay: the learning rate is multiplied by lr_decay at each milestone epoch.
    milestones: tuple[int, ...] = (20, 30)
    lr_decay: float = 0.1
    # Clip gradients to this global norm (0 = no clipping).
    max_grad_norm: float = 5.0
    # "mae" or "huber", masked, on inverse-scaled predictions.
    loss: str = "mae"
    huber_delta: float = 1.0
    # "jit" (jax.jit over a "data" mesh, NamedSharding), "pmap", or "none" (one device).
    parallel: str = "jit"
    # Devices to use (None = all local devices).
    num_devices: int | None = None
    # Node sharding: a 2-D mesh (data, nodes) over the devices, e.g. [2, 4]: the batch split over
    # "data", the sensors over "nodes" (parallel="jit"; data x nodes = device count, nodes must
    # divide the sensor count). None = the batch over all devices (docs/training.md).
    mesh_shape: tuple[int, ...] | None = None
    # Save a resumable checkpoint every this many steps as well as at each epoch end (0 = epoch ends
    # only).
    checkpoint_every_steps: int = 0
    # Resumable checkpoints kept (the best one is kept apart).
    keep_checkpoints: int = 2
    # Fetch the training measurements (loss, norms, lr) from the devices and check them for NaN
    # every this many steps (and at each epoch end and checkpoint); a non-finite one still names
    # its own step. Between fetches the host does not wait for the devices.
    log_every: int = 50
    # Sensors shown in the prediction-vs-truth plot, and the horizon (1-based) plotted.
    plot_sensors: tuple[int, ...] = (0, 1, 2)
    plot_horizon: int = 3
    # Before the model is built, compile the update and evaluation steps on shapes only and refuse
    # a run whose state or steps need more memory than the devices (the host, on CPU) have
    # (`eala_jax.train.memory`); false skips the check.
    check_memory: bool = True

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """ValueError naming the key unless every field is in its domain (and `microbatches`
        divides `batch_size`, `mesh_shape` is `(data, nodes)` under `parallel="jit"`)."""
        _check_train(self)


@dataclasses.dataclass(unsafe_hash=True)
class Config:
    # Free-form experiment name (appears in logs and results).
    name: str = "experiment"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    # Runtime switches that do not change results (may differ between a run and its resume).
    progress_bar: bool = True
    tensorboard: bool = False
    plots: bool = True

    def __post_init__(self) -> None:
        _check_config(self)  # each section checked itself when built

    def check(self) -> None:
        """Each section's checks again, then the rules across sections (`validate_config`)."""
        self.data.check()
        self.train.check()
        self.model.check()
        _check_config(self)


#: Top-level keys whose value may differ between a run and its resume.
RUNTIME_KEYS = ("progress_bar", "tensorboard", "plots", "data.data_dir")


def _to_options(value: Any) -> Options:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if isinstance(value, dict):
        value = value.items()
    return tuple(sorted((str(k), _freeze(v)) for k, v in value))


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Convert a parsed override/JSON value to the field's annotated type."""
    if annotation == Options:
        return _to_options(value)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(value, non_none[0], key)
    if origin is tuple:
        if isinstance(value, str):
            value = (
                json.loads(value)
                if value.strip().startswith("[")
                else [v for v in value.split(",") if v.strip()]
            )
        elem = args[0] if args else Any
        return tuple(_convert(v, elem, key) for v in value)
    if annotation is bool:
        if isinstance(value, str):
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
            raise ValueError(f"{key}: expected a boolean, got {value!r}")
        return bool(value)
    if annotation is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if annotation is float:
        return float(value)
    if annotation is str:
        return str(value)
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _attention(value: Any, key: str) -> AttentionOptions:
    """The options object an override or a JSON value gives for the attention field `key`: a name
    (that attention's defaults) or `{"name": ..., <options>}`."""
    if isinstance(value, AttentionOptions):
        return value
    if isinstance(value, dict):
        values = dict(value)
        if "name" not in values:
            raise ValueError(
                f'{key}: a JSON object must name its attention, e.g. {{"name": "eala", "theta": '
                f"1.0}}; to change one option of the current attention set {key}.<option>=<value>"
            )
        name = values.pop("name")
    elif isinstance(value, str):
        name, values = value, {}
    else:
        raise ValueError(
            f'{key}: expected an attention name or {{"name": ..., <options>}}, got {value!r}'
        )
    try:
        return attention_options(name, values)
    except ValueError as err:
        raise ValueError(f"{key}: {err}") from None


Change = tuple[list[str], Any, str]  # (path below the current section, value, full key)


def _apply(cfg: Any, changes: list[Change]) -> Any:
    """`cfg` with `changes` applied in one `dataclasses.replace` per section, so that a section
    (and the config) checks its fields once, with every override in place: the order of the
    overrides never matters, and an intermediate mix of old and new values is never judged."""
    names = [f.name for f in dataclasses.fields(cfg)]
    groups: dict[str, list[Change]] = {}
    for path, value, full_key in changes:
        head = path[0]
        if head not in names:
            if isinstance(cfg, AttentionOptions):
                raise KeyError(
                    f"unknown config key {full_key!r}: {cfg.name} attention has no option "
                    f"{head!r}; valid options: {', '.join(names)}"
                )
            raise KeyError(
                f"unknown config key {full_key!r}; valid keys here: {', '.join(sorted(names))}"
            )
        groups.setdefault(head, []).append((path, value, full_key))
    updates = {}
    for head, group in groups.items():
        current = getattr(cfg, head)
        for _path, value, full_key in (c for c in group if len(c[0]) == 1):
            if isinstance(current, AttentionOptions):
                current = _attention(value, full_key)  # a new attention: its options start afresh
            elif dataclasses.is_dataclass(current):
                raise KeyError(f"config key {full_key!r} is a section; set one of its fields")
            else:
                try:
                    current = _convert(value, _field_types(type(cfg))[head], full_key)
                except (TypeError, ValueError, json.JSONDecodeError) as err:
                    raise ValueError(
                        f"bad value {value!r} for config key {full_key!r}: {err}"
                    ) from err
        deeper = [(path[1:], value, key) for path, value, key in group if len(path) > 1]
        if deeper:
            if not dataclasses.is_dataclass(current):
                raise KeyError(f"unknown config key {deeper[0][2]!r}: {head!r} has no sub-keys")
            current = _apply(current, deeper)
        updates[head] = current
    try:  # each section (and an options object) checks its fields here
        return dataclasses.replace(cfg, **updates)
    except ValueError as err:
        if len(changes) == 1:
            _, value, full_key = changes[0]
            raise ValueError(f"bad value {value!r} for config key {full_key!r}: {err}") from None
        keys = ", ".join(repr(key) for _, _, key in changes)
        raise ValueError(f"bad values for config keys {keys}: {err}") from None


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config: Config, overrides: list[str] | tuple[str, ...]) -> Config:
    """Apply `key=value` overrides (dotted keys) together: each section is rebuilt once with all
    of its changes (and checks itself then); a later override of the same key wins, and a new
    attention (`model.spatial_attention=softmax`) is set before its options are changed. Raises
    KeyError for an unknown key, ValueError for a bad value."""
    changes: list[Change] = []
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        changes.append((key.split("."), _parse_value(text.strip()), key))
    return _apply(config, changes) if changes else config


def config_to_dict(config: Config) -> dict[str, Any]:
    """A JSON-ready dict of the full config (attentions as `{"name": ..., <options>}`, data
    options as a dict, tuples as lists)."""

    def encode(obj: Any, hint: Any = None) -> Any:
        if isinstance(obj, AttentionOptions):
            return {"name": obj.name, **{k: encode(v) for k, v in obj.as_kwargs().items()}}
        if dataclasses.is_dataclass(obj):
            hints = _field_types(type(obj))
            return {
                f.name: encode(getattr(obj, f.name), hints[f.name]) for f in dataclasses.fields(obj)
            }
        if hint == Options:
            return {k: encode(v) for k, v in obj}
        if isinstance(obj, tuple):
            return [encode(v) for v in obj]
        if isinstance(obj, float) and not math.isfinite(obj):
            return repr(obj)  # JSON has no NaN/inf
        return obj

    return encode(config)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Inverse of `config_to_dict`; unknown keys and invalid attention options are errors."""

    def build(cls: type, values: dict[str, Any], prefix: str) -> Any:
        types_ = _field_types(cls)
        kwargs = {}
        for name, value in values.items():
            key = f"{prefix}{name}"
            if name not in types_:
                raise KeyError(f"unknown config key {key!r}")
            field_type = types_[name]
            if field_type is AttentionOptions:
                kwargs[name] = _attention(value, key)
            elif dataclasses.is_dataclass(field_type):
                kwargs[name] = build(field_type, value, key + ".")
            else:
                if isinstance(value, str) and field_type is float:
                    value = float(value)
                kwargs[name] = _convert(value, field_type, key)
        return cls(**kwargs)

    return build(Config, data, "")


def load_config_file(path: str | Path) -> Config:
    """Import a config file and return its `get_config()`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} not found")
    spec = importlib.util.spec_from_file_location(f"_eala_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise AttributeError(f"config file {str(path)!r} defines no get_config()")
    config = module.get_config()
    if not isinstance(config, Config):
        raise TypeError(f"{str(path)!r}: get_config() returned {type(config).__name__}, not Config")
    return config


def validate_config(config: Config) -> None:
    """Checks `config` again (each section's `check`, then the config's cross-section rules), for a
    config whose fields were assigned after it was built; building or replacing a section checks
    it already. Raises ValueError naming the key and its allowed values."""
    config.check()


def _check_data(d: DataConfig) -> None:
    from eala_jax.data.series import MINUTES_PER_DAY, check_split
    from eala_jax.train.recipes import RECIPES

    if d.recipe not in ("", "auto", *RECIPES):
        raise ValueError(
            f"data.recipe={d.recipe!r}; choose '' (none), 'auto' or one of {', '.join(RECIPES)}"
        )
    for key, value, none_ok in (
        ("data.in_steps", d.in_steps, False),
        ("data.out_steps", d.out_steps, False),
        ("data.num_nodes", d.num_nodes, True),
        ("data.steps_per_day", d.steps_per_day, True),
    ):
        check_range(key, value, integer=True, low=1, none_ok=none_ok)
    if d.steps_per_day is not None and MINUTES_PER_DAY % d.steps_per_day:
        raise ValueError(
            f"data.steps_per_day must divide a day of {MINUTES_PER_DAY} minutes (1 for daily or "
            f"longer steps), got {d.steps_per_day}"
        )
    if d.split is not None:
        check_split(d.split, "data.split")


def _check_train(t: TrainConfig) -> None:
    from eala_jax.train.mesh import PARALLEL_MODES
    from eala_jax.train.steps import LOSSES, OPTIMIZERS

    check_choice("train.optimizer", t.optimizer, OPTIMIZERS)
    check_choice("train.loss", t.loss, LOSSES)
    check_choice("train.parallel", t.parallel, PARALLEL_MODES)
    for key, value, low, none_ok in (
        ("train.batch_size", t.batch_size, 1, False),
        ("train.microbatches", t.microbatches, 1, False),
        ("train.eval_batch_size", t.eval_batch_size, 1, False),
        ("train.max_epochs", t.max_epochs, 1, False),
        ("train.patience", t.patience, 0, False),
        ("train.max_steps_per_epoch", t.max_steps_per_epoch, 1, True),
        ("train.num_devices", t.num_devices, 1, True),
        ("train.checkpoint_every_steps", t.checkpoint_every_steps, 0, False),
        ("train.keep_checkpoints", t.keep_checkpoints, 1, False),
        ("train.log_every", t.log_every, 1, False),
    ):
        check_range(key, value, integer=True, low=low, none_ok=none_ok)
    if not isinstance(t.check_memory, bool):
        raise ValueError(f"train.check_memory must be true or false, got {t.check_memory!r}")
    # grain and numpy take seeds as non-negative 32-bit integers.
    check_range("train.seed", t.seed, integer=True, low=0, high=2**31 - 1)
    check_range("train.learning_rate", t.learning_rate, integer=False, low=0, open_low=True)
    check_range("train.weight_decay", t.weight_decay, integer=False, low=0)
    check_range("train.lr_decay", t.lr_decay, integer=False, low=0, high=1, open_low=True)
    check_range("train.max_grad_norm", t.max_grad_norm, integer=False, low=0)
    check_range("train.huber_delta", t.huber_delta, integer=False, low=0, open_low=True)
    for milestone in t.milestones:
        check_range("train.milestones (each epoch)", milestone, integer=True, low=1)
    if len(set(t.milestones)) != len(t.milestones):
        raise ValueError(
            f"train.milestones must be distinct epochs, got {list(t.milestones)} (a repeated "
            "epoch would decay the learning rate once, not twice)"
        )
    for sensor in t.plot_sensors:  # indices past the node count are skipped by the plot
        check_range("train.plot_sensors (each sensor index)", sensor, integer=True, low=0)
    if t.batch_size % t.microbatches:
        raise ValueError(
            f"train.microbatches={t.microbatches} does not divide train.batch_size={t.batch_size}"
        )
    if t.mesh_shape is not None:
        if t.parallel != "jit":
            raise ValueError(f"train.mesh_shape={t.mesh_shape} needs train.parallel='jit'")
        if len(t.mesh_shape) != 2:
            raise ValueError(
                f"train.mesh_shape must be (data, nodes), two positive integers, got "
                f"{t.mesh_shape!r}"
            )
        for size in t.mesh_shape:
            check_range("train.mesh_shape (each axis)", size, integer=True, low=1)


def _check_config(config: Config) -> None:
    """The rules across sections."""
    t, d, m = config.train, config.data, config.model
    check_range("train.plot_horizon", t.plot_horizon, integer=True, low=1, high=d.out_steps)
    check_range("model.patch_len", m.patch_len, integer=True, low=1, high=d.in_steps)
