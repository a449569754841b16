"""Fetching a data file from a URL the user gives (``load_dataset(..., url=...)``), safely.

The file is written to a temporary file beside its target and moved into place with ``os.replace``
only once the download is complete and has passed its checks, so a failed or rejected download never
leaves a partial file. A target that already exists is never downloaded again nor overwritten.
Nothing in this project downloads unless a URL is passed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from eala_jax.data.readers import DataFileError, FileSpec

DOWNLOAD_TIMEOUT_S = 60.0


class DownloadError(OSError):
    """A URL could not be read completely (unreachable, HTTP error, truncated); nothing was
    written."""


def fetch_file(
    url: str,
    target: Path,
    expected: FileSpec,
    *,
    accept: Callable[[Path], object] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> bool:
    """Downloads ``url`` to ``target`` unless ``target`` exists; returns True if it downloaded.

    The download goes to a temporary file in ``target``'s folder (created if needed); it is checked
    against ``expected``'s size and SHA-256 (those that are recorded), then
    ``accept(temporary_path)`` (which raises ``DataFileError`` to reject it; the temporary name ends
    with ``target.name``, so readers that go by suffix work), and only then moved to ``target``. On
    any failure the temporary file is removed and nothing is left at ``target``.

    Raises:
      DownloadError: the URL cannot be read, or fewer bytes arrived than announced.
      DataFileError: the download has the wrong size / SHA-256 or ``accept`` rejected it.
    """
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix=".download-", suffix=f"-{target.name}"
    )
    tmp = Path(tmp_name)
    try:
        digest, size, announced = hashlib.sha256(), 0, None
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(url, timeout=timeout) as response,
            ):
                length = response.headers.get("Content-Length")
                announced = int(length) if length and length.isdigit() else None
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    digest.update(block)
                    size += len(block)
        except (
            OSError,
            ValueError,
        ) as err:  # URLError / HTTPError / timeouts are OSError; a bad URL ValueError
            raise DownloadError(
                f"download of {url} to {target} failed ({type(err).__name__}: {err}); nothing was "
                "written"
            ) from err
        if announced is not None and size != announced:
            raise DownloadError(
                f"download of {url} to {target} is incomplete: {size} of {announced} bytes; "
                "nothing was written"
            )
        if expected.size is not None and size != expected.size:
            raise DataFileError(
                f"{url}: downloaded {size} bytes, but {expected.filename} should have "
                f"{expected.size} bytes; {target} was not written"
            )
        if expected.sha256 is not None and digest.hexdigest() != expected.sha256:
            raise DataFileError(
                f"{url}: downloaded file has SHA-256 {digest.hexdigest()}, but {expected.filename} "
                f"should have {expected.sha256}; {target} was not written"
            )
        if accept is not None:
            try:
                accept(tmp)
            except DataFileError as err:
                raise DataFileError(
                    f"{url}: downloaded file rejected, {target} was not written: {err}"
                ) from err
        if target.exists():  # appeared meanwhile (another process): keep it, never overwrite
            return False
        os.replace(tmp, target)
        return True
    finally:
        tmp.unlink(missing_ok=True)
