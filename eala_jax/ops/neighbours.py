"""Tables of local keys for `eala_local_attention`: int32 `[S, K]`, row i the indices of query i's
local keys, -1 = none (padding). Pure NumPy / `jax.numpy`, no Flax.

- `sliding_window`: the last W steps (i − W + 1 .. i) or a centred window, for temporal attention.
- `graph_neighbours`: each node's K nearest nodes of a graph by hop count (itself first).
- `embedding_neighbours`: each node's K most similar nodes of an embedding (cosine similarity),
  top-k over row chunks, so memory is O(chunk·N) rather than O(N²).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

__all__ = ["embedding_neighbours", "graph_neighbours", "sliding_window"]


def _check_size(label: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{label} must be an integer >= 1, got {value!r}")


def sliding_window(length: int, size: int, *, centred: bool = False) -> np.ndarray:
    """int32 `[length, size]`: row i holds steps `i − size + 1 .. i` (the query's own step last),
    or with `centred` the `size` steps `i − (size − 1)//2 .. i + size//2`; steps outside
    `[0, length)` are -1. O(length·size)."""
    _check_size("length", length)
    _check_size("size", size)
    start = -((size - 1) // 2) if centred else 1 - size
    table = np.arange(length)[:, None] + np.arange(start, start + size)[None, :]
    return np.where((table >= 0) & (table < length), table, -1).astype(np.int32)


def graph_neighbours(adjacency: np.ndarray, size: int) -> np.ndarray:
    """int32 `[N, size]`: each node's `size` nearest nodes of the graph `adjacency [N, N]` by hop
    count over its nonzero entries (edges taken both ways, weights ignored: the data sets' weights
    are affinities in some files and distances in others), itself first, ties by node index;
    -1 where fewer nodes are reachable. Breadth-first search from every node, O(N·(N + E))."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path

    adjacency = np.asarray(adjacency)
    if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1] or not adjacency.size:
        raise ValueError(f"adjacency must be a square [N, N] matrix, got shape {adjacency.shape}")
    if not np.all(np.isfinite(adjacency)):
        raise ValueError("adjacency holds non-finite entries")
    _check_size("size", size)
    hops = shortest_path(csr_matrix(adjacency != 0), unweighted=True, directed=False)
    num_nodes = adjacency.shape[0]
    order = np.argsort(hops, axis=1, kind="stable")[:, : min(size, num_nodes)]
    reachable = np.isfinite(np.take_along_axis(hops, order, axis=1))
    table = np.full((num_nodes, size), -1, np.int32)
    table[:, : order.shape[1]] = np.where(reachable, order, -1)
    return table


def embedding_neighbours(embedding: Array, size: int, *, chunk_size: int = 256) -> Array:
    """int32 `[N, size]`: each node's `size` most similar nodes of `embedding [N, E]` by cosine
    similarity (itself included unless more than `size` nodes tie with it at the top), ties by
    node index; -1 beyond N.
    Top-k over chunks of `chunk_size` rows: time O(N²·E), memory O(chunk·N + N·size). No gradient
    (the indices are constants)."""
    _check_size("size", size)
    _check_size("chunk_size", chunk_size)
    if embedding.ndim != 2:
        raise ValueError(f"embedding must be [N, E], got shape {tuple(embedding.shape)}")
    x = jax.lax.stop_gradient(jnp.asarray(embedding, jnp.float32))
    num_nodes = x.shape[0]
    unit = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    take = min(size, num_nodes)

    def rows(block: Array) -> Array:
        return jax.lax.top_k(block @ unit.T, take)[1].astype(jnp.int32)

    chunk = min(chunk_size, num_nodes)
    if chunk == num_nodes:
        table = rows(unit)
    else:
        pad = (-num_nodes) % chunk
        padded = jnp.pad(unit, [(0, pad), (0, 0)]).reshape(-1, chunk, unit.shape[-1])
        table = jax.lax.map(rows, padded).reshape(-1, take)[:num_nodes]
    return jnp.pad(table, [(0, 0), (0, size - take)], constant_values=-1)
