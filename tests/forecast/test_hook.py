"""The run-end hook: its failure never costs the run its results."""

from __future__ import annotations

from eala_jax.forecast import hook


def test_a_failing_hook_reports_and_returns_instead_of_raising(monkeypatch, capsys):
    def broken(run, results, best):
        raise OSError("disk full")

    monkeypatch.setattr(hook, "_at_finish", broken)
    extra, markdown = hook.at_finish(object(), {}, None)
    assert extra == {"forecast_error": "OSError: disk full"}
    assert "Forecast record not written: OSError: disk full" in markdown
    assert "Forecaster.load rebuilds it from the data" in capsys.readouterr().err


def test_interval_steps():
    assert hook.interval_steps(12) == (1, 3, 6, 12)
    assert hook.interval_steps(7) == (1, 3, 6, 7)
    assert hook.interval_steps(96) == (1, 3, 6, 12, 24, 48, 96)
    assert hook.interval_steps(1) == (1,)
