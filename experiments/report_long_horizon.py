"""The "Long horizons" section of docs/results.md (rows of the current config) and its appendix in
docs/results_history.md (rows trained with an earlier config), from
`experiments/results/long_horizon.json`."""

from __future__ import annotations

from typing import Any

from eala_jax.bench.machine import describe
from eala_jax.models import BASELINE_NAMES
from eala_jax.train import load_config_file
from experiments.long_horizon import (
    CONFIG,
    DATASETS,
    VARIANTS,
    config_summary,
    row_key,
    stored_row_config,
)
from experiments.published import (
    HORIZONS,
    PROTOCOL_SOURCES,
    PUBLISHED,
    best_published,
    published_gap,
)

HISTORY_FILE = "results_history.md"


def _cell(pair: list[float] | None, seeds: int) -> str:
    if pair is None:
        return "–"
    return f"{pair[0]:.3f} ± {pair[1]:.3f}" if seeds > 1 else f"{pair[0]:.3f}"


def _published_cell(model: str, dataset: str, in_steps: int, horizon: int, metric: str) -> str:
    entry = PUBLISHED.get(model, {}).get((dataset, in_steps))
    if not entry or horizon not in HORIZONS:
        return "–"
    value = entry[metric][HORIZONS.index(horizon)]
    return f"{value:.3f}" + ("" if entry["verified"] else "\\*")


def _published_windows_cell(row: dict[str, Any]) -> str:
    """Our MSE on the test windows the best published number scored, "(kept / all)"."""
    best = best_published(row)
    if best is None or best[1] is None:
        return "–"
    windows = best[1]
    return f"{_cell(windows['mse'], len(row['seeds']))} ({windows['windows']} / {windows['of']})"


def _baseline_cell(scores: dict[str, Any] | None) -> str:
    if scores is None:
        return "–"
    period = f" ({scores['period']})" if "period" in scores else ""
    return f"{scores['mse']:.3f} / {scores['mae']:.3f}{period}"


def beaten_cell(row: dict[str, Any]) -> str:
    """ "all" when the row's mean MSE and MAE are both below every stored baseline's (RMSE ranks as
    MSE), else the baselines and metrics it does not beat; "–" when a baseline is missing."""
    if any(name not in row["baselines"] for name in BASELINE_NAMES):
        return "–"
    lost = [
        f"{name} {metric.upper()}"
        for name in BASELINE_NAMES
        for metric in ("mse", "mae")
        if not row[metric][0] < row["baselines"][name][metric]
    ]
    return "all" if not lost else "not " + ", ".join(lost)


def is_current(row: dict[str, Any]) -> bool:
    """Whether a stored row is one of today's variants trained with today's config for its
    overrides; the others (earlier configs, variants since replaced) are shown in the appendix."""
    return row["variant"] in VARIANTS and row["config"] == config_summary(stored_row_config(row))


def target_line(rows: list[dict[str, Any]]) -> list[str]:
    """Two bars over the current-config `eala` rows of ETTh1 / ETTh2 (MSE within 5 % of the best
    published, or better; MSE and MAE below every baseline's), as a list item."""
    current = config_summary(load_config_file(CONFIG))
    with_gaps = [  # (row, (gap, on its windows?)), each gap computed once
        (r, g)
        for r in rows
        if r["dataset"] in ("etth1", "etth2")
        and r["variant"] == "eala"
        and r.get("config") == current
        and (g := published_gap(r))
    ]
    if not with_gaps:
        return []
    ett = [r for r, _ in with_gaps]

    def name(r: dict[str, Any]) -> str:
        return f"{r['dataset']} h{r['horizon']}"

    gap = {name(r): g[0] for r, g in with_gaps}
    on_all = [name(r) for r, g in with_gaps if not g[1]]
    close = [k for k, v in gap.items() if v <= 0.05]
    far = [f"{k} {100 * v:+.1f} %" for k, v in gap.items() if v > 0.05]  # +5.3 %, not "+5 %"
    beaten = [name(r) for r in ett if beaten_cell(r) == "all"]
    not_beaten = [f"{name(r)} ({beaten_cell(r)})" for r in ett if beaten_cell(r) != "all"]
    return [
        f"- ETT rows of the current config at input 336 ({len(ett)} rows, mean over "
        f"their seeds): MSE within 5 % of the best published or better (on the test windows it "
        f"scored{'; on every window at ' + ', '.join(on_all) if on_all else ''}) at {len(close)} "
        f"of {len(ett)}" + (f"; not at {', '.join(far)}" if far else "") + ". Below every "
        f"baseline's MSE and MAE at {len(beaten)} of {len(ett)}"
        + (f"; not at {', '.join(not_beaten)}" if not_beaten else "")
        + "."
    ]


def _order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Data set, input, horizon, then the variants in `VARIANTS`' order (others after, by name)."""
    names = list(VARIANTS)

    def variant(name: str) -> tuple[int, str]:
        return (names.index(name), "") if name in names else (len(names), name)

    return sorted(
        rows,
        key=lambda r: (
            DATASETS.index(r["dataset"]),
            r["in_steps"],
            r["horizon"],
            variant(r["variant"]),
        ),
    )


def _table(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The markdown table of `rows` and the configs of its rows not trained with today's one (in
    the order of their † marks)."""
    published = [m for m in PUBLISHED if m != "sources"]
    head = ["set", "input", "horizon", "variant", "seeds", "ELinFormer MSE", "MAE"]
    head += [f"{b} MSE / MAE" for b in BASELINE_NAMES]
    head += [f"{m} MSE" for m in published] + [f"{m} MAE" for m in published]
    head += [
        "ELinFormer MSE on the best published's windows",
        "MSE vs best published",
        "baselines beaten (MSE and MAE)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    others: list[str] = []  # the configs of rows not trained with the current one
    for r in rows:
        seeds = len(r["seeds"])
        current = config_summary(stored_row_config(r))
        trained = r["config"]
        if trained != current and trained not in others:
            others.append(trained)
        mark = "†" * (others.index(trained) + 1) if trained != current else ""
        cells = [
            r["dataset"],
            str(r["in_steps"]),
            str(r["horizon"]),
            r["variant"] + mark,
            str(seeds),
            _cell(r["mse"], seeds),
            _cell(r["mae"], seeds),
        ]
        cells += [_baseline_cell(r["baselines"].get(b)) for b in BASELINE_NAMES]
        for metric in ("mse", "mae"):
            cells += [
                _published_cell(m, r["dataset"], r["in_steps"], r["horizon"], metric)
                for m in published
            ]
        cells.append(_published_windows_cell(r))
        gap = published_gap(r)
        cells.append(
            f"{100 * gap[0]:+.0f} %" + ("" if gap[1] else " (all windows)") if gap else "–"
        )
        cells.append(beaten_cell(r))
        lines.append("| " + " | ".join(cells) + " |")
    return lines, others


def _notes(others: list[str]) -> list[str]:
    lines = [f"- {'†' * (i + 1)} trained with: {trained}." for i, trained in enumerate(others)]
    for source in (*PUBLISHED.get("sources", []), *PROTOCOL_SOURCES):
        lines.append(f"- {source}")
    return lines


def _intro(data: dict[str, Any], rows: dict[str, Any]) -> list[str]:
    lines = [
        "`python -m experiments.long_horizon --dataset <set> --in-steps <T> --horizon <H> --seeds "
        '0` per row (docs/training.md, "Long horizons"), on '
        f"{describe(data['machine'])}. Test MSE and MAE over every variable and horizon step, in "
        "units z-scored per variable with training statistics; standard cuts (ETT 12/4/4 months, "
        "exchange_rate 7:1:2). ELinFormer of `experiments/configs/long_horizon.py` (model dim 64, "
        "patches of 16 steps every 8, instance normalisation; "
        f"{config_summary(load_config_file(CONFIG))}; early stopping on validation MAE), "
        "budget capped for a shared 2-core CPU (see the config): far from the published models' "
        "budgets; rows trained with another config are in the appendix (docs/results_history.md). "
        "Baselines: test MSE / MAE of the same windows (the seasonal naive's period, chosen on "
        "validation, in brackets). Published numbers are copied from the papers named below the "
        'table; "MSE vs best published" is our MSE against the lower of DLinear\'s and '
        "PatchTST/42's (+ = worse), on the test windows that number scored (the papers dropped "
        "the last incomplete test batch; notes below the table); the last column says whether our "
        "mean MSE and MAE over every window are both below every baseline's (RMSE ranks as MSE).",
        "",
    ]
    check = rows.get(row_key("etth1", 336, 96, "eala"))
    if check:  # FITS (Xu et al., ICLR 2024, Table 2) reports "Repeat" at 1.295 / 0.713 there
        last = check["baselines"]["last_value"]
        lines[-2] += (
            " Protocol check: the last-value baseline's ETTh1 input-336 horizon-96 test MSE / MAE "
            f"here, {last['mse']:.3f} / {last['mae']:.3f}, against 1.295 / 0.713 for the same "
            'forecast ("Repeat") in FITS (Xu et al., ICLR 2024, Table 2).'
        )
    return lines


def _step_table(timing: list[dict[str, Any]]) -> list[str]:
    """Step time rows, each with softmax's time over EALA's where both ran (same shapes)."""
    current = config_summary(load_config_file(CONFIG))
    lines = [
        "| set | input | horizon | variant | batch | step ms | memory MiB | softmax / EALA |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in timing:
        pair = "softmax_temporal" if "softmax" not in t["variant"] else None
        base_variant = (
            t["variant"].replace("eala", "softmax_temporal")
            if t["variant"] == "eala"
            else t["variant"] + "_softmax_temporal"
        )
        base = next(
            (
                b
                for b in timing
                if b["variant"] == base_variant
                and (b["dataset"], b["in_steps"], b["horizon"], b["batch"])
                == (t["dataset"], t["in_steps"], t["horizon"], t["batch"])
            ),
            None,
        )
        ok = t.get("status") == "ok"
        ratio = (
            f"{base['median_s'] / t['median_s']:.2f}"
            if pair and ok and base and base.get("status") == "ok"
            else ""
        )
        step = f"{t['median_s'] * 1e3:.0f}" if ok else t.get("status", "?")
        older = "†" if t["config"] != current else ""
        lines.append(
            f"| {t['dataset']} | {t['in_steps']} | {t['horizon']} | {t['variant']}{older} | "
            f"{t['batch']} | {step} | {t['peak_bytes'] / 2**20:.0f} | {ratio} |"
        )
    return lines


_STEP_COMMAND = (
    "`python -m experiments.long_horizon --step-time --dataset <set> --in-steps <T> "
    "--horizon <H> --variant <v>`: median of repeated steps after warm-up, compile time "
    "apart, synthetic batch of the row's shapes, same process."
)


def _step_is_current(t: dict[str, Any]) -> bool:
    return t["config"] == config_summary(load_config_file(CONFIG))


def markdown(data: dict[str, Any]) -> list[str]:
    """The "Long horizons" section of docs/results.md: the rows (and step times) of the current
    config; the others are in `history_markdown`."""
    rows = data.get("rows", {})
    lines = ["## Long horizons", "", *_intro(data, rows)]
    order = _order([r for r in rows.values() if is_current(r)])
    table, others = _table(order)
    lines += table + [""]
    lines += target_line(order)
    lines += _notes(others)
    older = len(rows) - len(order)
    if older:
        lines.append(
            f"- {older} rows trained with earlier configs (the config's history, variants since "
            f"replaced) are in [the appendix]({HISTORY_FILE}#long-horizons-earlier-configs)."
        )
    lines.append("")
    timing = [t for t in data.get("step_time", []) if _step_is_current(t)]
    if timing:
        lines += [
            "### One training step, EALA against softmax temporal attention",
            "",
            _STEP_COMMAND,
            "",
            *_step_table(timing),
            "",
        ]
    return lines


def history_markdown(data: dict[str, Any]) -> list[str]:
    """The appendix of the "Long horizons" section: rows and step times of earlier configs, each
    with the config it was trained with (stored in the row)."""
    rows = data.get("rows", {})
    order = _order([r for r in rows.values() if not is_current(r)])
    timing = [t for t in data.get("step_time", []) if not _step_is_current(t)]
    if not order and not timing:
        return []
    lines = [
        "## Long horizons: earlier configs",
        "",
        "Rows of `experiments/results/long_horizon.json` trained with a config other than "
        "today's `experiments/configs/long_horizon.py` for their variant (the row's overrides, "
        "stored in the row, say what the variant changed); the protocol, columns and sources are "
        'those of docs/results.md, "Long horizons". Each row is marked with the config it was '
        "trained with, named below the table.",
        "",
    ]
    if order:
        table, others = _table(order)
        lines += table + [""] + _notes(others) + [""]
    if timing:
        current = config_summary(load_config_file(CONFIG))
        lines += [
            "### One training step, earlier configs",
            "",
            _STEP_COMMAND,
            "",
            *[
                f"Rows marked † measured with: {trained} (not the current config)."
                for trained in dict.fromkeys(t["config"] for t in timing)
                if trained != current
            ],
            "",
            *_step_table(timing),
            "",
        ]
    return lines
