"""Batches of windows through grain, for training and evaluation alike: seeded shuffling,
sharding across processes, resumable position (``make_loader``); every window once, in order, in
padded batches (``make_eval_loader``)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import grain
import numpy as np


class RandomAccessSource(Protocol):
    """What ``make_loader`` needs: ``len()`` and ``source[i]`` -> dict of numpy arrays."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


class ShardView:
    """Every ``shard_count``-th record of a source, from ``shard_index`` on (``length`` of them),
    re-indexed
    from 0: strided, so each shard samples the whole period of the split."""

    def __init__(
        self, source: RandomAccessSource, shard_index: int, shard_count: int, length: int
    ) -> None:
        if shard_index + (length - 1) * shard_count >= len(source):
            raise ValueError(
                f"shard {shard_index}/{shard_count} of {length} records exceeds the source's "
                f"{len(source)}"
            )
        self.source, self.shard_index, self.shard_count, self.length = (
            source,
            shard_index,
            shard_count,
            length,
        )

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a shard of {self.length} records")
        return self.source[self.shard_index + int(index) * self.shard_count]

    def __repr__(self) -> str:
        return (
            f"ShardView({self.source!r}, shard {self.shard_index} of {self.shard_count},"
            f" {self.length} records)"
        )


def make_loader(
    source: RandomAccessSource,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int | None = None,
    num_epochs: int | None = 1,
    drop_remainder: bool = True,
    shard_index: int = 0,
    shard_count: int = 1,
    worker_count: int = 0,
    read_threads: int = 0,
) -> grain.DataLoader:
    """A grain ``DataLoader`` over ``source``.

    Batches are the records of ``source`` stacked on a leading batch axis (for a ``WindowSource``:
    ``x, x_mask: [B, in_steps, N]``, ``time_of_day, day_of_week: [B, in_steps]`` int32, ``y,
    y_mask: [B, out_steps, N]``, ``y_time_of_day, y_day_of_week: [B, out_steps]``; see
    ``WindowSource``). ``iter(loader)`` has ``get_state()`` / ``set_state()`` so a run can
    checkpoint and resume its data position.

    Args:
      source: a window source (``ForecastSplits.train`` etc.).
      batch_size: windows per batch (per shard).
      shuffle: shuffle windows each epoch with ``seed`` (required then); evaluation uses False.
      seed: integer seed of the shuffle.
      num_epochs: passes over the source; ``None`` repeats forever.
      drop_remainder: drop the last incomplete batch (and the uneven tail of the shards); evaluation
        uses False so every window is scored once.
      shard_index, shard_count: this process's shard of the windows (one shard per host): windows
        ``shard_index, shard_index + shard_count, ...``; ``len // shard_count`` of them with
        ``drop_remainder`` (equal batch counts on every host), else all, so shards may differ by
        one.
      worker_count: grain worker processes; 0 reads in the calling process.
      read_threads: grain reader threads per process (``ReadOptions.num_threads``). 0 (default)
        reads in the calling thread, grain's advice for data already in memory such as a
        ``WindowSource`` (threads only add GIL contention; measured in docs/data.md); raise it for
        a source that reads from disk or network.
    """
    num_records = len(source)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(shard_count, int) or shard_count < 1 or not 0 <= shard_index < shard_count:
        raise ValueError(
            f"need 0 <= shard_index < shard_count, got shard_index={shard_index}, "
            f"shard_count={shard_count}"
        )
    if not isinstance(read_threads, int) or isinstance(read_threads, bool) or read_threads < 0:
        raise ValueError(f"read_threads must be an integer >= 0, got {read_threads!r}")
    if shuffle and not isinstance(seed, int):
        raise ValueError(f"shuffle=True needs an integer seed, got seed={seed!r}")
    if num_epochs is not None and (not isinstance(num_epochs, int) or num_epochs < 1):
        raise ValueError(f"num_epochs must be a positive integer or None, got {num_epochs!r}")
    per_shard = num_records // shard_count
    if drop_remainder and per_shard < batch_size:
        raise ValueError(
            f"batch_size={batch_size} with drop_remainder=True gives no batch: the source has "
            f"{num_records} windows ({per_shard} per shard for shard_count={shard_count})"
        )
    if num_records < shard_count:
        raise ValueError(
            f"the source has {num_records} windows, fewer than shard_count={shard_count}"
        )
    # Sharding is done here (records shard_index, shard_index + shard_count, ...), not by grain's
    # ShardOptions: in grain 0.2.18 the DataLoader floors every shard to len // shard_count even
    # with drop_remainder=False, which would silently drop evaluation windows.
    length = per_shard if drop_remainder else len(range(shard_index, num_records, shard_count))
    shard = source if shard_count == 1 else ShardView(source, shard_index, shard_count, length)
    no_sharding = grain.sharding.NoSharding()
    sampler = grain.samplers.IndexSampler(
        num_records=len(shard),
        shard_options=no_sharding,
        shuffle=shuffle,
        num_epochs=num_epochs,
        seed=seed if shuffle else None,
    )
    operations: Sequence[grain.transforms.Batch] = [
        grain.transforms.Batch(batch_size=batch_size, drop_remainder=drop_remainder)
    ]
    return grain.DataLoader(
        data_source=shard,
        sampler=sampler,
        operations=operations,
        worker_count=worker_count,
        shard_options=no_sharding,
        read_options=grain.ReadOptions(
            num_threads=read_threads, prefetch_buffer_size=0 if read_threads == 0 else 500
        ),
    )


class EvalLoader:
    """Every window of one shard of a source, once, in order, as ``(batch, num_valid)`` pairs.

    Built by ``make_eval_loader``; iterable any number of times (each pass reads the windows again
    through grain). ``len()`` is the number of batches, the same on every shard.
    """

    def __init__(
        self, source: RandomAccessSource, *, batch_size: int, shard_index: int, shard_count: int
    ) -> None:
        self.source = source
        self.batch_size = batch_size
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.num_windows = len(range(shard_index, len(source), shard_count))
        # The largest shard sets the count, so that every process runs the same number of steps.
        self.num_batches = math.ceil(math.ceil(len(source) / shard_count) / batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[tuple[dict[str, np.ndarray], int]]:
        loader = make_loader(
            self.source,
            batch_size=self.batch_size,
            shuffle=False,
            num_epochs=1,
            drop_remainder=False,
            shard_index=self.shard_index,
            shard_count=self.shard_count,
        )
        template = None
        for batch in loader:
            num_valid = len(next(iter(batch.values())))
            template = batch
            yield _pad(batch, self.batch_size), num_valid
        for _ in range(self.num_batches - math.ceil(self.num_windows / self.batch_size)):
            assert template is not None  # every shard holds at least one window
            yield _pad({k: v[:0] for k, v in template.items()}, self.batch_size), 0

    def __repr__(self) -> str:
        return (
            f"EvalLoader({self.source!r}, batch_size={self.batch_size}, shard {self.shard_index} "
            f"of {self.shard_count}, {self.num_windows} windows in {self.num_batches} batches)"
        )


def _pad(batch: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Pads every array of ``batch`` to ``batch_size`` rows with zeros (masks False)."""
    return {
        k: np.concatenate([v, np.zeros((batch_size - len(v), *v.shape[1:]), v.dtype)])
        if len(v) < batch_size
        else v
        for k, v in batch.items()
    }


def make_eval_loader(
    source: RandomAccessSource, *, batch_size: int, shard_index: int = 0, shard_count: int = 1
) -> EvalLoader:
    """The windows of ``source`` in order, through grain, as ``(batch, num_valid)`` pairs.

    Batches are those of ``make_loader`` (same keys and shapes), all of exactly ``batch_size``
    rows: the last one is padded with rows of zeros, whose masks are all False, so they add nothing
    to masked metrics; ``num_valid`` counts the real rows (``batch[k][:num_valid]``). With
    ``shard_count > 1`` this process reads windows ``shard_index, shard_index + shard_count, ...``
    (in that order) and every shard yields the same number of batches (a shard one window short
    may end with an all-padding batch, ``num_valid = 0``), so data-parallel processes step in
    lockstep.

    Args:
      source: a window source (``ForecastSplits.val`` etc.); at least ``shard_count`` windows.
      batch_size: rows per batch (per shard).
      shard_index, shard_count: this process's shard.

    Raises:
      ValueError: a non-positive ``batch_size``, a shard outside ``[0, shard_count)``, or a source
        with fewer windows than ``shard_count``.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if (
        not isinstance(shard_count, int)
        or not isinstance(shard_index, int)
        or shard_count < 1
        or not 0 <= shard_index < shard_count
    ):
        raise ValueError(
            f"need 0 <= shard_index < shard_count, got shard_index={shard_index!r}, "
            f"shard_count={shard_count!r}"
        )
    if len(source) < shard_count:
        raise ValueError(
            f"source {source!r} has {len(source)} windows: make_eval_loader needs at least "
            f"shard_count={shard_count} (one a shard)"
        )
    return EvalLoader(
        source, batch_size=batch_size, shard_index=shard_index, shard_count=shard_count
    )
