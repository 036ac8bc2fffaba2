"""Which files hold the same bytes: a cheap fingerprint first, a full hash only when two fingerprints agree.

A scan of a large collection meets the same video many times (re-uploads, copies in several folders). Decoding and
classifying each copy again costs as much as the first; :class:`DuplicateIndex` lets the scan score one copy and
give the others the same row with ``duplicate_of`` naming the first.

The fingerprint is the size plus a few blocks spread over the file (start, middle, end and two between): reading
it costs five seeks whatever the size. Equal fingerprints are then confirmed by a hash of the whole file, so two
different files can never be merged; different fingerprints prove the files differ. Hard links and symlinks to one
file are collapsed earlier, by discovery (same real path).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

BLOCK_BYTES = 64 * 1024
_BLOCKS = 5
_CHUNK = 1 << 20


def quick_fingerprint(path: Path | str) -> str:
    """Size + sampled blocks, hex. Raises OSError for an unreadable file."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        h = hashlib.blake2b(digest_size=16)
        h.update(size.to_bytes(8, "little"))
        if size <= BLOCK_BYTES * _BLOCKS:
            h.update(fh.read())
        else:
            for k in range(_BLOCKS):
                fh.seek((size - BLOCK_BYTES) * k // (_BLOCKS - 1))
                h.update(fh.read(BLOCK_BYTES))
    return h.hexdigest()


def full_digest(path: Path | str) -> str:
    """blake2b-256 of the whole file, hex, read in 1 MiB chunks."""
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class DuplicateIndex:
    """Remembers the first file of each content; :meth:`original_of` names it for later copies.

    Memory: one fingerprint and one path per distinct file (a full digest only for files whose fingerprint matched
    another's), the same order as the rows themselves.
    """

    def __init__(self) -> None:
        self._by_quick: dict[str, list[str]] = {}
        self._full: dict[str, str] = {}
        self.confirmed = 0  # copies found (full hash equal)
        self.collisions = 0  # fingerprints equal, contents different

    def _digest(self, path: str) -> str:
        if path not in self._full:
            self._full[path] = full_digest(path)
        return self._full[path]

    def original_of(self, path: Path | str) -> str | None:
        """The first path seen with the same content as ``path``, or None (``path`` is then remembered as the
        first of its content). Unreadable files are never duplicates: the scan reports their error itself."""
        key = str(path)
        try:
            quick = quick_fingerprint(key)
        except OSError:
            return None
        firsts = self._by_quick.setdefault(quick, [])
        if firsts:
            try:
                mine = self._digest(key)
                for first in firsts:
                    if self._digest(first) == mine:
                        self.confirmed += 1
                        self._full.pop(key, None)  # a copy is never anybody's original
                        return first
            except OSError:
                return None
            self.collisions += 1
        firsts.append(key)
        return None

    def content_digest(self, path: Path | str) -> str:
        """The full digest of a file (cached), e.g. for a content-addressed result cache."""
        return self._digest(str(path))


__all__ = ["BLOCK_BYTES", "DuplicateIndex", "full_digest", "quick_fingerprint"]
