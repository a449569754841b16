"""Tables of local keys (eala_jax/ops/neighbours.py): sliding windows, graph neighbours by hop
count, embedding top-k (chunked = unchunked = a NumPy brute force)."""

import numpy as np
import pytest

from eala_jax.ops.neighbours import embedding_neighbours, graph_neighbours, sliding_window


def test_sliding_window():
    np.testing.assert_array_equal(
        sliding_window(4, 3), [[-1, -1, 0], [-1, 0, 1], [0, 1, 2], [1, 2, 3]]
    )
    np.testing.assert_array_equal(
        sliding_window(4, 3, centred=True), [[-1, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, -1]]
    )
    assert sliding_window(2, 5).dtype == np.int32
    with pytest.raises(ValueError, match="size must be an integer >= 1, got 0"):
        sliding_window(4, 0)


def test_graph_neighbours_by_hops():
    # Path 0 - 1 - 2 - 3 (one edge given one way only, weighted), node 4 isolated.
    adjacency = np.zeros((5, 5), np.float32)
    adjacency[0, 1] = adjacency[1, 0] = 1.0
    adjacency[2, 1] = 0.3
    adjacency[2, 3] = adjacency[3, 2] = 5.0
    table = graph_neighbours(adjacency, 3)
    np.testing.assert_array_equal(table, [[0, 1, 2], [1, 0, 2], [2, 1, 3], [3, 2, 1], [4, -1, -1]])
    assert table.dtype == np.int32
    assert graph_neighbours(adjacency, 7).shape == (5, 7)  # more than N: padded with -1
    with pytest.raises(ValueError, match=r"square \[N, N\] matrix, got shape \(5, 4\)"):
        graph_neighbours(adjacency[:, :4], 3)


def _brute_force(x, size):
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    similarity = unit @ unit.T
    return np.argsort(-similarity, axis=1, kind="stable")[:, :size]


def test_embedding_neighbours_chunked():
    x = np.random.default_rng(230).standard_normal((11, 5)).astype(np.float32)
    expected = _brute_force(x, 4)
    np.testing.assert_array_equal(embedding_neighbours(x, 4), expected)
    np.testing.assert_array_equal(embedding_neighbours(x, 4, chunk_size=3), expected)
    assert np.all(expected[:, 0] == np.arange(11))  # each node is its own nearest
    padded = np.asarray(embedding_neighbours(x[:3], 5))
    np.testing.assert_array_equal(padded[:, 3:], -1)
    with pytest.raises(ValueError, match=r"embedding must be \[N, E\]"):
        embedding_neighbours(x[None], 4)
