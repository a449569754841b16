"""Batches of windows through grain, for training and evaluation alike: seeded shuffling, each
process's rows of the global batch, resumable position (``make_loader``); every window once, in
order, in padded batches, strided over processes (``make_eval_loader``)."""

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
    re-indexed from 0: a process's evaluation windows (``make_eval_loader``)."""

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


class BatchRowsSampler:
    """Rows ``[shard_index * rows, (shard_index + 1) * rows)`` of every global batch of
    ``rows * shard_count`` consecutive records of ``sampler``'s stream.

    Every process draws the same stream (the same shuffle), so the global batch, assembled from
    the processes' rows in process order, holds the same windows in the same rows whatever the
    process count. The repr leaves ``shard_index`` out: grain checks it against a saved iterator
    state, and the (equal) position saved by process 0 resumes every process.
    """

    def __init__(self, sampler: Any, *, rows: int, shard_index: int, shard_count: int) -> None:
        self.sampler, self.rows = sampler, rows
        self.shard_index, self.shard_count = shard_index, shard_count

    def __len__(self) -> int:
        return len(self.sampler) // (self.rows * self.shard_count) * self.rows

    def __getitem__(self, index: int) -> grain.RecordMetadata:
        batch, row = divmod(int(index), self.rows)
        position = (batch * self.shard_count + self.shard_index) * self.rows + row
        metadata = self.sampler[position]
        return grain.RecordMetadata(index=index, record_key=metadata.record_key, rng=metadata.rng)

    def __repr__(self) -> str:
        return (
            f"BatchRowsSampler({self.sampler!r}, {self.rows} rows of each global batch of "
            f"{self.rows * self.shard_count})"
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
      batch_size: windows per batch of this shard (its rows of the global batch).
      shuffle: shuffle windows each epoch with ``seed`` (required then); evaluation uses False.
      seed: integer seed of the shuffle.
      num_epochs: passes over the source; ``None`` repeats forever.
      drop_remainder: drop the last incomplete batch; evaluation uses False so every window is
        scored once (``make_eval_loader``). Must be True when ``shard_count > 1``.
      shard_index, shard_count: this process's rows of the global batch (one shard per process):
        every shard draws the same stream of windows (the same shuffle), cut into global batches
        of ``batch_size * shard_count``, and takes rows ``[shard_index * batch_size,
        (shard_index + 1) * batch_size)`` of each. The global batch, and so a training run, is the
        same for any process count; every shard yields the same number of batches.
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
    if shard_count > 1 and not drop_remainder:
        raise ValueError(
            f"shard_count={shard_count} needs drop_remainder=True (every shard's rows of full "
            "global batches); evaluate every window of a shard with make_eval_loader"
        )
    global_batch = batch_size * shard_count
    if drop_remainder and num_records < global_batch:
        raise ValueError(
            f"batch_size={batch_size} with drop_remainder=True gives no batch: the source has "
            f"{num_records} windows, fewer than a global batch of {global_batch} "
            f"(batch_size x shard_count={shard_count})"
        )
    # Sharding is done by the sampler (rows of each global batch of one shared stream), not by
    # grain's ShardOptions, which stride over the stream and so reorder the global batch's rows.
    no_sharding = grain.sharding.NoSharding()
    sampler = grain.samplers.IndexSampler(
        num_records=num_records,
        shard_options=no_sharding,
        shuffle=shuffle,
        num_epochs=num_epochs,
        seed=seed if shuffle else None,
    )
    if shard_count > 1:
        sampler = BatchRowsSampler(
            sampler, rows=batch_size, shard_index=shard_index, shard_count=shard_count
        )
    operations: Sequence[grain.transforms.Batch] = [
        grain.transforms.Batch(batch_size=batch_size, drop_remainder=drop_remainder)
    ]
    return grain.DataLoader(
        data_source=source,
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
        shard = self.source
        if self.shard_count > 1:
            shard = ShardView(self.source, self.shard_index, self.shard_count, self.num_windows)
        loader = make_loader(
            shard, batch_size=self.batch_size, shuffle=False, num_epochs=1, drop_remainder=False
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
