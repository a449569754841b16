"""Typed experiment configuration: data set, model and optimisation, with command-line overrides.

A config file under `experiments/configs/` defines `get_config() -> Config`. Overrides are
`key=value` strings with dotted keys (`train.batch_size=32`, `model.spatial_attention=softmax`,
`model.spatial_attention_options={"estimator": "cumulant3"}`); values are parsed as JSON where
they parse, else taken as strings, then converted to the field's type. Unknown keys are errors.
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

__all__ = [
    "Config",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config_file",
    "options_dict",
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
    # Input and output window lengths (steps).
    in_steps: int = 12
    out_steps: int = 12
    # Chronological train/val/test fractions; None = the data set's default split.
    split: tuple[float, float, float] | None = None
    # Expected node count and steps per day; None = take them from the data. Set, they are
    # checked against the data before training (a clear error when they do not fit).
    num_nodes: int | None = None
    steps_per_day: int | None = None


@dataclasses.dataclass(unsafe_hash=True)
class ModelConfig:
    # Attention per axis, by registry name: eala, softmax, linear, performer, uniform.
    temporal_attention: str = "eala"
    spatial_attention: str = "eala"
    # Keyword options passed through to the attention op, as sorted (key, value) pairs.
    temporal_attention_options: Options = ()
    spatial_attention_options: Options = ()
    # Embedding widths; their sum is the model dim (152 in docs/method.md, ELinFormer).
    input_embedding_dim: int = 24
    tod_embedding_dim: int = 24
    dow_embedding_dim: int = 24
    adaptive_embedding_dim: int = 80
    feed_forward_dim: int = 256
    num_heads: int = 4
    num_temporal_layers: int = 3
    num_spatial_layers: int = 3
    dropout: float = 0.1
    # Build the attention as nnx.MultiHeadAttention(attention_fn=op) instead of SelfAttention.
    use_flax_mha: bool = False
    # Compute dtype: "float32" or "bfloat16" (parameters stay float32).
    dtype: str = "float32"


@dataclasses.dataclass(unsafe_hash=True)
class TrainConfig:
    # Seed for parameters, dropout and data order; the same seed gives the same metrics on CPU.
    seed: int = 0
    # Global batch size (split across devices; must divide by the device count).
    batch_size: int = 16
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
    # Save a resumable checkpoint every this many steps as well as at each epoch end (0 = epoch ends
    # only).
    checkpoint_every_steps: int = 0
    # Resumable checkpoints kept (the best one is kept apart).
    keep_checkpoints: int = 2
    # Sensors shown in the prediction-vs-truth plot, and the horizon (1-based) plotted.
    plot_sensors: tuple[int, ...] = (0, 1, 2)
    plot_horizon: int = 3


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


#: Top-level keys whose value may differ between a run and its resume.
RUNTIME_KEYS = ("progress_bar", "tensorboard", "plots", "data.data_dir")


def options_dict(options: Options) -> dict[str, Any]:
    """Attention options as a plain dict."""
    return dict(options)


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
    if annotation is Options or key.endswith("options"):
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


def _set(cfg: Any, path: list[str], value: Any, full_key: str) -> Any:
    names = [f.name for f in dataclasses.fields(cfg)]
    head = path[0]
    if head not in names:
        raise KeyError(
            f"unknown config key {full_key!r}; valid keys here: {', '.join(sorted(names))}"
        )
    current = getattr(cfg, head)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise KeyError(f"unknown config key {full_key!r}: {head!r} has no sub-keys")
        return dataclasses.replace(cfg, **{head: _set(current, path[1:], value, full_key)})
    if dataclasses.is_dataclass(current):
        raise KeyError(f"config key {full_key!r} is a section; set one of its fields")
    try:
        converted = _convert(value, _field_types(type(cfg))[head], full_key)
    except (TypeError, ValueError, json.JSONDecodeError) as err:
        raise ValueError(f"bad value {value!r} for config key {full_key!r}: {err}") from err
    return dataclasses.replace(cfg, **{head: converted})


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config: Config, overrides: list[str] | tuple[str, ...]) -> Config:
    """Apply `key=value` overrides (dotted keys); raises KeyError for an unknown key."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        config = _set(config, key.split("."), _parse_value(text.strip()), key)
    return config


def config_to_dict(config: Config) -> dict[str, Any]:
    """A JSON-ready dict of the full config (options as dicts, tuples as lists)."""

    def encode(obj: Any, key: str = "") -> Any:
        if dataclasses.is_dataclass(obj):
            return {f.name: encode(getattr(obj, f.name), f.name) for f in dataclasses.fields(obj)}
        if key.endswith("options"):
            return {k: encode(v) for k, v in obj}
        if isinstance(obj, tuple):
            return [encode(v) for v in obj]
        if isinstance(obj, float) and not math.isfinite(obj):
            return repr(obj)  # JSON has no NaN/inf
        return obj

    return encode(config)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Inverse of `config_to_dict`; unknown keys are errors."""

    def build(cls: type, values: dict[str, Any], prefix: str) -> Any:
        types_ = _field_types(cls)
        kwargs = {}
        for name, value in values.items():
            key = f"{prefix}{name}"
            if name not in types_:
                raise KeyError(f"unknown config key {key!r}")
            field_type = types_[name]
            if dataclasses.is_dataclass(field_type):
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
    """Checks that need no data: names, choices and ranges. Raises ValueError."""
    from eala_jax.models.attention import check_attention_name

    m, t, d = config.model, config.train, config.data
    check_attention_name(m.temporal_attention)
    check_attention_name(m.spatial_attention)
    choices = {
        "train.optimizer": (t.optimizer, ("adam", "adamw")),
        "train.loss": (t.loss, ("mae", "huber")),
        "train.parallel": (t.parallel, ("jit", "pmap", "none")),
        "model.dtype": (m.dtype, ("float32", "bfloat16")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"{key}={value!r}; choose one of {', '.join(allowed)}")
    positive = {
        "train.batch_size": t.batch_size,
        "train.eval_batch_size": t.eval_batch_size,
        "train.max_epochs": t.max_epochs,
        "data.in_steps": d.in_steps,
        "data.out_steps": d.out_steps,
        "model.num_heads": m.num_heads,
    }
    for key, value in positive.items():
        if value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")
    dim = (
        m.input_embedding_dim + m.tod_embedding_dim + m.dow_embedding_dim + m.adaptive_embedding_dim
    )
    if dim % m.num_heads:
        raise ValueError(
            f"model dim {dim} (sum of embedding dims) is not divisible by num_heads={m.num_heads}"
        )
    if not 0.0 <= m.dropout < 1.0:
        raise ValueError(f"model.dropout must be in [0, 1), got {m.dropout}")
    if t.max_steps_per_epoch is not None and t.max_steps_per_epoch < 1:
        raise ValueError(
            f"train.max_steps_per_epoch must be >= 1 or None, got {t.max_steps_per_epoch}"
        )
    if not 1 <= t.plot_horizon <= d.out_steps:
        raise ValueError(f"train.plot_horizon must be in [1, {d.out_steps}], got {t.plot_horizon}")
