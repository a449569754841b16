"""grain loading: every window once in evaluation, seeded shuffles, disjoint shards, resumable
position."""

import numpy as np
import pytest

from eala_jax.data import load_dataset, make_forecast_splits, make_loader


class _Indexed:
    """A source whose records carry their own index, so batches show which windows they hold."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:  # grain checks the source's repr when a state is restored
        return f"_Indexed({self.n})"

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {"i": np.asarray(i, np.int64), "x": np.full((2, 3), i, np.float32)}


def _indices(loader) -> list[list[int]]:
    return [batch["i"].tolist() for batch in loader]


def test_evaluation_sees_every_window_once_in_order():
    batches = _indices(make_loader(_Indexed(10), batch_size=4, shuffle=False, drop_remainder=False))
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batches_have_leading_batch_axis():
    batch = next(iter(make_loader(_Indexed(10), batch_size=4, shuffle=True, seed=0)))
    assert batch["x"].shape == (4, 2, 3) and batch["x"].dtype == np.float32
    np.testing.assert_array_equal(batch["x"][:, 0, 0], batch["i"])


def test_shuffle_is_seeded_and_covers_each_epoch():
    a = _indices(make_loader(_Indexed(12), batch_size=3, shuffle=True, seed=7, num_epochs=2))
    b = _indices(make_loader(_Indexed(12), batch_size=3, shuffle=True, seed=7, num_epochs=2))
    c = _indices(make_loader(_Indexed(12), batch_size=3, shuffle=True, seed=8, num_epochs=2))
    assert a == b and a != c and len(a) == 8
    flat = np.concatenate(a)
    assert sorted(flat[:12]) == list(range(12)) and sorted(flat[12:]) == list(range(12))
    assert list(flat[:12]) != list(range(12))


def test_shards_are_disjoint_and_cover():
    shards = [
        np.concatenate(
            _indices(
                make_loader(
                    _Indexed(11),
                    batch_size=2,
                    shuffle=False,
                    drop_remainder=False,
                    shard_index=k,
                    shard_count=2,
                )
            )
        )
        for k in range(2)
    ]
    assert not set(shards[0]) & set(shards[1]) and sorted(np.concatenate(shards)) == list(range(11))


def test_state_resumes_the_same_batches():
    loader = make_loader(_Indexed(20), batch_size=3, shuffle=True, seed=1, num_epochs=None)
    iterator = iter(loader)
    for _ in range(4):
        next(iterator)
    state = iterator.get_state()
    expected = [next(iterator)["i"].tolist() for _ in range(6)]  # crosses an epoch boundary
    resumed = iter(make_loader(_Indexed(20), batch_size=3, shuffle=True, seed=1, num_epochs=None))
    resumed.set_state(state)
    assert [next(resumed)["i"].tolist() for _ in range(6)] == expected


def test_window_source_state_resumes_and_rejects_another_source():
    splits = make_forecast_splits(load_dataset("synthetic", num_days=3))
    iterator = iter(make_loader(splits.train, batch_size=8, shuffle=True, seed=0))
    next(iterator)
    state = iterator.get_state()
    expected = next(iterator)
    resumed = iter(make_loader(splits.train, batch_size=8, shuffle=True, seed=0))
    resumed.set_state(state)
    got = next(resumed)
    for key in ("x", "y", "y_mask"):
        np.testing.assert_array_equal(got[key], expected[key])
    other = iter(make_loader(splits.val, batch_size=8, shuffle=True, seed=0))
    with pytest.raises(ValueError, match="does not match"):
        other.set_state(state)


def test_bad_loader_arguments():
    with pytest.raises(ValueError, match="integer seed"):
        make_loader(_Indexed(10), batch_size=2, shuffle=True, seed=None)
    with pytest.raises(ValueError, match="batch_size=16 with drop_remainder=True gives no batch"):
        make_loader(_Indexed(10), batch_size=16, shuffle=False)
    with pytest.raises(ValueError, match="shard_index"):
        make_loader(_Indexed(10), batch_size=2, shuffle=False, shard_index=2, shard_count=2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        make_loader(_Indexed(10), batch_size=0, shuffle=False)


def test_shards_with_drop_remainder_are_equal_and_disjoint():
    shards = [
        np.concatenate(
            _indices(
                make_loader(
                    _Indexed(11), batch_size=2, shuffle=True, seed=3, shard_index=k, shard_count=3
                )
            )
        )
        for k in range(3)
    ]
    assert [len(s) for s in shards] == [
        2,
        2,
        2,
    ]  # 11 // 3 = 3 windows a shard, one full batch of 2 each
    flat = np.concatenate(shards)
    assert len(set(flat)) == 6 and set(flat) <= set(range(9))
