"""``load_dataset``: the front door to every data set, read from its files or from its tfds copy.

Layers (each imports only those above it): ``series``, ``readers``, ``download``, ``synthetic``
-> ``registry`` (the known sets, ``read_dataset``) -> ``tfds_builders`` (imported only when
``via_tfds=True``) -> this module.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from eala_jax.data.registry import KNOWN_NAMES, read_dataset
from eala_jax.data.series import MissingDataWarning, SpatioTemporalSeries


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    via_tfds: bool = False,
    **options: Any,
) -> SpatioTemporalSeries:
    """Loads a data set by name into a ``SpatioTemporalSeries`` (values float32 ``[T, N]``, NaN =
    missing).

    Args:
      name: one of ``KNOWN_NAMES``: ``"synthetic"`` (generated, options of
        ``make_synthetic_series``), the files-based sets of ``DATASETS``, or ``"generic"`` (options
        of ``load_generic``).
      data_dir: root folder holding one folder per set; default ``$EALA_DATA_DIR`` or
        ``../shared/data``.
      url: if the set's signal file is absent, download it from here (``urllib``: ``https://``,
        ``file://``, ...; file-based sets and ``"generic"``) into ``<data_dir>/<folder>/<file
        name>`` (or to ``path=``), creating the folder, then load it as if it had been put there. It
        is written to a temporary file beside the target and moved into place only when complete and
        checked (recorded size / SHA-256 or ``sha256=``, the published shape, the step), so a failed
        or rejected download leaves nothing behind. **If the file already exists, nothing is
        downloaded**: the existing file is verified and loaded as usual and never overwritten.
        ``graph_url=`` does the same for the graph (to ``graph_path=``, else the set's first graph
        file name), checked against the node count.
      via_tfds: build (if absent, under ``tfds_dir=``) and read the tensorflow-datasets copy
        instead of the files (see ``eala_jax.data.tfds_builders``).
      **options: for the file-based sets: ``path=`` (signal file), ``graph_path=``, ``null_value=``
        (default per set: 0.0, the published convention, for the traffic sets; None for ETT /
        exchange_rate; a number marks that value missing, None keeps it), ``channel=`` (npz),
        ``verify=`` (size / SHA-256), ``sha256=``, ``check_shape=``, ``graph_weight=``
        ("binary"/"cost"), ``graph_url=``.
        For ``"generic"``, ``load_generic``'s: only NaN is missing unless ``null_value=`` is given,
        and an ambiguous orientation is refused unless ``transpose=`` says which.

    Returns:
      The series; ``series.missing_summary()`` says how many values are missing and why, and which
      sensors are never valid. Sensors never valid raise a ``MissingDataWarning`` (training can
      proceed without them); a series with no valid value at all is a ValueError.

    Raises:
      ValueError: unknown name or option. FileNotFoundError: a missing file (the message names the
      file and the option to set). DataFileError: a corrupt file, a checksum or shape mismatch, a
      graph whose node count differs from the signal's (for a download: naming the URL and the file
      not written).
      DownloadError (an OSError): a URL that cannot be read completely.
    """
    if name not in KNOWN_NAMES:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(KNOWN_NAMES)}")
    if url is not None:
        options["url"] = url
    if via_tfds:
        from eala_jax.data.tfds_builders import load_via_tfds  # tensorflow-datasets only when asked

        series = load_via_tfds(name, data_dir=data_dir, **options)
    else:
        series = read_dataset(name, data_dir=data_dir, **options)
    _warn_never_valid(series)
    return series


def _warn_never_valid(series: SpatioTemporalSeries) -> None:
    dead = series.never_valid_nodes()
    if len(dead):
        warnings.warn(
            f"{series.name}: {len(dead)} of {series.num_nodes} sensors have no valid value at "
            f"all: {series.describe_nodes(dead)}. Training proceeds without them (their inputs "
            "read as missing, their targets masked out of the loss and metrics); check the file "
            "or its null_value if that is not expected",
            MissingDataWarning,
            stacklevel=3,
        )
