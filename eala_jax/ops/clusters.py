"""The "clusters" entropy estimate: a log-normal model per cluster of similar keys.

The valid keys of each (batch, head) are cut into at most `n = max(1, S // CLUSTER_SIZE)` clusters
by a principal-direction tree: a group of keys with ℓ leaves to fill is cut in two along its
principal direction (power iteration from its farthest key) where the two sides' squared
deviations along it are least (1-D two-means), and the sides share the ℓ leaves in proportion to
their keys, until every group has one leaf. (Cutting at the median instead mixes two separate
groups of keys into one cluster whenever their sizes are not multiples of the cluster size: its
log-normal model is then far off.) A query's scores over cluster c are modelled
as log-normal weights around the cluster's mean score `m_c = scale·q·μ_c` with variance
`v_c = α_c·scale²·qᵀWq`, where W is the keys' pooled within-cluster covariance and
`α_c = tr Σ_c / tr W` the cluster's share of it; then, as in the "segments" estimator (a
random-energy model, docs/method.md step 3), `ℓ_c = log n_c + m_c + v_c/2` and `e_c = m_c + v_c`,
or both `m_c + √(2 v_c log n_c)` where `v_c > 2 log n_c` (frozen), and
`Ĥ = logsumexp ℓ − Σ softmax(ℓ)_c e_c`.

Cost per query: n ≤ S/8 key dot products and one D×D form (`qᵀWq`): O(T·(S/8 + D)·D); per
(batch, head) on the key side O(S·D·iterations + S·log S) per tree level (2·⌈log₂ n⌉ levels) and
O(S·D²) for W.
Memory O(T·chunk + S·D + D²) per head: the clusters are scanned in chunks, no T×S buffer. The tree
is formed on `stop_gradient(k)` (cluster membership is discrete); the cluster statistics and the
estimate are differentiable in q and k.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from eala_jax.ops._chunks import chunked
from eala_jax.ops._numerics import safe_sqrt

Array = jax.Array
#: Keys per cluster: n = max(1, S // CLUSTER_SIZE) clusters, so a query reads at most S/8 centres.
CLUSTER_SIZE = 8
#: Power iterations for each group's principal direction.
POWER_ITERATIONS = 8
_NEG = -1e30


def num_clusters(num_keys: int, cluster_size: int = CLUSTER_SIZE) -> int:
    """Clusters of `num_keys` key slots: `max(1, num_keys // cluster_size)`."""
    return max(1, num_keys // cluster_size)


def tree_levels(clusters: int) -> int:
    """Levels of the tree: 2·⌈log₂ n⌉, room for uneven cuts (a group still holding ≥ 2 leaves
    after them stays one cluster)."""
    return 2 * math.ceil(math.log2(clusters))


def key_clusters(k: Array, key_mask: Array | None, clusters: int) -> Array:
    """Cluster index of each key, `[B, H, S]` int32: in [0, clusters) for a valid key, `clusters`
    for a masked one. `k: [B, S, H, D]`, `key_mask: [B, S]`. No gradient (membership is discrete).

    A group is a key's leaf range [lo, hi); each of `tree_levels(n)` levels splits every group of
    ℓ ≥ 2 leaves and c ≥ 2 valid keys: ranked by projection p on the group's principal direction
    (ties by key order), its first r keys go left, r (the first best) minimising
    `Σ_left (p − p̄_left)² + Σ_right (p − p̄_right)²`; the left side takes leaves [lo, lo + a),
    `a = clip(round(ℓ·r/c), 1, ℓ − 1)`, the right side the others. The principal direction:
    `POWER_ITERATIONS` power iterations of the group's centred keys, from the sum of its keys
    farthest from the group mean, normalised each step.
    """
    k = jax.lax.stop_gradient(jnp.moveaxis(k, 2, 1))  # [B, H, S, D]
    batch, heads, num_keys, _ = k.shape
    valid = jnp.ones((batch, num_keys), bool) if key_mask is None else key_mask
    valid = jnp.broadcast_to(valid[:, None, :], (batch, heads, num_keys))
    lo = jnp.where(valid, 0, clusters).astype(jnp.int32)
    hi = jnp.where(valid, clusters, clusters + 1).astype(jnp.int32)
    for _ in range(tree_levels(clusters)):
        lo, hi = _split(k, valid, lo, hi, clusters)
    return lo


def _flat_groups(group: Array, groups: int) -> Array:
    """Each key's group as an index into the flattened `[B·H·G]` groups."""
    batch, heads = group.shape[:2]
    offset = (jnp.arange(batch * heads, dtype=jnp.int32) * groups).reshape(batch, heads, 1)
    return (group + offset).reshape(-1)


def _group_sum(x: Array, group: Array, groups: int) -> Array:
    """Sum of `x: [B, H, S, ...]` over each group's keys (`group: [B, H, S]`): `[B, H, G, ...]`."""
    batch, heads, num_keys = group.shape
    flat = jax.ops.segment_sum(
        x.reshape(batch * heads * num_keys, *x.shape[3:]),
        _flat_groups(group, groups),
        num_segments=batch * heads * groups,
    )
    return flat.reshape(batch, heads, groups, *x.shape[3:])


def _group_max(x: Array, group: Array, groups: int) -> Array:
    """Maximum of `x: [B, H, S]` over each group's keys -> `[B, H, G]` (-inf for an empty one)."""
    batch, heads = group.shape[:2]
    flat = jax.ops.segment_max(
        x.reshape(-1), _flat_groups(group, groups), num_segments=batch * heads * groups
    )
    return flat.reshape(batch, heads, groups)


def _group_min(x: Array, group: Array, groups: int) -> Array:
    """Minimum of `x: [B, H, S]` over each group's keys -> `[B, H, G]`."""
    batch, heads = group.shape[:2]
    flat = jax.ops.segment_min(
        x.reshape(-1), _flat_groups(group, groups), num_segments=batch * heads * groups
    )
    return flat.reshape(batch, heads, groups)


def _gather(x: Array, group: Array) -> Array:
    """`x: [B, H, G, ...]` at each key's group `group: [B, H, S]` -> `[B, H, S, ...]`."""
    index = group.reshape(*group.shape, *([1] * (x.ndim - 3)))
    return jnp.take_along_axis(x, index, axis=2)


def _inverse_permutation(order: Array) -> Array:
    """The inverse of each permutation `order: [B, H, S]` (a scatter: sorting again is slower)."""
    batch, heads, num_keys = order.shape
    rows = (jnp.arange(batch)[:, None, None], jnp.arange(heads)[None, :, None], order)
    iota = jnp.broadcast_to(jnp.arange(num_keys, dtype=order.dtype), order.shape)
    return jnp.zeros_like(order).at[rows].set(iota, unique_indices=True)


def _split(k: Array, valid: Array, lo: Array, hi: Array, clusters: int) -> tuple[Array, Array]:
    """One level of `key_clusters`: every group of ≥ 2 leaves cut in two."""
    groups = clusters + 1  # the last holds the masked keys
    w = valid.astype(k.dtype)
    count = _group_sum(w, lo, groups)  # [B, H, G]
    mean = _group_sum(w[..., None] * k, lo, groups) / jnp.maximum(count, 1.0)[..., None]
    x = (k - _gather(mean, lo)) * w[..., None]  # [B, H, S, D], 0 at masked keys
    norm2 = jnp.sum(x * x, axis=-1)
    farthest = (norm2 >= _gather(_group_max(norm2, lo, groups), lo)) & valid
    u = _group_sum(jnp.where(farthest[..., None], x, 0.0), lo, groups)  # [B, H, G, D]
    for _ in range(POWER_ITERATIONS):
        u = u / jnp.maximum(jnp.sqrt(jnp.sum(u * u, axis=-1, keepdims=True)), 1e-30)
        u = _group_sum(jnp.sum(x * _gather(u, lo), axis=-1)[..., None] * x, lo, groups)
    u = u / jnp.maximum(jnp.sqrt(jnp.sum(u * u, axis=-1, keepdims=True)), 1e-30)
    p = jnp.sum(x * _gather(u, lo), axis=-1)  # [B, H, S], 0 at masked keys
    order = jnp.lexsort((p, lo), axis=-1)  # by group, then projection (stable: ties by index)
    position = _inverse_permutation(order)
    first = (jnp.cumsum(count, axis=-1) - count).astype(jnp.int32)  # each group's first position
    rank = position.astype(jnp.int32) - _gather(first, lo)  # among its group's keys, by p
    keys = _gather(count, lo).astype(jnp.int32)  # its group's c
    # Σ p and Σ p² over the group's keys up to this one in sorted order (prefix) and over all.
    sums = []
    for power in (p, p * p):
        in_order = jnp.cumsum(jnp.take_along_axis(power, order, axis=-1), axis=-1)
        before = jnp.take_along_axis(
            jnp.pad(in_order, [(0, 0), (0, 0), (1, 0)]), jnp.minimum(first, p.shape[-1]), axis=-1
        )  # [B, H, G]: the sum over the groups before each group
        prefix = jnp.take_along_axis(in_order, position, axis=-1) - _gather(before, lo)
        sums += [prefix, _gather(_group_sum(power, lo, groups), lo)]
    prefix1, total1, prefix2, total2 = sums
    # Cutting after this key (r = rank + 1 keys on the left): the two sides' squared deviations.
    candidate = valid & (rank + 1 < keys)
    r = (rank + 1).astype(p.dtype)
    rest = jnp.where(candidate, keys - rank - 1, 1).astype(p.dtype)
    cost = prefix2 - prefix1 * prefix1 / r + (total2 - prefix2) - (total1 - prefix1) ** 2 / rest
    cost = jnp.where(candidate, cost, jnp.inf)
    best = _gather(_group_min(cost, lo, groups), lo)
    first_best = jnp.where(candidate & (cost <= best), rank + 1, p.shape[-1])
    cut = jnp.minimum(_gather(_group_min(first_best, lo, groups), lo), keys)  # none: all left
    leaves = hi - lo
    half = jnp.clip((2 * leaves * cut + keys) // jnp.maximum(2 * keys, 1), 1, leaves - 1)
    left = rank < cut
    split = leaves >= 2
    return jnp.where(split & ~left, lo + half, lo), jnp.where(split & left, lo + half, hi)


@functools.partial(jax.jit, static_argnames=("scale", "cluster_size", "chunk_size"))
def clusters_entropy(
    q: Array,
    k: Array,
    key_mask: Array | None,
    *,
    scale: float,
    cluster_size: int = CLUSTER_SIZE,
    chunk_size: int = 64,
) -> Array:
    """The clusters estimate Ĥ `[B, T, H]` (before any clip; 0 for a row with no valid key) of
    `q: [B, T, H, D]` against `k: [B, S, H, D]` with `key_mask: [B, S]` (module docstring).
    `chunk_size` clusters are scanned at a time."""
    batch, num_keys, heads, _ = k.shape
    clusters = num_clusters(num_keys, cluster_size)
    member = key_clusters(k, key_mask, clusters)  # [B, H, S]
    valid = jnp.ones((batch, num_keys), bool) if key_mask is None else key_mask
    w = jnp.broadcast_to(valid[:, None, :], member.shape).astype(q.dtype)
    kh = jnp.moveaxis(k, 2, 1)  # [B, H, S, D]
    groups = clusters + 1
    count = _group_sum(w, member, groups)  # [B, H, G]
    mean = _group_sum(w[..., None] * kh, member, groups) / jnp.maximum(count, 1.0)[..., None]
    x = (kh - _gather(mean, member)) * w[..., None]
    spread = _group_sum(jnp.sum(x * x, axis=-1), member, groups)  # n_c · tr Σ_c
    total = jnp.maximum(jnp.sum(count, axis=-1, keepdims=True), 1.0)  # M, [B, H, 1]
    pooled = jnp.einsum("bhsd,bhse->bhde", x, x) / total[..., None]  # W, [B, H, D, D]
    trace = jnp.sum(spread, axis=-1, keepdims=True) / total  # tr W
    share = jnp.where(
        trace > 0, spread / jnp.maximum(count, 1.0) / jnp.where(trace > 0, trace, 1.0), 0.0
    )  # α_c
    v = jnp.maximum(scale * scale * jnp.einsum("bthd,bhde,bthe->bth", q, pooled, q), 0.0)

    def step(carry, chunk):
        run_max, weight, tilted = carry
        n_c, mu_c, a_c = chunk  # [B, H, C], [B, H, C, D], [B, H, C]
        m_c = scale * jnp.einsum("bthd,bhcd->bthc", q, mu_c)
        v_c = v[..., None] * a_c[:, None]  # [B, T, H, C]
        n_c = n_c[:, None]  # [B, 1, H, C]
        log_n = jnp.log(jnp.maximum(n_c, 1.0))
        threshold = 2.0 * log_n
        frozen = v_c > threshold
        edge = m_c + safe_sqrt(v_c * threshold)
        present = n_c > 0
        ell = jnp.where(present, jnp.where(frozen, edge, log_n + m_c + 0.5 * v_c), _NEG)
        tilt = jnp.where(frozen, edge, m_c + v_c)
        new_max = jnp.maximum(run_max, jnp.max(ell, axis=-1))
        correction = jnp.exp(run_max - new_max)
        e = jnp.where(present, jnp.exp(ell - new_max[..., None]), 0.0)
        weight = weight * correction + jnp.sum(e, axis=-1)
        tilted = tilted * correction + jnp.sum(e * jnp.where(present, tilt, 0.0), axis=-1)
        return (new_max, weight, tilted), None

    chunk = max(1, min(chunk_size, clusters))
    # Clusters as the scanned axis: [B, H, G, ...] -> chunks of [B, H, chunk, ...] (G - 1 = n:
    # the masked keys' group is dropped).
    xs = tuple(
        jnp.moveaxis(chunked(jnp.moveaxis(a[:, :, :clusters], 2, 1), chunk), 2, 3)
        for a in (count, mean, share)
    )
    init = tuple(jnp.full(q.shape[:-1], value, q.dtype) for value in (_NEG, 0.0, 0.0))
    (run_max, weight, tilted), _ = jax.lax.scan(step, init, xs)
    has_key = weight > 0
    safe_weight = jnp.where(has_key, weight, 1.0)
    return jnp.where(has_key, run_max + jnp.log(safe_weight) - tilted / safe_weight, 0.0)
