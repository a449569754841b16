"""python -m experiments.forecast on the tiny trained run: the csv, the plot, refusals before
anything is written, and the exported artefact reproduced in a process that cannot import
eala_jax."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from eala_jax.data import load_dataset
from eala_jax.data.synthetic import write_series_csv
from eala_jax.forecast import BaselineWarning, Forecaster
from experiments import forecast as cli
from tests.forecast.conftest import trained  # noqa: F401  (the shared tiny run)

SERIES = dict(num_days=3, num_nodes=6)  # the tiny run's data (tests/forecast/conftest.py)


@pytest.fixture(scope="module")
def forecaster(trained):  # noqa: F811
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        return Forecaster.load(trained[0])


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_and_plot_from_the_end_of_the_training_data(trained, forecaster, tmp_path, capsys):  # noqa: F811
    out, png = tmp_path / "f.csv", tmp_path / "f.png"
    assert cli.main(["--workdir", str(trained[0]), "--out", str(out), "--plot", str(png)]) == 0
    assert "warning: " in capsys.readouterr().err  # the tiny run loses to a baseline somewhere
    rows = _rows(out)
    assert list(rows[0]) == [
        "time", "node", "horizon", "forecast",
        "lower_80", "upper_80", "lower_95", "upper_95", "served",
    ]  # fmt: skip
    assert len(rows) == 12 * 6
    series = load_dataset("synthetic", **SERIES)
    step = np.timedelta64(5, "m")
    expected = forecaster.predict(
        series.values[-288:], start_time=series.start_time + step * (series.num_steps - 288)
    )
    first = series.start_time + step * series.num_steps
    assert rows[0]["time"] == str(first) and rows[-1]["time"] == str(first + 11 * step)
    got = np.array([float(r["forecast"]) for r in rows]).reshape(12, 6)
    np.testing.assert_allclose(got, expected.forecast, rtol=1e-5)
    lo, hi = (
        np.array([float(r[k]) for r in rows]).reshape(12, 6) for k in ("lower_95", "upper_95")
    )
    np.testing.assert_allclose(lo, expected.lower[0.95], rtol=1e-5)
    assert (lo < got).all() and (got < hi).all()
    assert png.stat().st_size > 10_000


def test_fallback_and_at(trained, forecaster, tmp_path):  # noqa: F811
    out = tmp_path / "f.csv"
    at = "2024-01-03T12:00"
    args = ["--workdir", str(trained[0]), "--out", str(out), "--at", at, "--fallback"]
    assert cli.main(args) == 0
    rows = _rows(out)
    assert rows[0]["time"] == "2024-01-03T12:00"
    served = [rows[6 * h]["served"] for h in range(12)]
    assert served == forecaster.guard.served("mae")
    assert all((r["lower_80"] == "") == (r["served"] != "model") for r in rows)


def test_an_existing_out_is_kept_without_force(trained, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "f.csv"
    out.write_text("mine\n")
    assert cli.main(["--workdir", str(trained[0]), "--out", str(out)]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_text() == "mine\n"
    assert cli.main(["--workdir", str(trained[0]), "--out", str(out), "--force"]) == 0
    assert len(_rows(out)) == 72


def _data_file(tmp_path, values=None, *, step=5, rename=None):
    series = load_dataset("synthetic", **SERIES)
    changes = {"step_minutes": step, "steps_per_day": 1440 // step}
    if values is not None:
        changes["values"] = values
    if rename:
        changes["node_ids"] = tuple(rename.get(i, i) for i in series.node_ids)
    series = type(series)(**{**series.__dict__, **changes})
    path = tmp_path / "data.csv"
    write_series_csv(series, str(path))
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("other_columns", r"columns are not the run's nodes: unknown \['pump_7'\], missing"),
        ("other_step", "timestamps 10 min apart, but the run's step is 5 min"),
        ("all_missing", "last 12 steps are all missing"),
        ("too_early", "only 3 steps of history before it; the model reads in_steps=12"),
        ("off_grid", "is not a step of the data"),
        ("no_best", "holds no best checkpoint"),
        ("bad_levels", "--levels must be distinct numbers strictly between 0 and 1"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(trained, tmp_path, capsys, case, message):  # noqa: F811
    workdir = trained[0]
    out = tmp_path / "f.csv"
    extra: list[str] = []
    values = load_dataset("synthetic", **SERIES).values.copy()
    if case == "other_columns":
        extra = ["--data", str(_data_file(tmp_path, rename={"synthetic_4": "pump_7"}))]
    elif case == "other_step":
        extra = ["--data", str(_data_file(tmp_path, step=10))]
    elif case == "all_missing":
        values[-12:] = np.nan
        extra = ["--data", str(_data_file(tmp_path, values))]
    elif case == "too_early":
        extra = ["--at", "2024-01-01T00:15"]
    elif case == "off_grid":
        extra = ["--at", "2024-01-02T00:02"]
    elif case == "no_best":
        workdir = tmp_path / "run"
        shutil.copytree(trained[0], workdir)
        shutil.rmtree(workdir / "best")
    elif case == "bad_levels":
        extra = ["--levels", "0.8", "95"]
    if "--data" in extra:
        extra += ["--time-column", "time"]
    code = cli.main(
        ["--workdir", str(workdir), "--out", str(out), "--plot", str(tmp_path / "p.png"), *extra]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert message in err or __import__("re").search(message, err), err
    assert not out.exists() and not (tmp_path / "p.png").exists()


def test_a_data_file_with_the_columns_in_another_order(trained, forecaster, tmp_path):  # noqa: F811
    series = load_dataset("synthetic", **SERIES)
    order = [5, 3, 1, 0, 2, 4]
    shuffled = type(series)(
        **{
            **series.__dict__,
            "values": series.values[:, order],
            "node_ids": tuple(series.node_ids[i] for i in order),
        }
    )
    data = tmp_path / "data.csv"
    write_series_csv(shuffled, str(data))
    out, ref = tmp_path / "f.csv", tmp_path / "ref.csv"
    workdir = str(trained[0])
    assert cli.main(["--workdir", workdir, "--out", str(ref)]) == 0
    args = ["--workdir", workdir, "--out", str(out), "--data", str(data), "--time-column", "time"]
    assert cli.main(args) == 0
    assert _rows(out) == _rows(ref)


LOADER = """
import sys; sys.modules["eala_jax"] = None  # this process cannot import eala_jax
try:
    import eala_jax  # noqa
    raise SystemExit("eala_jax was importable")
except ImportError:
    pass
import json, jax, numpy as np
serve = jax.export.deserialize(open("model.bin", "rb").read())
meta = json.load(open("model.json"))
start = np.array([np.datetime64(t, "m").astype(np.int64) for t in sys.argv[1:]], np.int32)
forecast, lower, upper = serve.call(np.load("history.npy").astype(np.float32), start)
np.savez("served.npz", forecast=forecast, lower=lower, upper=upper, levels=meta["levels"])
"""


def test_the_export_is_served_without_eala_jax(trained, forecaster, tmp_path):  # noqa: F811
    pytest.importorskip("flatbuffers", reason="jax.export serialization needs flatbuffers")
    model = tmp_path / "model.bin"
    assert cli.main(["--workdir", str(trained[0]), "--export", str(model)]) == 0
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["node_ids"] == list(forecaster.node_ids) and meta["step_minutes"] == 5
    series = load_dataset("synthetic", **SERIES)
    step = np.timedelta64(5, "m")
    starts = [300, 500, 700]  # a batch of 3 (the artefact's batch is symbolic)
    history = np.stack([series.values[s - 12 : s] for s in starts])
    times = [str(series.start_time + step * (s - 12)) for s in starts]
    np.save(tmp_path / "history.npy", history)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-c", LOADER, *times],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    served = np.load(tmp_path / "served.npz")
    expected = forecaster.predict(history, start_time=np.array(times, "datetime64[m]"))
    assert np.max(np.abs(served["forecast"] - expected.forecast)) <= 1e-5
    # The bounds are forecast +- half-width in float32: the forecast's difference plus one
    # rounding of the sum (one float32 spacing of the bound).
    for i, level in enumerate(served["levels"]):
        for got, want in ((served["lower"][:, i], expected.lower[level]),
                          (served["upper"][:, i], expected.upper[level])):  # fmt: skip
            assert (np.abs(got - want) <= 1e-5 + np.spacing(np.abs(want))).all()
