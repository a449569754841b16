"""Published long-horizon results (DLinear, PatchTST/42) on the protocol of
`experiments.long_horizon`, with paper and table, and our scores on the test windows each published
number scored."""

from __future__ import annotations

from typing import Any

import numpy as np

from eala_jax.metrics import subset_scores

#: The horizons of the published tables (and of the long-horizon rows).
HORIZONS = (96, 192, 336, 720)

PROTOCOL_SOURCES = (
    "Both papers' test loaders dropped the last incomplete batch of test windows (`drop_last=True`"
    " in `data_provider/data_factory.py` of github.com/cure-lab/LTSF-Linear, the Informer lineage's"
    " loader; for PatchTST its authors confirm it in github.com/yuqinie98/PatchTST/issues/7, "
    "January 2023, and FITS' README, github.com/VEWOXIC/FITS, describes the bug), so a published "
    "number scores the first W // b x b of the W test windows, b the test batch of the paper's "
    "script for that row: DLinear 8 (ETTh1), 32 (ETTh2), 8 / 8 / 32 / 32 (exchange_rate, "
    "`scripts/EXP-LongForecasting/DLinear/`), PatchTST 128 (`PatchTST_supervised/scripts/"
    "PatchTST/`). Our MSE on the same windows comes from each run's per-window test errors "
    "(`test_windows.npz`); the other columns use every window.",
)


# Published multivariate results on the same protocol, test MSE / MAE by horizon (96, 192, 336,
# 720), keyed by (data set, input length). `test_batch`: the test batch size of the paper's run
# script for that row; both papers' test loaders dropped the last incomplete batch
# (`drop_last=True`), so each number scores only the first `published_windows(W, test_batch)` of
# the W test windows (`PROTOCOL_SOURCES`). `verified` is False for every entry: the papers' own
# tables could not be read here; the numbers agree with the copy of both tables in FITS (Xu et al.,
# ICLR 2024, Table 2, "results borrowed from DLinear and PatchTST").
PUBLISHED: dict[str, Any] = {
    "DLinear": {
        ("etth1", 336): {
            "mse": (0.375, 0.405, 0.439, 0.472),
            "mae": (0.399, 0.416, 0.443, 0.490),
            "test_batch": (8, 8, 8, 8),
            "verified": False,
        },
        ("etth2", 336): {
            "mse": (0.289, 0.383, 0.448, 0.605),
            "mae": (0.353, 0.418, 0.465, 0.551),
            "test_batch": (32, 32, 32, 32),
            "verified": False,
        },
        ("exchange_rate", 336): {
            "mse": (0.081, 0.157, 0.305, 0.643),
            "mae": (0.203, 0.293, 0.414, 0.601),
            "test_batch": (8, 8, 32, 32),
            "verified": False,
        },
    },
    "PatchTST/42": {
        ("etth1", 336): {
            "mse": (0.375, 0.414, 0.431, 0.449),
            "mae": (0.399, 0.421, 0.436, 0.466),
            "test_batch": (128, 128, 128, 128),
            "verified": False,
        },
        ("etth2", 336): {
            "mse": (0.274, 0.339, 0.331, 0.379),
            "mae": (0.336, 0.379, 0.380, 0.422),
            "test_batch": (128, 128, 128, 128),
            "verified": False,
        },
    },
    "sources": (
        'DLinear: Zeng et al., "Are Transformers Effective for Time Series Forecasting?", AAAI '
        "2023, Table 2 (multivariate, input 336).",
        'PatchTST/42: Nie et al., "A Time Series is Worth 64 Words", ICLR 2023, Table 3 '
        "(supervised, input 336, patches of 16 every 8); no exchange_rate result there.",
        "Neither paper reports input 96 in its main table: those rows have no published column.",
        "\\* checked only against the copy of both tables in FITS (Xu et al., ICLR 2024, Table 2), "
        "not against the papers' own text.",
    ),
}


def published_windows(num_windows: int, test_batch: int) -> int:
    """How many of `num_windows` test windows (in time order) a published evaluation scored: its
    loader dropped the last incomplete batch of `test_batch`, so the first ones, a whole number
    of batches."""
    if num_windows < 1 or test_batch < 1:
        raise ValueError(
            f"published_windows: num_windows and test_batch must be >= 1, got {num_windows}, "
            f"{test_batch}"
        )
    return num_windows // test_batch * test_batch


def published_entries(dataset: str, in_steps: int, horizon: int) -> dict[str, dict[str, Any]]:
    """Model -> {"mse", "mae", "test_batch"} published for one row (empty where none is)."""
    if horizon not in HORIZONS:
        return {}
    i = HORIZONS.index(horizon)
    return {
        model: {key: entries[(dataset, in_steps)][key][i] for key in ("mse", "mae", "test_batch")}
        for model, entries in PUBLISHED.items()
        if model != "sources" and (dataset, in_steps) in entries
    }


def scores_on_published_windows(
    sums: dict[str, np.ndarray], dataset: str, in_steps: int, horizon: int
) -> dict[str, dict[str, float]]:
    """Model -> our {"mse", "mae", "windows", "of"} on the test windows that model's published
    number scored, from one run's `window_sums`."""
    total = len(sums["count"])
    out = {}
    for model, entry in published_entries(dataset, in_steps, horizon).items():
        kept = published_windows(total, entry["test_batch"])
        out[model] = {**subset_scores(sums, slice(0, kept)), "windows": kept, "of": total}
    return out


def best_published(row: dict[str, Any]) -> tuple[float, dict[str, Any] | None] | None:
    """The lowest published MSE for a row (DLinear's or PatchTST/42's) and the row's scores on the
    test windows that number scored (None where the row has no per-window errors), or None where
    nothing is published."""
    entries = published_entries(row["dataset"], row["in_steps"], row["horizon"])
    if not entries:
        return None
    model = min(entries, key=lambda m: entries[m]["mse"])
    return entries[model]["mse"], row.get("published_windows", {}).get(model)


def published_gap(row: dict[str, Any]) -> tuple[float, bool] | None:
    """The row's mean MSE against the best published one (the lower of DLinear's and
    PatchTST/42's), both on the test windows that number scored where the row has its per-window
    errors (`published_windows`), else ours on every window: (relative gap, on its windows?), or
    None where nothing is published."""
    best = best_published(row)
    if best is None:
        return None
    published, windows = best
    ours = windows["mse"][0] if windows else row["mse"][0]
    return ours / published - 1, windows is not None
