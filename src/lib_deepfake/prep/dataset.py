"""Dataset bookkeeping shared by ``lib-prep videos`` and ``lib-prep sbi``: labels.csv, list files, layout.

Layout of a prepared dataset ``ROOT/NAME``::

    ROOT/NAME/{train,val,test}_{real,fake}.txt   official list files, one line per face folder: label,dir,frames
    ROOT/NAME/crops/<video path relative to --input>/000012.png ...   PNG crops (true colours; cv2.imread -> BGR)
    ROOT/NAME/crops/<...>/landmarks.json          per-crop box, score and 5 landmarks in crop pixels
    ROOT/NAME/crops/<...>/.done.json              resume marker (written last)
    ROOT/NAME/prep_report.jsonl, prep_summary.json

``dir`` in the list files is an absolute path, so the official loader (which opens it relative to its working
directory) and lib-train both read it wherever they run; ``frames`` is the number of PNGs in the folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib_deepfake.atomic import atomic_open
from lib_deepfake.errors import DatasetError

__all__ = [
    "LABEL_NAMES",
    "SPLITS",
    "ListEntry",
    "VideoItem",
    "describe_lists",
    "list_file",
    "read_labels",
    "read_list_file",
    "video_key",
    "write_list_files",
]

SPLITS = ("train", "val", "test")
LABEL_NAMES = {0: "real", 1: "fake"}


@dataclass(frozen=True)
class VideoItem:
    """One row of labels.csv.

    Attributes:
        path: absolute video path.
        label: 0 real, 1 fake.
        split: train | val | test.
        key: relative folder name under ``crops/`` (the path relative to --input, or name + hash when outside).
    """

    path: Path
    label: int
    split: str
    key: str


@dataclass(frozen=True)
class ListEntry:
    """One line of an official list file: ``label,dir,frames``."""

    label: int
    dir: Path
    frames: int

    def line(self) -> str:
        return f"{self.label},{self.dir},{self.frames}"


def video_key(path: Path, input_dir: Path) -> str:
    """Folder key of a video under ``crops/``: its path relative to ``input_dir``, else ``name-<hash8>``."""
    try:
        rel = path.resolve().relative_to(input_dir.resolve())
        return rel.as_posix()
    except ValueError:
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
        return f"_external/{path.name}-{digest}"


def read_labels(labels_csv: Path | str, input_dir: Path | str) -> list[VideoItem]:
    """Parse labels.csv (header ``path,label,split``; paths absolute or relative to ``input_dir``).

    Raises:
        DatasetError: missing file or columns, bad label/split values, duplicate paths.
    """
    labels_csv, input_dir = Path(labels_csv), Path(input_dir)
    if not labels_csv.is_file():
        raise DatasetError(f"labels file not found: {labels_csv}")
    items: list[VideoItem] = []
    seen: set[Path] = set()
    with labels_csv.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "label", "split"} - {c.strip() for c in (reader.fieldnames or [])}
        if missing:
            raise DatasetError(f"{labels_csv}: header must have columns path,label,split (missing {sorted(missing)})")
        for lineno, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            if not row.get("path"):
                continue
            label_text, split = row["label"], row["split"].lower()
            if label_text not in ("0", "1"):
                raise DatasetError(f"{labels_csv}:{lineno}: label must be 0 (real) or 1 (fake), got {label_text!r}")
            if split not in SPLITS:
                raise DatasetError(f"{labels_csv}:{lineno}: split must be train, val or test, got {split!r}")
            path = Path(row["path"])
            path = path if path.is_absolute() else input_dir / path
            path = path.resolve()
            if path in seen:
                raise DatasetError(f"{labels_csv}:{lineno}: duplicate video {path}")
            seen.add(path)
            items.append(VideoItem(path, int(label_text), split, video_key(path, input_dir)))
    if not items:
        raise DatasetError(f"{labels_csv} lists no videos")
    return items


def list_file(dataset_dir: Path, split: str, label: int) -> Path:
    """``dataset_dir/<split>_<real|fake>.txt``."""
    return Path(dataset_dir) / f"{split}_{LABEL_NAMES[label]}.txt"


def write_list_files(dataset_dir: Path | str, entries: list[tuple[str, ListEntry]]) -> dict[str, int]:
    """Write all six list files atomically (empty ones too, the official loader opens every file).

    Args:
        dataset_dir: ``ROOT/NAME``.
        entries: (split, entry) pairs.

    Returns:
        Lines per file name.
    """
    dataset_dir = Path(dataset_dir)
    counts = {}
    for split in SPLITS:
        for label in (0, 1):
            lines = sorted(e.line() for s, e in entries if s == split and e.label == label)
            path = list_file(dataset_dir, split, label)
            with atomic_open(path) as fh:
                fh.write("".join(line + "\n" for line in lines))
            counts[path.name] = len(lines)
    return counts


def read_list_file(path: Path | str) -> list[ListEntry]:
    """Parse an official list file (``label,dir,frames``; whitespace stripped, blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"list file not found: {path}")
    out = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split(",")
        if len(parts) < 3 or parts[0] not in ("0", "1"):
            raise DatasetError(f"{path}:{lineno}: expected 'label,dir,frames', got {line!r}")
        try:
            frames = int(parts[-1])
        except ValueError as exc:
            raise DatasetError(f"{path}:{lineno}: frames must be an integer, got {parts[-1]!r}") from exc
        # A directory name may itself contain commas: everything between the first and last field is the path.
        out.append(ListEntry(int(parts[0]), Path(",".join(parts[1:-1])), frames))
    return out


def describe_lists(dataset_dir: Path | str) -> dict[str, Any]:
    """What a prepared dataset holds, from its list files (for model cards: ``DatasetCounts.from_dict``).

    Returns:
        ``{"name", "counts": {split: {"real"|"fake": {"videos": list lines, "frames": sum of their frame counts}}},
        "list_sha256": {file name: sha256}, "synthetic": bool, "source": provenance}``; provenance comes from
        ``prep_summary.json`` (lib-prep videos and the importers write it; ``synthetic`` marks the demo corpus).

    Raises:
        DatasetError: no list file at all, or a malformed one.
    """
    dataset_dir = Path(dataset_dir)
    counts: dict[str, dict[str, dict[str, int]]] = {}
    digests: dict[str, str] = {}
    for split in SPLITS:
        counts[split] = {}
        for label in (0, 1):
            path = list_file(dataset_dir, split, label)
            entries = read_list_file(path) if path.is_file() else []
            counts[split][LABEL_NAMES[label]] = {"videos": len(entries), "frames": sum(e.frames for e in entries)}
            if path.is_file():
                digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digests:
        raise DatasetError(f"no list files ({{train,val,test}}_{{real,fake}}.txt) in {dataset_dir}")
    summary = dataset_dir / "prep_summary.json"
    provenance: dict[str, Any] = {}
    if summary.is_file():
        try:
            provenance = json.loads(summary.read_text(encoding="utf-8")).get("provenance") or {}
        except (OSError, ValueError):
            provenance = {}
    return {
        "name": dataset_dir.name,
        "counts": counts,
        "list_sha256": digests,
        "synthetic": bool(provenance.get("synthetic")),
        "source": provenance,
    }
