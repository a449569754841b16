"""grain loading: every window once in evaluation, seeded shuffles, disjoint shards, resumable
position."""

import numpy as np
import pytest

from eala_jax.data import load_dataset, make_eval_loader, make_forecast_splits, make_loader


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


def _rows_of_shards(shard_count: int, batch_size: int, **kwargs) -> list[list[int]]:
    """Each step's batches of every shard, concatenated in shard order (the global batch)."""
    shards = [
        _indices(
            make_loader(
                _Indexed(11),
                batch_size=batch_size,
                shard_index=k,
                shard_count=shard_count,
                **kwargs,
            )
        )
        for k in range(shard_count)
    ]
    assert len({len(s) for s in shards}) == 1  # every shard steps the same number of times
    return [sum(step, []) for step in zip(*shards, strict=True)]


@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_take_their_rows_of_the_unsharded_global_batch(shuffle):
    """Two or three processes assemble exactly the batches of one process with the global batch
    size: same windows, same rows, same epochs."""
    kwargs = dict(shuffle=shuffle, seed=3, num_epochs=3)
    for shard_count, batch_size in ((2, 2), (3, 1)):
        single = _indices(make_loader(_Indexed(11), batch_size=batch_size * shard_count, **kwargs))
        assert _rows_of_shards(shard_count, batch_size, **kwargs) == single
        assert len(single) == 33 // (batch_size * shard_count)  # batches span the epoch ends


def test_position_saved_by_one_shard_resumes_another():
    """The loop saves process 0's iterator state only; process 1 must resume from it."""
    kwargs = dict(batch_size=2, shuffle=True, seed=1, num_epochs=None, shard_count=2)
    first = iter(make_loader(_Indexed(11), shard_index=0, **kwargs))
    second = iter(make_loader(_Indexed(11), shard_index=1, **kwargs))
    for _ in range(7):  # crosses the first epoch's end
        next(first), next(second)
    state = first.get_state()
    expected = [next(second)["i"].tolist() for _ in range(4)]
    resumed = iter(make_loader(_Indexed(11), shard_index=1, **kwargs))
    resumed.set_state(state)
    assert [next(resumed)["i"].tolist() for _ in range(4)] == expected


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
    with pytest.raises(ValueError, match="shard_count=2 needs drop_remainder=True"):
        make_loader(_Indexed(10), batch_size=2, shuffle=False, shard_count=2, drop_remainder=False)
    with pytest.raises(ValueError, match="fewer than a global batch of 12"):
        make_loader(_Indexed(10), batch_size=4, shuffle=False, shard_count=3)
    with pytest.raises(ValueError, match="read_threads must be an integer >= 0"):
        make_loader(_Indexed(10), batch_size=2, shuffle=False, read_threads=-1)


def test_reader_threads_do_not_change_the_batches():
    kwargs = dict(batch_size=3, shuffle=True, seed=5, num_epochs=2)
    in_thread = _indices(make_loader(_Indexed(20), **kwargs))
    threaded = _indices(make_loader(_Indexed(20), read_threads=4, **kwargs))
    assert in_thread == threaded and len(in_thread) == 40 // 3  # batches span the epoch end


def _stacked_reference(source, batch_size):
    """What the loop's ``_eval_batches`` built: ``source[i]`` stacked in order, the last batch
    padded with zero rows."""
    out = []
    for start in range(0, len(source), batch_size):
        rows = [source[i] for i in range(start, min(start + batch_size, len(source)))]
        batch = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
        pad = batch_size - len(rows)
        batch = {
            k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in batch.items()
        }
        out.append((batch, len(rows)))
    return out


@pytest.mark.parametrize("batch_size", [1, 5, 7, 64, 1000])
def test_eval_loader_gives_the_windows_in_order_padded(batch_size):
    splits = make_forecast_splits(
        load_dataset("synthetic", num_nodes=4, num_days=3), in_steps=5, out_steps=3
    )
    source = splits.val  # 84 windows: 5, 64 and 1000 leave a padded last batch, 1 and 7 do not
    loader = make_eval_loader(source, batch_size=batch_size)
    expected = _stacked_reference(source, batch_size)
    for _ in range(2):  # iterable again, same batches
        got = list(loader)
        assert len(got) == len(expected) == len(loader)
        for (batch, num_valid), (want, want_valid) in zip(got, expected, strict=True):
            assert num_valid == want_valid and set(batch) == set(want)
            for key in want:
                assert batch[key].dtype == want[key].dtype, key
                np.testing.assert_array_equal(batch[key], want[key], err_msg=key)
    last, num_valid = got[-1]
    assert not last["y_mask"][num_valid:].any() and not last["x_mask"][num_valid:].any()
    assert sum(n for _, n in got) == len(source)


class _Masked(_Indexed):
    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {"i": np.asarray(i, np.int64), "mask": np.ones(2, bool)}


@pytest.mark.parametrize(
    "num_windows, shard_count, batch_size", [(11, 2, 5), (11, 3, 2), (12, 4, 3), (3, 3, 8)]
)
def test_eval_loader_shards_step_together_and_cover_once(num_windows, shard_count, batch_size):
    source = _Masked(num_windows)
    shards = [
        list(
            make_eval_loader(source, batch_size=batch_size, shard_index=k, shard_count=shard_count)
        )
        for k in range(shard_count)
    ]
    largest = -(-num_windows // shard_count)
    assert {len(batches) for batches in shards} == {-(-largest // batch_size)}
    for k, batches in enumerate(shards):
        assert all(batch["i"].shape == (batch_size,) for batch, _ in batches)
        real = np.concatenate([batch["i"][:n] for batch, n in batches])
        np.testing.assert_array_equal(real, np.arange(k, num_windows, shard_count))
        for batch, n in batches:
            assert batch["mask"][:n].all() and not batch["mask"][n:].any()
    # (11, 2, 5): shard 1 holds 5 windows, one batch, and steps a second time on padding only.
    if (num_windows, shard_count, batch_size) == (11, 2, 5):
        assert [n for _, n in shards[1]] == [5, 0]


def test_bad_eval_loader_arguments():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        make_eval_loader(_Masked(4), batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        make_eval_loader(_Masked(4), batch_size=2.0)
    with pytest.raises(ValueError, match="shard_index"):
        make_eval_loader(_Masked(4), batch_size=2, shard_index=3, shard_count=3)
    with pytest.raises(ValueError, match="has 2 windows: make_eval_loader needs at least"):
        make_eval_loader(_Masked(2), batch_size=2, shard_count=3)
