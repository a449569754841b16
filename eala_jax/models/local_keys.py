"""Where ELinFormer's spatial "eala_local" layers get each node's local keys (docs/method.md,
"eala_local"): the data set's graph (a table kept as model state) or the adaptive embedding's
nearest nodes (recomputed each call). The temporal layers need nothing here: the op's own
sliding window of `num_local` tokens is their table."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from eala_jax.models.attention import AttentionBuffer
from eala_jax.models.config import ModelConfig
from eala_jax.ops.neighbours import embedding_neighbours, graph_neighbours

__all__ = ["spatial_local_keys", "spatial_table"]


def spatial_local_keys(
    config: ModelConfig, adjacency: np.ndarray | None, num_nodes: int, *, has_embedding: bool
) -> tuple[str | None, AttentionBuffer | None]:
    """Where the spatial "eala_local" layers get each node's local keys: ("graph", the table of
    `graph_neighbours(adjacency, K)` as a buffer, saved with the model), ("embedding", None: the
    top-K of the adaptive embedding, recomputed each call) or (None, None) for other attentions.
    `spatial_keys="auto"` takes the graph when `adjacency` is given. ValueError naming the option
    when the chosen source is missing."""
    options = config.spatial_attention
    if options.name != "eala_local" or not config.num_spatial_layers:
        return None, None
    source = options.spatial_keys
    if source == "auto":
        source = "graph" if adjacency is not None else "embedding"
    if source == "graph":
        if adjacency is None:
            raise ValueError(
                "model.spatial_attention: eala_local with spatial_keys='graph' needs the data"
                " set's graph (adjacency=[N, N]); this one has none: use spatial_keys='embedding'"
            )
        adjacency = np.asarray(adjacency)
        if adjacency.shape != (num_nodes, num_nodes):
            raise ValueError(
                f"adjacency must be [num_nodes, num_nodes] = [{num_nodes}, {num_nodes}], got"
                f" shape {adjacency.shape}"
            )
        table = graph_neighbours(adjacency, options.num_local)
        return "graph", AttentionBuffer(jnp.asarray(table, jnp.int32))
    if not has_embedding:
        raise ValueError(
            "model.spatial_attention: eala_local without a graph takes its nodes' neighbours from"
            " the adaptive embedding, so model.adaptive_embedding_dim must be > 0"
        )
    return "embedding", None


def spatial_table(
    source: str | None,
    graph_table: AttentionBuffer | None,
    adaptive_embedding: nnx.Param | None,
    size: int,
) -> jax.Array | None:
    """int32 `[N, K]`: each node's local keys for the spatial "eala_local" layers, from
    `spatial_local_keys`' `source`: the graph's table, or the top-`size` nodes of the adaptive
    embedding `[L, N, E]` flattened over its tokens (O(N²·L·E) a call, no gradient); None for
    other attentions."""
    if source == "graph":
        return graph_table[...]
    if source == "embedding":
        adaptive = adaptive_embedding[...]
        flat = jnp.swapaxes(adaptive, 0, 1).reshape(adaptive.shape[1], -1)
        return embedding_neighbours(flat, size)
    return None
