"""What a dataset-layout reader returns, and the pure steps the importers share.

A reader (:mod:`.faceforensics`, :mod:`.celebdf`, :mod:`.dfdc`) turns a dataset root, as the dataset ships, into
:class:`VideoRecord` s (path, label, split, group) plus what it noticed on the way: files a split/metadata file
names that are not on disk (``missing``) and videos on disk that no split file places (``unlisted``; left out).
Readers only list files and read the small text/JSON files; no video is opened here.

``group`` ties videos that must share a split: a fake and the real video it was made from (FF++ pairs, DFDC's
``original``, Celeb-DF's naming). :func:`hold_out_val` moves whole groups from train to val, and
:func:`check_groups` refuses a listing in which a group straddles splits.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib_deepfake.errors import DatasetError
from lib_deepfake.prep.dataset import LABEL_NAMES, SPLITS

__all__ = [
    "LayoutScan",
    "Problem",
    "VideoRecord",
    "check_groups",
    "class_balance",
    "count_records",
    "hold_out_val",
    "mp4_files",
    "read_json",
]


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset.

    Attributes:
        path: absolute path of the video file.
        label: 0 real, 1 fake (this project's convention, whatever the dataset's own files say).
        split: train | val | test.
        group: videos with the same group stay in one split (a fake and its original).
        source: the sub-collection it came from, for the manifest ("youtube", "Deepfakes", "Celeb-real", ...).
    """

    path: Path
    label: int
    split: str
    group: str
    source: str


@dataclass(frozen=True)
class Problem:
    """A file a listing names that is not on disk, or a video on disk that no listing places."""

    path: str
    reason: str


@dataclass
class LayoutScan:
    """Everything a reader found under one dataset root.

    Attributes:
        importer: "faceforensics" | "celebdf" | "dfdc".
        root: the dataset root as given (absolute).
        records: the videos to prepare, sorted by path.
        missing: listed but not on disk (left out).
        unlisted: on disk but in no split (left out).
        options: what the reader was asked for (compression, methods, val fraction, ...).
        notes: facts worth a line in the manifest and on the console.
    """

    importer: str
    root: Path
    records: list[VideoRecord]
    missing: list[Problem] = field(default_factory=list)
    unlisted: list[Problem] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def mp4_files(folder: Path) -> list[Path]:
    """The ``.mp4`` files directly inside ``folder`` (absolute, sorted); none when the folder is absent."""
    if not folder.is_dir():
        return []
    return sorted(p.resolve() for p in folder.iterdir() if p.suffix.lower() == ".mp4" and p.is_file())


def read_json(path: Path, what: str) -> Any:
    """Parse a dataset's JSON file; unreadable or malformed -> :class:`DatasetError` naming ``what`` and the path."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {what} {path}: {exc}") from exc


def _unit_hash(text: str) -> float:
    """A stable number in [0, 1) from ``text`` (the same on every machine and Python run)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def hold_out_val(records: list[VideoRecord], fraction: float) -> list[VideoRecord]:
    """Move about ``fraction`` of the train groups to val, whole groups at a time.

    A group goes to val when the hash of its name falls below ``fraction``: deterministic, independent of the
    order of the files, and stable when videos are added (a group never changes side).
    """
    if not 0.0 <= fraction < 1.0:
        raise DatasetError(f"val fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return list(records)
    out = []
    for r in records:
        if r.split == "train" and _unit_hash(r.group) < fraction:
            r = VideoRecord(r.path, r.label, "val", r.group, r.source)
        out.append(r)
    return out


def check_groups(records: list[VideoRecord]) -> None:
    """Raise when a group (a fake and its original) is spread over several splits."""
    splits: dict[str, set[str]] = {}
    for r in records:
        splits.setdefault(r.group, set()).add(r.split)
    torn = sorted(g for g, s in splits.items() if len(s) > 1)
    if torn:
        raise DatasetError(
            f"{len(torn)} group(s) of a fake and its original span several splits (first: {torn[0]} in "
            f"{', '.join(sorted(splits[torn[0]]))}): check the split files"
        )


def count_records(records: list[VideoRecord], by_source: bool = False) -> dict[str, Any]:
    """Videos per split and class: ``{split: {"real": n, "fake": n}}`` (every split and class present, zeros too);
    with ``by_source`` one level more: ``{source: {split: {...}}}``."""
    if by_source:
        return {s: count_records([r for r in records if r.source == s]) for s in sorted({r.source for r in records})}
    counts = Counter((r.split, r.label) for r in records)
    return {split: {LABEL_NAMES[label]: counts[(split, label)] for label in (0, 1)} for split in SPLITS}


def class_balance(records: list[VideoRecord]) -> dict[str, float | None]:
    """Fake videos per real video in each split (None where a split has no real video)."""
    counts = count_records(records)
    return {
        split: (round(c["fake"] / c["real"], 3) if c["real"] else None)
        for split, c in counts.items()
        if c["real"] or c["fake"]
    }
