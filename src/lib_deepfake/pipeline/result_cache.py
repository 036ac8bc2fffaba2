"""A content-addressed cache of scan results (``lib-infer --cache DIR``), shared between scans.

A later scan of an overlapping collection - the same videos under other names, or a folder scanned again with
new files added - reuses the rows of videos it has already scored with the same model and settings. The key is
the file's full content hash, the model's hash and the scan settings' fingerprint: any change of model, sampling,
detector or threshold is a different key, so a cached row is always one the current scan would have written.

Layout: ``DIR/<2 hex>/<64 hex>.json`` holding ``{"key_parts": ..., "row": ..., "faces": [...], "report": ...}``,
written atomically, so concurrent scans sharing a cache never read half an entry. A damaged entry is ignored (and
rewritten by the next scan that scores the file).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from lib_deepfake.atomic import atomic_open

logger = logging.getLogger(__name__)

_FORMAT = 1


def cache_key(content_digest: str, model_hash: str, settings_fingerprint: str) -> str:
    text = json.dumps([_FORMAT, content_digest, model_hash, settings_fingerprint])
    return hashlib.sha256(text.encode()).hexdigest()


def _rekey(entry: dict[str, Any], path: str) -> dict[str, Any]:
    """The cached outcome as the file at ``path`` gets it: same verdict and score, this path and name."""
    row = dict(entry["row"])
    row["path"] = path
    row["name"] = os.path.basename(path)
    row["cached"] = True
    faces = [dict(f, path=path) for f in entry.get("faces") or []]
    report = dict(entry["report"], path=path) if entry.get("report") else None
    return {"row": row, "faces": faces, "report": report}


class ResultCache:
    """Rows by content. ``get``/``put`` take the key from :func:`cache_key`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, path: str) -> dict[str, Any] | None:
        """The cached outcome re-keyed to ``path`` ({"row", "faces", "report"}), or None."""
        f = self._file(key)
        try:
            entry = json.loads(f.read_text(encoding="utf-8"))
            if entry.get("format") != _FORMAT or not isinstance(entry.get("row"), dict):
                raise ValueError("unknown format")
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring a damaged cache entry %s: %s", f, exc)
            self.misses += 1
            return None
        self.hits += 1
        return _rekey(entry, path)

    def put(self, key: str, row: dict[str, Any], faces: list[dict[str, Any]] | None = None,
            report: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Store a finished outcome. Error rows are not cached: the next scan should try the file again."""
        if row.get("status") == "error":
            return
        entry = {"format": _FORMAT, "row": {k: v for k, v in row.items() if k != "cached"},
                 "faces": faces or [], "report": report}  # fmt: skip
        f = self._file(key)
        try:
            with atomic_open(f) as fh:
                json.dump(entry, fh, ensure_ascii=True, default=str)
        except OSError as exc:  # a full or read-only cache must not stop the scan
            logger.warning("cannot write the result cache entry %s: %s", f, exc)


__all__ = ["ResultCache", "cache_key"]
