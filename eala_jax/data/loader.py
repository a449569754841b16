"""Batches of windows through grain: seeded shuffling, sharding across processes, resumable
position."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import grain


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
) -> grain.DataLoader:
    """A grain ``DataLoader`` over ``source``.

    Batches are dicts of numpy arrays with a leading batch axis (``x: [B, in_steps, N, 3]``,
    ``y: [B, out_steps, N]``, ``y_mask: [B, out_steps, N]``). ``iter(loader)`` has ``get_state()`` /
    ``set_state()`` so a run can checkpoint and resume its data position.

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
    """
    num_records = len(source)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(shard_count, int) or shard_count < 1 or not 0 <= shard_index < shard_count:
        raise ValueError(
            f"need 0 <= shard_index < shard_count, got shard_index={shard_index}, "
            f"shard_count={shard_count}"
        )
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
    )
