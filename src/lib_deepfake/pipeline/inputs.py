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
- :func:`stream_inputs` checks the arguments at once (a missing input or an unreadable list file fails before
  anything is scanned) and walks folders lazily: a scan of a tree of 100,000 files starts on the first file while
  the walk goes on, and holds no list of the files. :func:`discover` is the same walk, listed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
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

    #: files found so far (all of them once ``complete``)
    count: int = 0
    #: False while a streamed walk has not ended
    complete: bool = True
    _walk: Callable[[], Iterator[Path]] | None = field(default=None, repr=False)

    def scan_keys(self) -> list[str]:
        """What the scan covers, as rows are keyed: the files (absolute paths), then the URLs."""
        return [str(p) for p in self.files] + list(self.urls or [])

    def iter_keys(self) -> Iterator[str]:
        """The same keys as :meth:`scan_keys`, one at a time; a streamed discovery walks its folders meanwhile and is
        ``complete`` once this is exhausted (only one pass)."""
        if self._walk is None:
            yield from self.scan_keys()
            return
        walk, self._walk = self._walk, None
        for p in walk():
            yield str(p)
        self.complete = True
        yield from self.urls or []


def is_video_name(path: Path | str) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _identity(path: Path) -> str:
    # realpath, not (dev, inode): hard links are different names of one file, and reporting each is harmless,
    # while realpath collapses every symlink route to the same file.
    return os.path.realpath(path)


def stream_inputs(inputs: Iterable[str | Path], *, all_files: bool = False) -> Discovery:
    """Check INPUT arguments now; the returned discovery walks them while :meth:`Discovery.iter_keys` is read.

    Raises:
        InputError: an argument does not exist or a list file cannot be read.
    """
    out = Discovery(complete=False)
    steps: list[tuple[str, Path]] = []  # ("walk" | "listed" | "named", path)
    for raw in inputs:
        text = str(raw)
        as_list = text.startswith("@")
        path = Path(os.path.abspath(os.path.expanduser(text[1:] if as_list else text)))
        if not os.path.lexists(path):
            raise InputError(f"input not found: {text}")
        if path.is_dir():
            steps.append(("walk", path))
        elif as_list or path.suffix.lower() in LIST_EXTENSIONS:
            steps.extend(("walk" if entry.is_dir() else "listed", entry) for entry in _read_list(path))
        else:
            steps.append(("named", path))  # named explicitly: scanned whatever its extension

    def walk() -> Iterator[Path]:
        seen: set[str] = set()
        for kind, path in steps:
            found = _walk(path, out, all_files) if kind == "walk" else [path]
            for p in found:
                if kind == "listed" and not os.path.lexists(p):
                    out.missing.append(str(p))
                key = _identity(p)
                if key in seen:
                    out.duplicates += 1
                    continue
                seen.add(key)
                out.count += 1
                yield p

    out._walk = walk
    return out


def discover(inputs: Iterable[str | Path], *, all_files: bool = False) -> Discovery:
    """Expand INPUT arguments into the list of files to scan (:func:`stream_inputs`, walked to the end).

    Raises:
        InputError: an argument does not exist or a list file cannot be read.
    """
    out = stream_inputs(inputs, all_files=all_files)
    walk, out._walk = out._walk, None
    out.files = list(walk()) if walk else []
    out.complete = True
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


def _walk(root: Path, out: Discovery, all_files: bool) -> Iterator[Path]:
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
            yield p


__all__ = [
    "LIST_EXTENSIONS", "VIDEO_EXTENSIONS", "Discovery", "InputError", "discover", "is_video_name", "stream_inputs",
]  # fmt: skip
