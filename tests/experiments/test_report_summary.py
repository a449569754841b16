"""experiments.report_summary: the summary opening docs/results.md states each claim's answer from
the numbers it is given, and every link lands on a heading of the file."""

import pathlib
import re

from experiments import report_summary as rs


def test_anchor_is_githubs():
    assert rs.anchor("1. Cost of one attention call (CPU)") == "#1-cost-of-one-attention-call-cpu"
    assert (
        rs.anchor("Attention maps of a_b (c, d), 64 windows")
        == "#attention-maps-of-a_b-c-d-64-windows"
    )


def test_cost_line_counts_the_targets_met_and_names_each_against_softmax():
    targets = [
        ("EALA ≥ 20× faster than softmax at S = 883 (batch 192)", "13.8×", False),
        ("≥ 20× less memory than softmax at S = 8600", None, None),
        ("EALA within 1.2× of linear at S = 883, batch 192", "1.20×", False),
        ("EALA within 1.2× of linear at S = 8600, batch 2", "0.89×", True),
    ]
    line = rs.cost_line(targets)
    assert line.startswith("**Cost of one attention call (CPU)**: 1 of 4 targets met.")
    assert "(batch 192): 13.8×, not met;" in line
    assert "less memory than softmax at S = 8600: not measured;" in line
    assert "EALA within 1.2× of linear: 1 of 2 sizes" in line


def test_step_line_gives_each_size_against_softmax_and_pytorch():
    def row(nodes, batch, attention, median_s=None, **extra):
        status = "ok" if median_s else "does not fit"
        return dict(nodes=nodes, batch=batch, attention=attention, status=status,
                    median_s=median_s, **extra)  # fmt: skip

    rows = [row(170, 16, "eala", 1.0), row(170, 16, "softmax", 1.5), row(170, 4, "eala", 0.2)]
    rows += [row(883, 16, "eala", 2.0), row(883, 16, "softmax")]
    rows += [row(883, 16, "torch_staeformer", 10.0, stored=True)]
    line = rs.step_line({"rows": rows})
    assert "N = 170, batch 16: 1.50× the softmax backbone's speed;" in line
    assert "N = 883, batch 16: softmax does not fit, 5.00× the PyTorch original's (stored" in line
    assert "batch 4" not in line


def test_reference_line_names_the_configs_that_lose():
    configs = [("b_softmax", 1, 3.5, []), ("b_elinformer", 3, 3.4, [("last_value", "mae", 3)])]
    line = rs.reference_line("b", configs, "last value 4.000")
    assert "test MAE (12-step mean) b_elinformer 3.400 (3 seeds), b_softmax 3.500;" in line
    assert "b_softmax beat every baseline, b_elinformer do not" in line
    assert "(best baseline: last value 4.000) ([table](#b))." in line


def test_the_committed_summary_links_to_headings_of_its_file():
    text = pathlib.Path("docs/results.md").read_text()
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        base = rs.anchor(heading)
        anchors.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"\]\((#[^)]+)\)", summary)
    assert len(links) >= 8 and set(links) <= anchors
