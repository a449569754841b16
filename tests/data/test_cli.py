"""python -m experiments.data: describe present sets, report absent ones with where to put them."""

import numpy as np

from experiments.data import main
from tests.data.fixtures import write_pems_npz


def test_describe_synthetic(capsys):
    assert main(["--dataset", "synthetic", "--describe"]) == 0
    out = capsys.readouterr().out
    assert "nodes 20, steps 4032 (5 min, 288 a day)" in out
    assert "windows train 2799, val 392, test 796" in out  # 7:1:2 of 4032 steps, 12 in / 12 out
    assert "scaler (training steps only): mean" in out and "missing:" in out


def test_absent_and_corrupt_sets_are_reported(tmp_path, capsys):
    assert main(["--dataset", "pems08", "--describe", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pems08: absent." in out and "PEMS08.npz" in out and "data_dir" in out
    (tmp_path / "pems08").mkdir()
    np.savez(tmp_path / "pems08" / "PEMS08.npz", data=np.ones((10, 170, 3)))
    assert main(["--dataset", "pems08", "--describe", "--data-dir", str(tmp_path)]) == 1
    assert "pems08: ERROR" in capsys.readouterr().out


def test_describe_full_size_pems08_fixture(tmp_path, capsys):
    write_pems_npz(tmp_path / "pems08" / "PEMS08.npz", num_steps=17856, num_nodes=170)
    assert main(["--dataset", "pems08", "--describe", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "nodes 170, steps 17856" in out and "split 6:2:2" in out
