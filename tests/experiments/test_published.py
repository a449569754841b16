"""experiments.published: the published table is well formed and a published number's test windows
are the whole test batches from the start."""

import pytest

from experiments import long_horizon as lh
from experiments import published


def test_published_numbers_have_one_value_per_horizon():
    for model, entries in published.PUBLISHED.items():
        if model == "sources":
            continue
        for (dataset, in_steps), entry in entries.items():
            assert dataset in lh.DATASETS and in_steps == 336
            assert len(entry["mse"]) == len(entry["mae"]) == len(published.HORIZONS)
            assert len(entry["test_batch"]) == len(published.HORIZONS)
            assert all(0 < v < 2 for v in entry["mse"] + entry["mae"])
            assert all(isinstance(b, int) and b >= 1 for b in entry["test_batch"])


def test_published_windows_are_whole_test_batches_from_the_start():
    # ETTh2 input 336: 2,545 test windows at horizon 336, 2,689 at 192 (2,881 - horizon).
    assert (
        published.published_windows(2545, 128) == 2432
        and published.published_windows(2689, 128) == 2688
    )
    assert (
        published.published_windows(2545, 32) == 2528 and published.published_windows(96, 128) == 0
    )
    with pytest.raises(ValueError, match="test_batch must be >= 1"):
        published.published_windows(2545, 0)
