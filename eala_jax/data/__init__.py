"""Data path: data sets as ``SpatioTemporalSeries``, forecast windows and splits, scaling, grain
loading.

Typical use::

    series = load_dataset("los_loop")  # or "synthetic", needs no files
    splits = make_forecast_splits(series, in_steps=12, out_steps=12)
    loader = make_loader(splits.train, batch_size=16, shuffle=True, seed=0)
    for batch, num_valid in make_eval_loader(splits.val, batch_size=64):
        ...

See docs/data.md for the data sets and how to bring PEMS08, METR-LA and your own files.
"""

from eala_jax.data.download import DownloadError
from eala_jax.data.load import load_dataset
from eala_jax.data.loader import EvalLoader, make_eval_loader, make_loader
from eala_jax.data.readers import DataFileError, FileSpec, MissingOptionsError
from eala_jax.data.registry import (
    DATASETS,
    KNOWN_NAMES,
    DatasetSpec,
    default_data_dir,
    load_generic,
    read_dataset,
)
from eala_jax.data.scaler import StandardScaler
from eala_jax.data.series import (
    MissingDataWarning,
    MissingValues,
    SpatioTemporalSeries,
    time_features,
)
from eala_jax.data.synthetic import make_synthetic_series
from eala_jax.data.windows import ForecastSplits, WindowSource, make_forecast_splits

__all__ = [
    "DATASETS",
    "KNOWN_NAMES",
    "DataFileError",
    "DatasetSpec",
    "DownloadError",
    "EvalLoader",
    "FileSpec",
    "ForecastSplits",
    "MissingDataWarning",
    "MissingOptionsError",
    "MissingValues",
    "SpatioTemporalSeries",
    "StandardScaler",
    "WindowSource",
    "default_data_dir",
    "load_dataset",
    "load_generic",
    "make_eval_loader",
    "make_forecast_splits",
    "make_loader",
    "make_synthetic_series",
    "read_dataset",
    "time_features",
]
