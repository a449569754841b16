"""NumPy float64 references for the attention ops, written from docs/method.md (steps 1-9) alone.

Nothing here imports or mirrors `eala_jax`: every quantity is computed the direct, quadratic way
from the explicit score matrix `s_ij = scale · q_i·k_j` of one head, over the valid keys only
(a key mask is applied by *dropping* the masked keys). The multi-head / batched / causal wrappers
loop in Python, which is fine for the small shapes the tests use.

Layout as the ops: `q: [B, T, H, D]`, `k: [B, S, H, D]`, `v: [B, S, H, Dv]`, `key_mask: [B, S]`.
"""

from __future__ import annotations

import math

import numpy as np

TINY_VARIANCE = 1e-12  # below this σ² counts as 0 (every score equals the mean): θ = 1


# ----------------------------------------------------------------------------------------------
# One head, valid keys only: q [T, D], k [M, D], v [M, Dv].


def scores(q, k, scale):
    return scale * (np.asarray(q, np.float64) @ np.asarray(k, np.float64).T)


def softmax_rows(s):
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def exact_entropy(s):
    """H_i = −Σ_j p_ij log p_ij of the softmax of each row of `s [T, M]`; 0 for M = 0."""
    if s.shape[1] == 0:
        return np.zeros(s.shape[0])
    p = softmax_rows(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    return -plogp.sum(axis=1)


def score_mean_var(s):
    """μ_i and σ_i² (population variance) of each row's scores, directly from the scores."""
    if s.shape[1] == 0:
        return np.zeros(s.shape[0]), np.zeros(s.shape[0])
    return s.mean(axis=1), s.var(axis=1)


def gaussian_entropy(s):
    m = s.shape[1]
    log_m = math.log(max(m, 1))
    _, var = score_mean_var(s)
    return np.clip(log_m - var / 2, 0.0, log_m)


def third_cumulant(s):
    """κ₃ = mean_j (s_j − μ)³ of each row, from the scores themselves."""
    if s.shape[1] == 0:
        return np.zeros(s.shape[0])
    return ((s - s.mean(axis=1, keepdims=True)) ** 3).mean(axis=1)


def cumulant3_entropy(s):
    m = s.shape[1]
    log_m = math.log(max(m, 1))
    _, var = score_mean_var(s)
    return np.clip(log_m - var / 2 - third_cumulant(s) / 3, 0.0, log_m)


def segments_entropy(s, num_segments):
    """Random-energy-model estimate over blocks of consecutive valid keys (docs/method.md step 3).

    `s [T, M]` holds the scores of the valid keys only, in their order (masked keys are dropped,
    so they are exactly absent keys). The keys are cut into blocks of `max(1, ⌈M / n⌉)` (the last
    may be shorter; n ≥ M gives one key per block). Each block: `m_c`, `v_c` are the mean and
    variance of its scores; while `v_c ≤ 2 log n_c`: `ℓ_c = log n_c + m_c + v_c/2`, `e_c = m_c +
    v_c`; else (frozen) both are `m_c + √v_c √(2 log n_c)`.
    `Ĥ = clip(logsumexp_c ℓ_c − Σ_c softmax(ℓ)_c e_c, 0, log M)`.
    """
    t, m = s.shape
    if m == 0:
        return np.zeros(t)
    log_m = math.log(m)
    length = max(1, -(-m // num_segments))
    ells, tilts = [], []
    for start in range(0, m, length):
        sc = s[:, start : start + length]
        n = sc.shape[1]
        m_c, v_c = sc.mean(axis=1), sc.var(axis=1)
        threshold = 2 * math.log(n)
        frozen = v_c > threshold
        edge = m_c + np.sqrt(v_c) * math.sqrt(threshold)
        ells.append(np.where(frozen, edge, math.log(n) + m_c + v_c / 2))
        tilts.append(np.where(frozen, edge, m_c + v_c))
    ell, tilt = np.stack(ells, 1), np.stack(tilts, 1)
    top = ell.max(axis=1, keepdims=True)
    w = np.exp(ell - top)
    log_z = top[:, 0] + np.log(w.sum(axis=1))
    mean_s = (w * tilt).sum(axis=1) / w.sum(axis=1)
    return np.clip(log_z - mean_s, 0.0, log_m)


def random_feature_kernel(q, k, projection, scale):
    """FAVOR+ estimate of exp(scale q·k): `φ(x)·φ(y)` with `φ(x) = exp(W x' − ‖x'‖²/2)/√r`, `x' =
    √scale x`."""
    w = np.asarray(projection, np.float64)
    r = w.shape[0]

    def phi(x):
        x = math.sqrt(scale) * np.asarray(x, np.float64)
        return np.exp(x @ w.T - 0.5 * (x * x).sum(axis=1, keepdims=True)) / math.sqrt(r)

    return phi(q) @ phi(k).T  # [T, M]


def random_features_entropy(q, k, projection, scale):
    """`Ĥ = clip(log Ẑ − (Σ_j K̂_j s_j)/Ẑ, 0, log M)` with `Ẑ = Σ_j K̂_j`, K̂ the FAVOR+ kernel."""
    m = k.shape[0]
    log_m = math.log(max(m, 1))
    if m == 0:
        return np.zeros(q.shape[0])
    kern = random_feature_kernel(q, k, projection, scale)
    s = scores(q, k, scale)
    z = kern.sum(axis=1)
    return np.clip(np.log(z) - (kern * s).sum(axis=1) / z, 0.0, log_m)


def theta_star(entropy, sigma2, m):
    """θ* = √(2 (log M − Ĥ)) / σ (docs/method.md step 5); 1, its limit as σ → 0, where σ² ≈ 0."""
    log_m = math.log(max(m, 1))
    gap = np.maximum(2 * (log_m - entropy), 0.0)
    out = np.ones_like(sigma2)
    spread = sigma2 > TINY_VARIANCE
    out[spread] = np.sqrt(gap[spread]) / np.sqrt(sigma2[spread])
    return out


def nonnegative_cap(q, k, scale):
    """Upper bound on θ from step 7: 1 / (scale · ‖q‖ · max_j ‖k_j − k̄‖); +inf where it is 0."""
    r = np.linalg.norm(k - k.mean(axis=0), axis=1).max() if k.shape[0] else 0.0
    bound = scale * np.linalg.norm(q, axis=1) * r
    with np.errstate(divide="ignore"):
        return np.where(bound > 0, 1.0 / np.where(bound > 0, bound, 1.0), np.inf)


# ----------------------------------------------------------------------------------------------
# EALA for one head: full positions with a validity mask (segments need positions).


def eala_head(
    q,
    k,
    v,
    valid,
    *,
    scale,
    estimator="gaussian",
    theta="optimal",
    nonnegative=False,
    num_segments=1,
    projection=None,
):
    """EALA of one head. Returns dict(out [T, Dv], weights [T, S] (0 at invalid keys), theta,
    entropy, sigma2)."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    valid = np.asarray(valid, bool)
    t, num_keys = q.shape[0], k.shape[0]
    kv, vv = k[valid], v[valid]
    m = kv.shape[0]
    s = scores(q, kv, scale)
    mu, sigma2 = score_mean_var(s)
    if estimator == "gaussian":
        entropy = gaussian_entropy(s)
    elif estimator == "cumulant3":
        entropy = cumulant3_entropy(s)
    elif estimator == "exact":
        entropy = exact_entropy(s)
    elif estimator == "segments":
        entropy = segments_entropy(s, num_segments)
    elif estimator == "random_features":
        entropy = random_features_entropy(q, kv, projection, scale)
    else:
        raise ValueError(estimator)
    th = theta_star(entropy, sigma2, m) if theta == "optimal" else np.full(t, float(theta))
    if nonnegative:
        th = np.minimum(th, nonnegative_cap(q, kv, scale))
    weights = np.zeros((t, num_keys))
    out = np.zeros((t, v.shape[1]))
    if m:
        a = (1.0 + th[:, None] * (s - mu[:, None])) / m
        weights[:, valid] = a
        out = a @ vv
    return dict(out=out, weights=weights, theta=th, entropy=entropy, sigma2=sigma2, mean_score=mu)


def _visible(key_mask, b, num_keys, causal, i):
    valid = np.ones(num_keys, bool) if key_mask is None else np.asarray(key_mask, bool)[b]
    if causal:
        valid = valid & (np.arange(num_keys) <= i)
    return valid


def eala(q, k, v, key_mask=None, *, causal=False, scale=None, **options):
    """Batched / multi-head (and causal, by one masked non-causal problem per query) EALA."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    b_, t, h_, d = q.shape
    num_keys = k.shape[1]
    scale = 1 / math.sqrt(d) if scale is None else scale
    res = dict(
        out=np.zeros((b_, t, h_, v.shape[-1])),
        weights=np.zeros((b_, h_, t, num_keys)),
        theta=np.zeros((b_, t, h_)),
        entropy=np.zeros((b_, t, h_)),
        sigma2=np.zeros((b_, t, h_)),
    )
    for b in range(b_):
        for h in range(h_):
            rows = range(t) if causal else [None]
            for i in rows:
                sl = slice(None) if i is None else slice(i, i + 1)
                r = eala_head(
                    q[b, sl, h],
                    k[b, :, h],
                    v[b, :, h],
                    _visible(key_mask, b, num_keys, causal, i),
                    scale=scale,
                    **options,
                )
                res["out"][b, sl, h] = r["out"]
                res["weights"][b, h, sl] = r["weights"]
                for name in ("theta", "entropy", "sigma2"):
                    res[name][b, sl, h] = r[name]
    return res


def entropy(q, k, key_mask=None, *, method="exact", scale=None, num_segments=1, projection=None):
    """Entropy estimate `[B, T, H]` of every query (method as in docs/method.md step 3)."""
    q, k = np.asarray(q, np.float64), np.asarray(k, np.float64)
    v = np.zeros(k.shape[:-1] + (1,))
    return eala(
        q,
        k,
        v,
        key_mask,
        scale=scale,
        estimator=method,
        num_segments=num_segments,
        projection=projection,
    )["entropy"]


# ----------------------------------------------------------------------------------------------
# Baselines for one head on valid keys only (M = 0 gives zeros).


def softmax_head(q, k, v, scale):
    return softmax_rows(scores(q, k, scale)) @ v


def linear_head(q, k, v, scale):
    del scale
    elu1 = lambda x: np.where(x > 0, x + 1.0, np.exp(x))
    a = elu1(q) @ elu1(k).T
    return (a @ v) / a.sum(axis=1, keepdims=True)


def performer_head(q, k, v, scale, projection):
    """FAVOR+ written directly: φ(q)·Σ_j φ(k_j) v_j / φ(q)·Σ_j φ(k_j)."""
    a = random_feature_kernel(q, k, projection, scale)
    return (a @ v) / a.sum(axis=1, keepdims=True)


def uniform_head(q, k, v, scale):
    del scale
    return np.broadcast_to(v.mean(axis=0), (q.shape[0], v.shape[1]))


HEADS = {
    "softmax": softmax_head,
    "linear": linear_head,
    "performer": performer_head,
    "uniform": uniform_head,
}


def attend(name, q, k, v, key_mask=None, *, causal=False, scale=None, projection=None):
    """Baseline attention `name` over the valid (and, if causal, earlier) keys; `[B, T, H, Dv]`."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    b_, t, h_, d = q.shape
    num_keys = k.shape[1]
    scale = 1 / math.sqrt(d) if scale is None else scale
    fn = HEADS[name]
    extra = dict(projection=projection) if name == "performer" else {}
    out = np.zeros((b_, t, h_, v.shape[-1]))
    for b in range(b_):
        for h in range(h_):
            for i in range(t) if causal else [None]:
                sl = slice(None) if i is None else slice(i, i + 1)
                valid = _visible(key_mask, b, num_keys, causal, i)
                if valid.any():
                    out[b, sl, h] = fn(q[b, sl, h], k[b, valid, h], v[b, valid, h], scale, **extra)
    return out


# ----------------------------------------------------------------------------------------------
# LLN attention (arXiv 2311.13541) as docs/method.md "LLN attention" states it: explicit weights.


def lln_temperature(qs, ks, scale):
    """τ = √(F(σ_sm²)/(σ_q² + σ_k²)) from the queries `qs [n, D]` and valid keys `ks [m, D]`:
    σ² the per-dimension population variance averaged over D, σ_sm² = D·scale²·σ_q²·σ_k²,
    F(x) = log(1 + D·(e^x − 1)) (0 without keys)."""
    d = qs.shape[1]
    var_q = qs.var(axis=0).mean() if len(qs) else 0.0
    var_k = ks.var(axis=0).mean() if len(ks) else 0.0
    if var_q + var_k == 0:
        return 0.0
    x = d * scale**2 * var_q * var_k
    # log(1 + d·(e^x − 1)) = x + log(d − (d − 1)·e^{−x}), which does not overflow.
    return math.sqrt((x + math.log1p(-(d - 1) * math.expm1(-x))) / (var_q + var_k))


def lln(
    q, k, v, key_mask=None, *, causal=False, scale=None, temperature="matched", center_keys=True
):
    """LLN attention `[B, T, H, Dv]` and its explicit weights `[B, H, T, S]` (0 at invisible keys):
    w_ij = Σ_c exp(τ_i q_ic + τ_j (k_jc − k̄_j,c)) over the valid (and, if causal, earlier) keys,
    rows normalised. Non-causal: one τ from all queries and valid keys, k̄ their mean; causal: τ_t
    from queries 0..t and the valid keys among 0..t, k̄_t the mean of those keys. k̄ = 0 without
    `center_keys`."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    b_, t, h_, d = q.shape
    num_keys = k.shape[1]
    scale = 1 / math.sqrt(d) if scale is None else scale
    out = np.zeros((b_, t, h_, v.shape[-1]))
    weights = np.zeros((b_, h_, t, num_keys))
    for b in range(b_):
        valid = np.ones(num_keys, bool) if key_mask is None else np.asarray(key_mask, bool)[b]
        for h in range(h_):
            qh, kh = q[b, :, h], k[b, :, h]

            def tau(last):  # queries and valid keys of positions 0..last (all when None)
                if temperature != "matched":
                    return float(temperature)
                end = None if last is None else last + 1
                return lln_temperature(qh[:end], kh[:end][valid[:end]], scale)

            def mean_key(last):  # mean of the valid keys of positions 0..last (all when None)
                end = None if last is None else last + 1
                kept = kh[:end][valid[:end]]
                return kept.mean(axis=0) if center_keys and len(kept) else np.zeros(d)

            taus = [tau(i) for i in range(t)] if causal else [tau(None)] * max(t, num_keys)
            means = [mean_key(j if causal else None) for j in range(num_keys)]
            log_w = np.full((t, num_keys), -np.inf)  # log w_ij, -inf at invisible keys
            for i in range(t):
                for j in range(num_keys):
                    if valid[j] and (not causal or j <= i):
                        e = taus[i] * qh[i] + taus[j] * (kh[j] - means[j])
                        log_w[i, j] = e.max() + np.log(np.exp(e - e.max()).sum())
            top = log_w.max(axis=1, keepdims=True)
            w = np.exp(log_w - np.where(np.isfinite(top), top, 0.0))
            total = w.sum(axis=1, keepdims=True)
            a = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
            weights[b, h] = a
            out[b, :, h] = a @ v[b, :, h]
    return out, weights


# ----------------------------------------------------------------------------------------------
# eala_local (docs/method.md, "eala_local"): one query at a time, from its explicit scores.


def log_partition_rem(s):
    """Random-energy-model log Σ_j e^{s_j} of the scores `s [n]` from their mean and variance:
    `log n + μ + σ²/2` while σ² ≤ 2 log n, else `μ + σ √(2 log n)`."""
    n = s.shape[0]
    mu, var = s.mean(), s.var()
    if var > 2 * math.log(n):
        return mu + math.sqrt(var) * math.sqrt(2 * math.log(n))
    return math.log(n) + mu + var / 2


def eala_local_row(q, k, valid, local, *, scale, theta="optimal", nonnegative=False):
    """Weights `[S]` (0 at invisible keys) and dict(theta, local_mass, entropy) of one query
    `q [D]` over keys `k [S, D]`: `valid [S]` the visible keys, `local` the indices of its local
    keys (already unique, visible)."""
    num_keys = k.shape[0]
    local = np.asarray(local, int)
    rest = np.array([j for j in np.flatnonzero(valid) if j not in set(local.tolist())], int)
    s = scale * (k @ q)
    weights = np.zeros(num_keys)
    info = dict(theta=0.0, local_mass=0.0, entropy=0.0)
    if local.size == 0 and rest.size == 0:
        return weights, info
    lam, th, h_local, h_rest = 0.0, 0.0, 0.0, 0.0
    if local.size:
        p = softmax_rows(s[local][None])[0]
        h_local = exact_entropy(s[local][None])[0]
        log_z_local = np.log(np.exp(s[local] - s[local].max()).sum()) + s[local].max()
    if rest.size:
        n = rest.size
        sr = s[rest]
        mu, var = sr.mean(), sr.var()
        h_rest = float(np.clip(math.log(n) - var / 2, 0.0, math.log(n)))
        if theta == "optimal":
            th = math.sqrt(2 * (math.log(n) - h_rest) / var) if var > TINY_VARIANCE else 1.0
        else:
            th = float(theta)
        if nonnegative:
            kv = k[valid]
            mean_v = kv.mean(axis=0)
            bound = np.linalg.norm(kv - mean_v, axis=1).max() + np.linalg.norm(
                mean_v - k[rest].mean(axis=0)
            )
            bound *= scale * np.linalg.norm(q)
            if bound > 0:
                th = min(th, 1.0 / bound)
        a_rest = (1.0 + th * (sr - mu)) / n
        lam = 0.0  # no local key: the row is EALA's
        if local.size:
            lam = 1.0 / (1.0 + math.exp(log_partition_rem(sr) - log_z_local))
        weights[rest] = (1.0 - lam) * a_rest
    else:
        lam = 1.0
    if local.size:
        weights[local] = lam * p
    h_lam = -sum(x * math.log(x) for x in (lam, 1.0 - lam) if x > 0)
    info = dict(theta=th, local_mass=lam, entropy=h_lam + lam * h_local + (1.0 - lam) * h_rest)
    return weights, info


def eala_local(q, k, v, neighbours, key_mask=None, *, causal=False, scale=None, **options):
    """Batched / multi-head eala_local. `neighbours [T, K]`: -1 = none, repeats count once,
    invisible keys are dropped. Returns dict(out, weights [B, H, T, S], theta, local_mass,
    entropy)."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    b_, t, h_, d = q.shape
    num_keys = k.shape[1]
    scale = 1 / math.sqrt(d) if scale is None else scale
    res = dict(
        out=np.zeros((b_, t, h_, v.shape[-1])),
        weights=np.zeros((b_, h_, t, num_keys)),
        **{name: np.zeros((b_, t, h_)) for name in ("theta", "local_mass", "entropy")},
    )
    for b in range(b_):
        for i in range(t):
            valid = _visible(key_mask, b, num_keys, causal, i)
            local = []
            for j in np.asarray(neighbours)[i]:
                if 0 <= j < num_keys and valid[j] and j not in local:
                    local.append(int(j))
            for h in range(h_):
                w, info = eala_local_row(
                    q[b, i, h], k[b, :, h], valid, local, scale=scale, **options
                )
                res["weights"][b, h, i] = w
                res["out"][b, i, h] = w @ v[b, :, h]
                for name, value in info.items():
                    res[name][b, i, h] = value
    return res
