"""Batches of windows through grain: seeded shuffling, sharding across processes, resumable position."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import grain


class RandomAccessSource(Protocol):
    """What ``make_loader`` needs: ``len()`` and ``source[i]`` -> dict of numpy arrays."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


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
      shard_index, shard_count: this process's shard of the windows (one shard per host).
      worker_count: grain worker processes; 0 reads in the calling process.
    """
    num_records = len(source)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(shard_count, int) or shard_count < 1 or not 0 <= shard_index < shard_count:
        raise ValueError(f"need 0 <= shard_index < shard_count, got shard_index={shard_index}, shard_count={shard_count}")
    if shuffle and not isinstance(seed, int):
        raise ValueError(f"shuffle=True needs an integer seed, got seed={seed!r}")
    if num_epochs is not None and (not isinstance(num_epochs, int) or num_epochs < 1):
        raise ValueError(f"num_epochs must be a positive integer or None, got {num_epochs!r}")
    per_shard = num_records // shard_count
    if drop_remainder and per_shard < batch_size:
        raise ValueError(
            f"batch_size={batch_size} with drop_remainder=True gives no batch: the source has {num_records} "
            f"windows ({per_shard} per shard for shard_count={shard_count})"
        )
    if num_records < shard_count:
        raise ValueError(f"the source has {num_records} windows, fewer than shard_count={shard_count}")
    shard_options = grain.sharding.ShardOptions(
        shard_index=shard_index, shard_count=shard_count, drop_remainder=drop_remainder
    )
    sampler = grain.samplers.IndexSampler(
        num_records=num_records,
        shard_options=shard_options,
        shuffle=shuffle,
        num_epochs=num_epochs,
        seed=seed if shuffle else None,
    )
    operations: Sequence[grain.transforms.Batch] = [
        grain.transforms.Batch(batch_size=batch_size, drop_remainder=drop_remainder)
    ]
    return grain.DataLoader(
        data_source=source,
        sampler=sampler,
        operations=operations,
        worker_count=worker_count,
        shard_options=shard_options,
    )
