"""experiments.convert: a tiny trained softmax run converted to other attentions, before and after
a few fine-tuning steps; the transplant of its parameters; the report's tables; bad input."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from eala_jax.ops import EalaOptions, LinearOptions, SoftmaxOptions
from eala_jax.train import Checkpoints, config_to_dict, train_and_evaluate
from eala_jax.train import session as session_module
from eala_jax.train.transplant import transplant, with_attention
from experiments import convert, report_convert
from tests.train.train_helpers import tiny_config, with_model

SOFTMAX = with_model(
    tiny_config(max_epochs=2, max_steps_per_epoch=3, check_memory=False),
    temporal_attention=SoftmaxOptions(),
    spatial_attention=SoftmaxOptions(),
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(workdir, results) of a tiny softmax run on both axes."""
    workdir = tmp_path_factory.mktemp("convert") / "softmax"
    return workdir, train_and_evaluate(SOFTMAX, workdir)


@pytest.fixture(scope="module")
def converted(run, tmp_path_factory):
    """The output document of converting it to EALA and elu+1, both scopes, at 0 and 2
    fine-tuning steps."""
    workdir, _ = run
    out = tmp_path_factory.mktemp("out") / "convert_synthetic.json"
    argv = ["--workdir", str(workdir), "--to", "eala", "linear", "--scope", "spatial", "both"]
    argv += ["--finetune-steps", "2", "0", "--seed", "3", "--entropy-windows", "4"]
    assert convert.main([*argv, "--out", str(out)]) == 0
    return json.loads(out.read_text())


def _mae(doc, scope, attention, steps, scratch=False):
    (row,) = [
        r
        for r in doc["rows"]
        if (r["scope"], r["attention"], r["steps"], r["from_scratch"])
        == (scope, attention, steps, scratch)
    ]
    return row["test_mae"]


def test_converting_to_softmax_itself_reproduces_the_runs_test_mae_exactly(
    run, converted, tmp_path
):
    workdir, results = run
    out = tmp_path / "identity.json"
    argv = ["--workdir", str(workdir), "--to", "softmax", "--scope", "spatial", "both"]
    argv += ["--finetune-steps", "0", "--entropy-windows", "4"]
    assert convert.main([*argv, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    expected = results["test"]["model"]["mae_mean"]
    assert _mae(doc, "reference", "softmax", 0) == expected
    assert _mae(converted, "reference", "softmax", 0) == expected
    for scope in ("spatial", "both"):
        assert _mae(doc, scope, "softmax", 0) == expected
    assert doc["rows"][0]["entropy"] == converted["rows"][0]["entropy"]  # the same maps


def test_converted_rows_differ_from_the_reference_and_from_each_other(converted):
    reference = _mae(converted, "reference", "softmax", 0)
    found = {
        (scope, name): _mae(converted, scope, name, 0)
        for scope in ("spatial", "both")
        for name in ("eala", "linear")
    }
    assert all(np.isfinite(v) and v != reference for v in found.values())
    assert len(set(found.values())) == len(found)
    for scope in ("spatial", "both"):  # fine-tuning moved every model
        for name in ("eala", "linear"):
            assert _mae(converted, scope, name, 2) != _mae(converted, scope, name, 0)


def test_rows_carry_seed_learning_rate_and_map_entropy(run, converted):
    rows = [r for r in converted["rows"] if r["scope"] != "reference"]
    assert len(rows) == 2 * 2 * 2 and all(r["seed"] == 3 for r in rows)
    # The run's learning rate at its best checkpoint: 1e-3 x 0.1 after the milestone epoch 1.
    best_epoch = run[1]["best_epoch"]
    assert all(r["learning_rate"] == pytest.approx(1e-3 if best_epoch == 1 else 1e-4) for r in rows)
    reference = converted["rows"][0]
    assert reference["scope"] == "reference" and set(reference["entropy"]) == {
        "temporal",
        "spatial",
    }
    assert 0 < reference["entropy"]["spatial"] <= np.log(6) + 1e-6  # at most log N
    # Converting the spatial layers keeps their queries and keys: the same maps at step 0.
    spatial_eala = next(r for r in rows if r["attention"] == "eala" and r["steps"] == 0)
    assert spatial_eala["entropy"]["spatial"] == reference["entropy"]["spatial"]
    both_eala = next(r for r in rows if r["scope"] == "both" and r["steps"] == 0)
    assert both_eala["entropy"]["temporal"] == reference["entropy"]["temporal"]


def test_fine_tuning_changes_the_parameters(run, converted):
    workdir, _ = run
    lr = converted["rows"][1]["learning_rate"]
    target = with_attention(SOFTMAX, LinearOptions(), scope="spatial")
    session = convert._session(target, seed=3, learning_rate=lr, milestones=())  # compiled above
    checkpoints = Checkpoints(workdir)
    trained = checkpoints.restore_best(convert._session(SOFTMAX).initial_state)
    checkpoints.close()
    state, fresh = transplant(trained, session.initial_state)
    assert fresh == ()
    after, measurements = session.train_steps(
        session.dp.put_state(state), session.train_batches(3), 2
    )
    assert len(measurements) == 2 and all(np.isfinite(m["loss"]) for m in measurements)
    after = session.dp.host_state(after)
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(after[0]), jax.tree.leaves(state[0]), strict=True)
    ]
    assert sum(moved) > len(moved) // 2


def test_from_scratch_rows_train_the_attention_from_random_init(run, tmp_path):
    workdir, _ = run
    out = tmp_path / "scratch.json"
    argv = ["--workdir", str(workdir), "--to", "linear", "--finetune-steps", "0", "2"]
    argv += ["--from-scratch", "--entropy-windows", "0", "--out", str(out)]
    assert convert.main(argv) == 0
    doc = json.loads(out.read_text())
    assert _mae(doc, "spatial", "linear", 2, scratch=True) != _mae(doc, "spatial", "linear", 2)
    assert not [r for r in doc["rows"] if r["from_scratch"] and r["steps"] == 0]
    # --merge keeps the rows of another seed.
    assert convert.main([*argv, "--merge", "--seed", "5"]) == 0
    merged = json.loads(out.read_text())
    assert {r["seed"] for r in merged["rows"]} == {0, 5} and len(merged["rows"]) == 8


def test_report_tables_and_plot(converted, tmp_path):
    lines = report_convert.convert_table(converted)
    assert lines[0].startswith("| scope | attention | seeds | MAE 0 steps | MAE 2 steps |")
    assert len(lines) == 2 + 1 + 4
    report_convert.convert_plot(converted, tmp_path / "convert.png")
    assert (tmp_path / "convert.png").stat().st_size > 0
    accuracy = {"variants": {"eala": {"mae@mean": [1.5, 0.1], "seeds": 3}}}
    table = report_convert.entropy_matching_table(converted, accuracy)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table[2:]}
    eala = f"{_mae(converted, 'spatial', 'eala', 0):.3f}"
    assert "1.500 ± 0.100 (3)" in rows["EALA θ* (entropy matching)"]
    assert eala in rows["EALA θ* (entropy matching)"]
    assert rows["LLN"].count("—") == 4  # not converted here, not trained from scratch
    section = report_convert.convert_section([converted], tmp_path, {})
    assert "### What entropy matching buys" in section


def _argv(workdir, out, *extra):
    return ["--workdir", str(workdir), "--to", "eala", "--out", str(out), *extra]


@pytest.mark.parametrize(
    "case, message",
    [
        ("eala_run", "not a softmax run on the axes converted: model.spatial_attention is 'eala'"),
        ("temporal_eala_both", "model.temporal_attention is 'eala' (--scope both"),
        ("unknown", "--to 'nonsense': unknown attention 'nonsense'; expected one of eala"),
        ("bad_option", "unknown option(s) ['thetta'] for attention 'eala'"),
        ("negative", "--finetune-steps [0, -1]: expected integers >= 0"),
        ("exists", "exists: pass --force to replace it or --merge to add to it"),
        ("no_config", "holds no config.json"),
        ("no_best", "no best checkpoint"),
    ],
)
def test_bad_input_fails_with_a_clear_error_before_any_work(
    case, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(session_module.Session, "build", lambda *a: pytest.fail("work started"))
    workdir, out = tmp_path / "run", tmp_path / "out.json"
    workdir.mkdir()
    config = SOFTMAX
    if case == "eala_run":
        config = tiny_config()  # EALA in the spatial layers
    if case == "temporal_eala_both":
        config = with_model(
            tiny_config(), temporal_attention=EalaOptions(), spatial_attention=SoftmaxOptions()
        )
    if case != "no_config":
        (workdir / "config.json").write_text(json.dumps(config_to_dict(config)))
    if case != "no_best":
        (workdir / "best" / "7").mkdir(parents=True)
    argv = _argv(workdir, out)
    if case == "temporal_eala_both":
        argv += ["--scope", "spatial", "both"]
    if case == "unknown":
        argv[3] = "nonsense"
    if case == "bad_option":
        argv[3] = "eala:thetta=1"
    if case == "negative":
        argv += ["--finetune-steps", "0", "-1"]
    if case == "exists":
        out.write_text("{}")
    assert convert.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or case == "exists"
    if case == "exists":
        assert out.read_text() == "{}"


def test_parse_attention_reads_options_as_json():
    label, options = convert.parse_attention("eala:theta=1.0,estimator=cumulant3")
    assert label == "eala:estimator=cumulant3,theta=1.0"
    assert options.theta == 1.0 and options.estimator == "cumulant3"
    assert report_convert._same_attention("eala:theta=1", "eala:theta=1.0")
    assert not report_convert._same_attention("eala", "eala:theta=1.0")


def test_results_md_gets_the_conversion_sections_when_a_convert_file_exists(
    converted, tmp_path, monkeypatch
):
    from experiments import report

    monkeypatch.chdir(tmp_path)
    report.main([])
    assert "Conversion without retraining" not in (tmp_path / "docs/results.md").read_text()
    results = tmp_path / "experiments/results"
    results.mkdir(parents=True)
    (results / "convert_synthetic.json").write_text(json.dumps(converted))
    report.main([])
    text = (tmp_path / "docs/results.md").read_text()
    assert "### Conversion without retraining" in text and "#### synthetic" in text
    assert "### What entropy matching buys" in text
    assert (tmp_path / "docs/figures/convert_synthetic.png").is_file()
