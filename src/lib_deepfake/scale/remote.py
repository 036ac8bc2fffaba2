"""Videos named by URL: listing object-store prefixes, and staging one object to a local file for the decoder.

Our decoders open **local files** (PyAV checks the file before handing it to libavformat; DALI reads bytes), so a
URL input is copied to a temporary file on the worker, scanned, and deleted; its row keeps the URL as ``path``.

Schemes:

- ``http://``, ``https://``: a plain GET with the standard library (``urllib``); the server must allow it
  (presigned object-store URLs work).
- ``s3://``, ``gs://`` (``gcs://``), ``abfs://``, ``hdfs://``, ``file://``: :mod:`pyarrow.fs` (installed with
  ``ray[data]``), with the credentials of the worker's environment (AWS_* / GOOGLE_APPLICATION_CREDENTIALS / instance
  roles). A URL ending in ``/`` is a prefix and is listed recursively (video extensions only, unless ``all_files``).
- anything else: :mod:`fsspec` when it is installed, with its own drivers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.pipeline.config import DEFAULT_TIMEOUT_S

logger = logging.getLogger(__name__)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
HTTP_SCHEMES = ("http", "https")
ARROW_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs", "file")
_CHUNK = 4 << 20


class RemoteReadError(LibDeepfakeError):
    """A URL input cannot be listed or downloaded (missing object, no credentials, network error)."""


def is_url(value: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` (a Windows drive letter ``C:\\`` is not a URL)."""
    return bool(_URL.match(str(value)))


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme.lower()


def url_name(url: str) -> str:
    """The file name a URL points at (percent-decoded, query string ignored)."""
    return PurePosixPath(unquote(urlsplit(url).path)).name or urlsplit(url).netloc


def _arrow_fs(url: str):  # noqa: ANN202 - pyarrow types are optional
    from lib_deepfake._optional import require

    pafs = require("pyarrow.fs", purpose="reading s3://, gs://, hdfs:// or file:// inputs", extra="ray")
    try:
        return pafs.FileSystem.from_uri(url)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises OSError/ArrowInvalid/... with the reason in the text
        raise RemoteReadError(f"cannot open {url}: {' '.join(str(exc).split())}") from exc


def expand_urls(urls: Iterable[str], *, all_files: bool = False) -> list[str]:
    """Expand prefix URLs (ending in ``/``) into the object URLs under them; other URLs pass through.

    Raises:
        RemoteReadError: a prefix cannot be listed (an http(s) URL cannot be listed at all).
    """
    from lib_deepfake.pipeline.inputs import is_video_name

    out: list[str] = []
    seen: set[str] = set()
    for url in urls:
        if not url.endswith("/"):
            if url not in seen:
                seen.add(url)
                out.append(url)
            continue
        scheme = scheme_of(url)
        if scheme in HTTP_SCHEMES:
            raise RemoteReadError(f"cannot list {url}: http(s) has no listing; give object URLs or a list file")
        if scheme not in ARROW_SCHEMES:
            raise RemoteReadError(f"cannot list {url}: listing works for {', '.join(ARROW_SCHEMES)} URLs")
        import pyarrow.fs as pafs

        fs, base = _arrow_fs(url)
        try:
            infos = fs.get_file_info(pafs.FileSelector(base.rstrip("/"), recursive=True))
        except Exception as exc:  # noqa: BLE001
            raise RemoteReadError(f"cannot list {url}: {' '.join(str(exc).split())}") from exc
        parts = urlsplit(url)
        for info in sorted(infos, key=lambda i: i.path):
            if info.type != pafs.FileType.File:
                continue
            if not all_files and not is_video_name(info.path):
                continue
            # pyarrow paths are "bucket/key" for object stores and "/abs/path" for file:// and hdfs://
            if info.path.startswith("/"):
                full = f"{parts.scheme}://{parts.netloc}{info.path}"
            else:
                full = f"{parts.scheme}://{info.path}"
            if full not in seen:
                seen.add(full)
                out.append(full)
    return out


def stage(url: str, dest_dir: Path | str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Path:
    """Copy the object at ``url`` to a new file in ``dest_dir``; the caller deletes it.

    The file keeps the URL's extension (containers are sniffed by content, but a wrong suffix makes error messages
    confusing) and gets a hash prefix so that two URLs with the same name never collide.

    Raises:
        RemoteReadError: the object cannot be read.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(url.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    name = url_name(url)[-80:] or "video"
    dest = dest_dir / f"{digest}-{name}"
    tmp = dest.with_name(dest.name + ".part")
    scheme = scheme_of(url)
    t0 = time.perf_counter()
    try:
        if scheme in HTTP_SCHEMES:
            _fetch_http(url, tmp, timeout_s)
        elif scheme in ARROW_SCHEMES:
            _fetch_arrow(url, tmp)
        else:
            _fetch_fsspec(url, tmp)
        os.replace(tmp, dest)
    except RemoteReadError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:  # noqa: BLE001 - every transport failure becomes one error row
        tmp.unlink(missing_ok=True)
        raise RemoteReadError(f"cannot download {url}: {type(exc).__name__}: {' '.join(str(exc).split())}") from exc
    logger.debug("staged %s (%d bytes) in %.2f s", url, dest.stat().st_size, time.perf_counter() - t0)
    return dest


def _fetch_http(url: str, dest: Path, timeout_s: float) -> None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"User-Agent": "lib-deepfake"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp, open(dest, "wb") as fh:  # noqa: S310
            shutil.copyfileobj(resp, fh, _CHUNK)
    except urllib.error.HTTPError as exc:
        raise RemoteReadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise RemoteReadError(f"cannot download {url}: {exc.reason}") from exc


def _fetch_arrow(url: str, dest: Path) -> None:
    fs, path = _arrow_fs(url)
    try:
        with fs.open_input_stream(path) as src, open(dest, "wb") as fh:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                fh.write(chunk)
    except FileNotFoundError as exc:
        raise RemoteReadError(f"cannot download {url}: no such object") from exc


def _fetch_fsspec(url: str, dest: Path) -> None:
    from lib_deepfake._optional import is_installed

    if not is_installed("fsspec"):
        raise RemoteReadError(f"cannot read {url}: the {scheme_of(url)}:// scheme needs fsspec (pip install fsspec) "
                              f"or one of {', '.join(HTTP_SCHEMES + ARROW_SCHEMES)}")  # fmt: skip
    import fsspec

    with fsspec.open(url, "rb") as src, open(dest, "wb") as fh:
        shutil.copyfileobj(src, fh, _CHUNK)


__all__ = ["ARROW_SCHEMES", "HTTP_SCHEMES", "RemoteReadError", "expand_urls", "is_url", "scheme_of", "stage",
           "url_name"]  # fmt: skip
