"""tensorflow-datasets copies of the data sets (ArrayRecord files, no TensorFlow needed).

One builder, ``eala_series``, with one config per data set name. It reads the source files with
``registry.read_dataset``, as ``load_dataset`` does (from ``manual_dir`` = the data directory, or
``path=``), and writes:

- split ``"series"``: one record per time step, ``{"values": float32 [N]}`` (NaN = missing), in time
  order (``disable_shuffling=True``);
- split ``"graph"`` (only when the set has one): one record per adjacency row, ``{"values": float32
  [N]}``;
- ``info.metadata``: name, start time, step, steps per day, default split, node ids, source, and the
  load options used (a later read with other options is refused rather than silently reused).

Use ``build_tfds(name, tfds_dir=...)`` to prepare, ``read_tfds(builder_dir)`` to read back, or
``load_dataset(name, via_tfds=True, tfds_dir=...)`` for both.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from eala_jax.data.registry import DATASETS, KNOWN_NAMES, read_dataset, resolve_data_dir
from eala_jax.data.series import MissingValues, SpatioTemporalSeries

BUILDER_NAME = "eala_series"
VERSION = "1.0.0"


def _options_key(options: dict[str, Any]) -> str:
    return json.dumps({k: str(v) for k, v in sorted(options.items())})


class SpatioTemporalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Builder of one data set (config name = data set name); see the module docstring."""

    name = BUILDER_NAME
    VERSION = tfds.core.Version(VERSION)
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put the data set's files in its folder under the data directory (see docs/data.md), e.g. "
        "<data_dir>/pems08/PEMS08.npz, and pass that directory as manual_dir / data_dir."
    )

    def __init__(
        self, *, dataset: str, load_options: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if dataset not in KNOWN_NAMES:
            raise ValueError(f"unknown data set {dataset!r}; known: {', '.join(KNOWN_NAMES)}")
        self._dataset = dataset
        self._load_options = dict(load_options or {})
        kwargs.setdefault("file_format", "array_record")
        super().__init__(config=tfds.core.BuilderConfig(name=dataset, version=VERSION), **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{self._dataset} as a spatio-temporal series (one record per step)",
            features=tfds.features.FeaturesDict(
                {"values": tfds.features.Tensor(shape=(None,), dtype=np.float32)}
            ),
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(
        self, dl_manager: tfds.download.DownloadManager
    ) -> dict[str, Iterator[Any]]:
        data_dir = None
        if self._dataset in DATASETS and "path" not in self._load_options:
            data_dir = dl_manager.manual_dir
        series = read_dataset(self._dataset, data_dir=data_dir, **self._load_options)
        self.info.metadata.update(
            {
                "name": series.name,
                "start_time": str(series.start_time),
                "step_minutes": series.step_minutes,
                "steps_per_day": series.steps_per_day,
                "default_split": list(series.default_split),
                "node_ids": list(series.node_ids) if series.node_ids is not None else None,
                "source": series.source,
                "missing": dataclasses.asdict(series.missing) if series.missing else None,
                "load_options": _options_key(self._load_options),
                "data_dir": str(data_dir) if data_dir is not None else None,
            }
        )
        splits = {"series": self._generate_examples(series.values)}
        if series.adjacency is not None:
            splits["graph"] = self._generate_examples(series.adjacency)
        return splits

    def _generate_examples(self, rows: np.ndarray) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        for i, row in enumerate(rows):
            yield i, {"values": np.asarray(row, dtype=np.float32)}


def build_tfds(
    name: str,
    *,
    tfds_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Path:
    """Prepares the tfds copy of data set ``name`` under ``tfds_dir``; returns its builder
    directory.

    ``data_dir`` (default as in ``load_dataset``) becomes tfds's ``manual_dir``; ``options`` are
    ``load_dataset``'s. Prepared copies are reused by tfds; delete the directory to rebuild.
    """
    manual_dir = resolve_data_dir(data_dir) if name in DATASETS and "path" not in options else None
    builder = SpatioTemporalBuilder(
        dataset=name, load_options=options, data_dir=os.fspath(tfds_dir)
    )
    download_config = tfds.download.DownloadConfig(
        manual_dir=os.fspath(manual_dir) if manual_dir else None
    )
    builder.download_and_prepare(download_config=download_config)
    return Path(builder.data_dir)


def _read_split(source: Any, split: str) -> np.ndarray:
    records = source[split]
    indices = list(range(len(records)))
    rows = (
        records.__getitems__(indices)
        if hasattr(records, "__getitems__")
        else [records[i] for i in indices]
    )
    return np.stack([np.asarray(r["values"], dtype=np.float32) for r in rows])


def read_tfds(builder_dir: str | os.PathLike[str]) -> SpatioTemporalSeries:
    """Reads a prepared copy back into a ``SpatioTemporalSeries`` (the exact float32 arrays
    written)."""
    builder = tfds.builder_from_directory(os.fspath(builder_dir))
    meta = builder.info.metadata
    if meta is None or "steps_per_day" not in meta:
        raise ValueError(f"{builder_dir}: not an {BUILDER_NAME} copy (no series metadata)")
    source = builder.as_data_source()
    adjacency = _read_split(source, "graph") if "graph" in source else None
    node_ids = meta.get("node_ids")
    return SpatioTemporalSeries(
        name=meta["name"],
        values=_read_split(source, "series"),
        steps_per_day=int(meta["steps_per_day"]),
        start_time=np.datetime64(meta["start_time"], "m"),
        step_minutes=int(meta["step_minutes"]),
        adjacency=adjacency,
        default_split=tuple(meta["default_split"]),  # type: ignore[arg-type]
        node_ids=tuple(node_ids) if node_ids else None,
        source=f"tfds {builder_dir} <- {meta['source']}",
        missing=MissingValues(**meta["missing"]) if meta.get("missing") else None,
    )


def load_via_tfds(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    tfds_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> SpatioTemporalSeries:
    """``load_dataset(name, via_tfds=True, ...)``: builds the copy if absent, then reads it back.

    ``tfds_dir`` defaults to tfds's own (``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``). A copy
    built with other load options is refused (delete it or use another ``tfds_dir``).
    """
    if tfds_dir is None:
        tfds_dir = os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))
    builder_dir = Path(tfds_dir) / BUILDER_NAME / name / VERSION
    if not (builder_dir / "dataset_info.json").is_file():
        builder_dir = build_tfds(name, tfds_dir=tfds_dir, data_dir=data_dir, **options)
    series = read_tfds(builder_dir)
    meta = tfds.builder_from_directory(os.fspath(builder_dir)).info.metadata
    wanted_dir = resolve_data_dir(data_dir) if name in DATASETS and "path" not in options else None
    wanted = (_options_key(options), str(wanted_dir) if wanted_dir is not None else None)
    stored = (meta.get("load_options"), meta.get("data_dir"))
    if stored != wanted:
        raise ValueError(
            f"{builder_dir} was built with (load options, data_dir) {stored}, not {wanted}: "
            "delete it or pass another tfds_dir"
        )
    return series
