"""eala_jax.bench: what benchmarks/ and experiments/ share. The machine module loads without JAX
(the PyTorch reference's Python has none), timing measures or refuses by memory, the inputs are
seeded, and the tables are built from the stored rows."""

import json
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from eala_jax.bench import inputs, machine, tables, timing

MACHINE = dict(device="cpu", backend="cpu", device_count=1, cpu="test cpu", cores=2, jax="0")


def test_machine_module_loads_by_path_without_jax():
    """As `benchmarks.torch_reference` loads it: by file path, with `import jax` failing."""
    path = pathlib.Path(machine.__file__)
    code = (
        "import importlib.util, sys\n"
        "sys.modules['jax'] = None\n"  # any `import jax` raises ImportError
        f"spec = importlib.util.spec_from_file_location('m', {str(path)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(m.cpu_name())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == machine.cpu_name() != ""


def test_machine_info_is_described_in_one_line():
    info = machine.machine_info()
    assert info["backend"] == "cpu" and info["device_count"] == 8  # tests/conftest.py
    assert machine.describe(MACHINE) == ("cpu (cpu, 1 device(s)); host test cpu, 2 cores; jax 0")


def test_measure_times_a_call_and_refuses_a_program_over_budget():
    x = jnp.ones((64, 64))
    result = timing.measure(lambda a: a @ a, x, repeats=3)
    assert result["status"] == "ok" and result["calls"] >= 3
    assert 0 < result["min_s"] <= result["median_s"]
    assert result["peak_bytes"] >= 2 * 64 * 64 * 4  # argument and output at least
    refused = timing.measure(lambda a: a @ a, x, budget_bytes=1.0)
    assert refused["status"].startswith("does not fit") and "median_s" not in refused


def test_make_inputs_are_seeded_and_shaped():
    q, k = inputs.make_inputs(np.random.default_rng(3), keys=17, kind="skewed", sharpness=0.5)
    q2, k2 = inputs.make_inputs(np.random.default_rng(3), keys=17, kind="skewed", sharpness=0.5)
    assert q.shape == (1, inputs.QUERIES, inputs.HEADS, inputs.DIM)
    assert k.shape == (1, 17, inputs.HEADS, inputs.DIM)
    np.testing.assert_array_equal(q, q2) and np.testing.assert_array_equal(k, k2)
    with pytest.raises(ValueError, match="kind must be 'gaussian' or 'skewed', got 'flat'"):
        inputs.make_inputs(np.random.default_rng(0), keys=4, kind="flat", sharpness=1.0)


def test_estimator_table_lists_the_estimators_of_the_rows_in_their_order():
    rows = [
        {"keys": 207, "kind": "gaussian", "level": "broad", "mean_entropy": 5.0, "log_m": 5.33,
         "errors": {"segments (32)": 0.25, "gaussian": 0.5}},
        {"keys": 883, "kind": "skewed", "level": "sharp", "mean_entropy": 3.0, "log_m": 6.78,
         "errors": {"segments (32)": 0.75, "gaussian": 1.5}},
    ]  # fmt: skip
    text = tables.estimator_table({"machine": MACHINE, "rows": rows})
    assert (
        text.splitlines()[0] == "| M | keys | level | mean H / log M | segments (32) | gaussian |"
    )
    assert "| 883 | skewed | sharp | 3.00 / 6.78 | 0.750 | 1.500 |" in text
    assert "| all | | | mean | 0.500 | 1.000 |" in text


def test_train_step_table_adds_stored_torch_rows_only_where_none_ran(tmp_path):
    def row(attention, batch, median_s):
        return {"nodes": 170, "batch": batch, "attention": attention, "status": "ok",
                "median_s": median_s, "compile_s": 1.0, "peak_bytes": 2**20}  # fmt: skip

    result = {"machine": MACHINE, "rows": [row("eala", 16, 0.1), row("softmax", 16, 0.3)]}
    stored = tmp_path / "torch.json"
    stored.write_text(json.dumps({"rows": [row(tables.TORCH, 16, 0.5)]}))
    merged = tables.with_stored_torch_rows(result, stored)
    text = tables.train_step_table(merged)
    assert "| 170 | 16 | eala | 100 | 1.0 | 1 | 3.00 | 5.00 |" in text
    assert "| 170 | 16 | PyTorch STAEformer (stored, not same-run) | 500 |" in text
    same_run = {**result, "rows": [*result["rows"], row(tables.TORCH, 16, 0.2)]}
    assert tables.with_stored_torch_rows(same_run, stored) == same_run
    assert tables.with_stored_torch_rows(result, tmp_path / "absent.json") is result


def test_attention_table_gives_the_baseline_over_each_method():
    def row(method, median_s, peak):
        return {"shape": "spatial", "batch": 4, "keys": 883, "mode": "forward", "method": method,
                "status": "ok", "median_s": median_s, "compile_s": 0.5, "peak_bytes": peak,
                "fraction_of_matmul": 0.25}  # fmt: skip

    result = {"machine": MACHINE, "matmul_flops_per_s": 2e10}
    result["rows"] = [row("eala", 0.001, 2**20), row("softmax", 0.004, 8 * 2**20)]
    text = tables.attention_table(result)
    assert "| spatial | 4 | 883 | forward | eala | 1.00 | 0.50 | 1 | 4.0 | 8.0 | 0.250 |" in text
    assert "float32 matmul: 20.0 GFLOP/s." in text
