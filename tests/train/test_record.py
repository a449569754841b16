"""The run's forecast record: its failure never costs the run its results."""

from __future__ import annotations

from eala_jax.train import record


def test_a_failing_record_reports_and_returns_instead_of_raising(monkeypatch, capsys):
    def broken(run, results, val, test):
        raise OSError("disk full")

    monkeypatch.setattr(record, "_write_record", broken)
    extra, markdown = record.write_record(object(), {}, None, None)
    assert extra == {"forecast_error": "OSError: disk full"}
    assert "Forecast record not written: OSError: disk full" in markdown
    assert "Forecaster.load rebuilds it from the data" in capsys.readouterr().err


def test_interval_steps():
    assert record.interval_steps(12) == (1, 3, 6, 12)
    assert record.interval_steps(7) == (1, 3, 6, 7)
    assert record.interval_steps(96) == (1, 3, 6, 12, 24, 48, 96)
    assert record.interval_steps(1) == (1,)
