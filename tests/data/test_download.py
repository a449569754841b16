"""load_dataset(url=...): downloads only from file:// URLs to fixtures in tmp dirs; nothing reaches
a network."""

import os

import numpy as np
import pytest

from eala_jax.data import DataFileError, DownloadError, load_dataset
from eala_jax.data.readers import sha256_of
from experiments.data import main
from tests.data.fixtures import write_distance_csv, write_pems_npz


@pytest.fixture
def remote(tmp_path):
    """A 'server' folder holding a small PEMS08.npz and its distance.csv, and an empty data
    directory."""
    server = tmp_path / "server"
    write_pems_npz(server / "PEMS08.npz", num_steps=300, num_nodes=4)
    write_distance_csv(server / "distance.csv", [(0, 1, 10.0), (2, 3, 20.0)])
    return server, tmp_path / "data"


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_lands_under_expected_name_and_loads_as_direct(remote):
    server, data_dir = remote
    series = load_dataset(
        "pems08",
        data_dir=data_dir,
        url=(server / "PEMS08.npz").as_uri(),
        graph_url=(server / "distance.csv").as_uri(),
        check_shape=False,
    )
    target = data_dir / "pems08" / "PEMS08.npz"
    assert leftovers(data_dir) == ["PEMS08.csv", "PEMS08.npz"]  # no temporary file left
    assert sha256_of(target) == sha256_of(server / "PEMS08.npz")
    direct = load_dataset(
        "pems08", path=server / "PEMS08.npz", graph_path=server / "distance.csv", check_shape=False
    )
    np.testing.assert_array_equal(series.values, direct.values)
    np.testing.assert_array_equal(series.adjacency, direct.adjacency)
    assert series.start_time == direct.start_time and str(target) in series.source
    again = load_dataset("pems08", data_dir=data_dir, check_shape=False)  # now a plain local file
    np.testing.assert_array_equal(again.values, direct.values)


def test_existing_file_is_not_downloaded_nor_overwritten(remote):
    server, data_dir = remote
    target = data_dir / "PEMS08" / "PEMS08.npz"  # the second folder spelling
    local = write_pems_npz(target, num_steps=200, num_nodes=3, seed=5)
    os.utime(target, (1_000_000_000, 1_000_000_000))
    before = (target.stat().st_mtime, sha256_of(target))
    series = load_dataset(
        "pems08", data_dir=data_dir, url=(server / "PEMS08.npz").as_uri(), check_shape=False
    )
    assert (target.stat().st_mtime, sha256_of(target)) == before
    assert leftovers(data_dir) == ["PEMS08.npz"] and series.num_nodes == 3
    np.testing.assert_array_equal(np.nan_to_num(series.values), local[:, :, 0].astype(np.float32))
    # the existing file is still verified as usual: a URL is no way around a wrong hash
    with pytest.raises(DataFileError, match="SHA-256"):
        load_dataset(
            "pems08",
            data_dir=data_dir,
            url=(server / "nowhere.npz").as_uri(),
            check_shape=False,
            sha256="0" * 64,
        )


def test_sha256_mismatch_leaves_nothing_and_names_url(remote):
    server, data_dir = remote
    url = (server / "PEMS08.npz").as_uri()
    with pytest.raises(
        DataFileError,
        match=rf"{url}: downloaded file has SHA-256 [0-9a-f]{{64}}, but PEMS08.npz "
        rf"should have {'1' * 64}; .*PEMS08.npz was not written",
    ):
        load_dataset("pems08", data_dir=data_dir, url=url, sha256="1" * 64, check_shape=False)
    assert leftovers(data_dir) == []
    good = load_dataset(
        "pems08",
        data_dir=data_dir,
        url=url,
        sha256=sha256_of(server / "PEMS08.npz"),
        check_shape=False,
    )
    assert good.num_nodes == 4


def test_wrong_shape_download_is_rejected(remote):
    server, data_dir = remote
    url = (server / "PEMS08.npz").as_uri()
    with pytest.raises(
        DataFileError,
        match=rf"{url}: downloaded file rejected, .*PEMS08.npz was not written: .*"
        r"shape \(300, 4\), but pems08 has \(T, N\) = \(17856, 170\)",
    ):
        load_dataset("pems08", data_dir=data_dir, url=url)
    assert leftovers(data_dir) == []


def test_unreachable_url_raises_clear_error(tmp_path, monkeypatch):
    url = (tmp_path / "missing" / "PEMS08.npz").as_uri()
    with pytest.raises(
        DownloadError,
        match=rf"download of {url} to .*pems08/PEMS08.npz failed .*nothing was written",
    ):
        load_dataset("pems08", data_dir=tmp_path / "data", url=url)
    assert leftovers(tmp_path / "data") == []
    with pytest.raises(DownloadError, match="download of not-a-url to .*failed"):
        load_dataset("pems08", data_dir=tmp_path / "data", url="not-a-url")
    monkeypatch.setattr("eala_jax.data.catalogue.default_data_dir", lambda: None)
    with pytest.raises(
        FileNotFoundError, match="url= given but no data directory to download PEMS08.npz into"
    ):
        load_dataset("pems08", url=url)


def test_generic_url_downloads_to_path(remote):
    server, _ = remote
    target = server.parent / "mine" / "series.npz"
    series = load_dataset(
        "generic",
        path=target,
        url=(server / "PEMS08.npz").as_uri(),
        step_minutes=5,
        start_time="2020-01-01T00:00",
    )
    assert target.is_file() and series.num_nodes == 4
    with pytest.raises(ValueError, match=r"load_dataset\('synthetic'\): unknown option\(s\) url"):
        load_dataset("synthetic", url=target.as_uri())


def test_cli_url(remote, capsys):
    server, data_dir = remote
    url = (server / "PEMS08.npz").as_uri()
    assert (
        main(["--dataset", "pems08", "--data-dir", str(data_dir), "--url", url]) == 1
    )  # shape check fails
    assert "pems08: ERROR" in capsys.readouterr().out and leftovers(data_dir) == []
    write_pems_npz(server / "full" / "PEMS08.npz", num_steps=17856, num_nodes=170)
    full_url = (server / "full" / "PEMS08.npz").as_uri()
    assert main(["--dataset", "pems08", "--data-dir", str(data_dir), "--url", full_url]) == 0
    assert "pems08: present, 17856 x 170" in capsys.readouterr().out
    assert (data_dir / "pems08" / "PEMS08.npz").is_file()
