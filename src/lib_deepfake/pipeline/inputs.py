"""Which files a scan covers: files, folders (recursive) and list files, each file once under one path.

Rules:
- A folder is walked recursively, following symlinks, but every directory is entered at most once (by device and
  inode), so a symlink loop is never followed round. Files are kept when their extension is a video extension
  (case-insensitive) unless ``all_files`` is set; the others are counted as ``skipped_non_video``.
- A file named on the command line is always scanned, whatever its extension (a non-video gets an error row) -
  except a list file: ``.txt``/``.lst``/``.list`` (or ``@PATH``) holds one path per line (``#`` comments; relative
  paths are relative to the list file's folder).
- The same file reached twice (two arguments, a symlink, a folder listed twice) is reported once, under the first
  path it was reached by. Paths are reported absolute (not resolved: a symlink's own name is kept), so ``--resume``
  works from any working directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lib_deepfake.errors import LibDeepfakeError

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    [
        ".mp4",
        ".m4v",
        ".mov",
        ".qt",
        ".mkv",
        ".webm",
        ".avi",
        ".wmv",
        ".asf",
        ".flv",
        ".f4v",
        ".mpg",
        ".mpeg",
        ".mpe",
        ".m2v",
        ".ts",
        ".mts",
        ".m2ts",
        ".3gp",
        ".3g2",
        ".ogv",
        ".ogg",
        ".mxf",
        ".vob",
        ".divx",
        ".y4m",
        ".h264",
        ".264",
        ".h265",
        ".265",
        ".hevc",
        ".ivf",
        ".rm",
        ".rmvb",
        ".dv",
        ".gif",
    ]
)
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})


class InputError(LibDeepfakeError):
    """An INPUT argument cannot be used (missing path, unreadable list file)."""


@dataclass
class Discovery:
    """The outcome of :func:`discover`.

    Attributes:
        files: absolute paths, in discovery order, each file once.
        skipped_non_video: files inside folders skipped for their extension.
        duplicates: paths that led to a file already listed.
        missing: list-file entries that do not exist (they still become rows: status error, "file not found").
        urls: URL inputs (object stores, http), each once, for drivers that scan them (None: URLs were not looked
            for).
    """

    files: list[Path] = field(default_factory=list)
    skipped_non_video: int = 0
    duplicates: int = 0
    missing: list[str] = field(default_factory=list)
    urls: list[str] | None = None

    def scan_keys(self) -> list[str]:
        """What the scan covers, as rows are keyed: the files (absolute paths), then the URLs."""
        return [str(p) for p in self.files] + list(self.urls or [])


def is_video_name(path: Path | str) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _identity(path: Path) -> str:
    # realpath, not (dev, inode): hard links are different names of one file, and reporting each is harmless,
    # while realpath collapses every symlink route to the same file.
    return os.path.realpath(path)


def discover(inputs: Iterable[str | Path], *, all_files: bool = False) -> Discovery:
    """Expand INPUT arguments into the list of files to scan.

    Raises:
        InputError: an argument does not exist or a list file cannot be read.
    """
    out = Discovery()
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = _identity(path)
        if key in seen:
            out.duplicates += 1
            return
        seen.add(key)
        out.files.append(path)

    for raw in inputs:
        text = str(raw)
        as_list = text.startswith("@")
        path = Path(os.path.abspath(os.path.expanduser(text[1:] if as_list else text)))
        if not os.path.lexists(path):
            raise InputError(f"input not found: {text}")
        if path.is_dir():
            _walk(path, add, out, all_files)
        elif as_list or path.suffix.lower() in LIST_EXTENSIONS:
            for entry in _read_list(path):
                if entry.is_dir():
                    _walk(entry, add, out, all_files)
                else:
                    if not os.path.lexists(entry):
                        out.missing.append(str(entry))
                    add(entry)
        else:
            add(path)  # named explicitly: scanned whatever its extension
    return out


def _read_list(path: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the list file {path}: {exc}") from exc
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(os.path.expanduser(line))
        entries.append(Path(os.path.abspath(p if p.is_absolute() else path.parent / p)))
    return entries


def _walk(root: Path, add, out: Discovery, all_files: bool) -> None:  # noqa: ANN001 - add is a local closure
    visited: set[tuple[int, int]] = set()

    def onerror(exc: OSError) -> None:
        logger.warning("cannot list %s: %s", getattr(exc, "filename", root), exc.strerror or exc)

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=onerror):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in visited:  # reached again through a symlink: a loop or a second route; never go round
            dirnames[:] = []
            continue
        visited.add(ident)
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not all_files and not is_video_name(name):
                out.skipped_non_video += 1
                continue
            if not os.path.exists(p):  # dangling symlink
                out.missing.append(str(p))
            add(p)


__all__ = ["LIST_EXTENSIONS", "VIDEO_EXTENSIONS", "Discovery", "InputError", "discover", "is_video_name"]
