"""The DFDC (Deepfake Detection Challenge) full dataset as it ships.

Layout (ROOT = the folder holding the extracted parts)::

    ROOT/dfdc_train_part_0/metadata.json, *.mp4   (also ROOT/<any>/dfdc_train_part_N/, e.g. ROOT/train/...)
    ...
    ROOT/test/labels.csv, *.mp4                    (or --test-labels PATH; videos beside labels.csv)

``metadata.json`` maps each file of its part to ``{"label": "REAL" | "FAKE", "original": "<real>.mp4" | null,
"split": "train"}``. The test set's ``labels.csv`` has the columns ``filename,label`` with 1 = fake, 0 = real.
Every training part becomes train, part of it val (``val_fraction``, whole groups at a time): a fake is grouped
with its ``original``, so a fake never lands in another split than the real video it was made from.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from lib_deepfake.errors import DatasetError
from lib_deepfake.prep.datasets.records import (
    LayoutScan,
    Problem,
    VideoRecord,
    check_groups,
    hold_out_val,
    mp4_files,
    read_json,
)

__all__ = ["find_parts", "read_metadata", "read_test_labels", "scan_dfdc"]

PART_GLOB = "dfdc_train_part_*"


def find_parts(root: Path) -> list[Path]:
    """Training-part folders directly in ROOT or one level below (sorted by part number, then path)."""
    parts = {p.resolve() for pattern in (PART_GLOB, f"*/{PART_GLOB}") for p in root.glob(pattern) if p.is_dir()}

    def key(p: Path) -> tuple[int, str]:
        tail = p.name.rsplit("_", 1)[-1]
        return (int(tail) if tail.isdigit() else 1 << 30, str(p))

    return sorted(parts, key=key)


def read_metadata(path: Path) -> dict[str, tuple[int, str | None]]:
    """``metadata.json`` -> ``{file name: (label, original or None)}`` with label 1 = fake.

    Raises:
        DatasetError: unreadable JSON, a label other than REAL/FAKE.
    """
    data = read_json(path, "DFDC metadata")
    if not isinstance(data, dict):
        raise DatasetError(f'{path}: expected a JSON object {{"x.mp4": {{"label": "FAKE", ...}}, ...}}')
    out: dict[str, tuple[int, str | None]] = {}
    for name, info in data.items():
        label = info.get("label") if isinstance(info, dict) else None
        if label not in ("REAL", "FAKE"):
            raise DatasetError(f"{path}: {name} has label {label!r}, expected REAL or FAKE")
        original = info.get("original") or None
        out[name] = (1 if label == "FAKE" else 0, str(original) if original else None)
    return out


def read_test_labels(path: Path) -> list[tuple[str, int]]:
    """The test set's ``labels.csv`` (columns ``filename,label``; 1 = fake, 0 = real) -> ``[(filename, label)]``.

    Raises:
        DatasetError: missing columns, a label that is not 0 or 1, a file listed twice.
    """
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = {c.strip() for c in reader.fieldnames or []}
        if not {"filename", "label"} <= columns:
            raise DatasetError(f"{path}: expected the columns filename,label, found {sorted(columns)}")
        for lineno, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            name, text = row["filename"], row["label"]
            if not name:
                continue
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if value not in (0.0, 1.0):
                raise DatasetError(f"{path}:{lineno}: label must be 0 (real) or 1 (fake), got {text!r}")
            if name in seen:
                raise DatasetError(f"{path}:{lineno}: {name} is listed twice")
            seen.add(name)
            out.append((name, int(value)))
    return out


def _scan_parts(parts: list[Path]) -> tuple[list[VideoRecord], list[Problem], list[Problem], int]:
    records: list[VideoRecord] = []
    missing: list[Problem] = []
    unlisted: list[Problem] = []
    where: dict[str, Path] = {}
    known: set[str] = set()
    fakes_without_original: list[str] = []
    for part in parts:
        meta_path = part / "metadata.json"
        if not meta_path.is_file():
            missing.append(Problem(str(meta_path), "part folder without metadata.json: its videos are left out"))
            continue
        meta = read_metadata(meta_path)
        on_disk = {p.name: p for p in mp4_files(part)}
        for name, (label, original) in sorted(meta.items()):
            if name in where:
                raise DatasetError(f"DFDC video {name} is listed in {where[name]} and in {meta_path}")
            where[name] = meta_path
            known.add(name)
            if label == 1 and original is None:
                fakes_without_original.append(name)
            if name not in on_disk:
                missing.append(Problem(str(part / name), "in metadata.json but not on disk"))
                continue
            group = original if label == 1 and original else name
            records.append(VideoRecord(on_disk[name], label, "train", group, part.name))
        unlisted.extend(Problem(str(p), "not in its part's metadata.json") for n, p in on_disk.items() if n not in meta)
    if fakes_without_original:
        raise DatasetError(
            f"{len(fakes_without_original)} DFDC fake(s) name no original (first: {fakes_without_original[0]}): "
            "cannot keep them in the split of their real video"
        )
    orphans = sum(1 for r in records if r.label == 1 and r.group not in known)
    return records, missing, unlisted, orphans


def scan_dfdc(root: Path | str, test_labels: Path | str | None = None, val_fraction: float = 0.1) -> LayoutScan:
    """Records for every training part (train/val) and the test set (test).

    Args:
        root: folder with the ``dfdc_train_part_*`` folders (directly or one level below) and ``test/labels.csv``.
        test_labels: the test set's labels.csv (default ``ROOT/test/labels.csv`` when present); its videos are
            looked up beside it.
        val_fraction: share of training groups (an original with its fakes) held out as val.

    Raises:
        DatasetError: ROOT missing, neither parts nor test labels found, a video in two parts, a fake without an
            original, malformed metadata or labels.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DatasetError(f"DFDC root {root} does not exist")
    labels_path: Path | None = Path(test_labels).resolve() if test_labels is not None else None
    if labels_path is not None and not labels_path.is_file():
        raise DatasetError(f"DFDC test labels not found: {labels_path}")
    if labels_path is None and (root / "test" / "labels.csv").is_file():
        labels_path = (root / "test" / "labels.csv").resolve()
    parts = find_parts(root)
    if not parts and labels_path is None:
        raise DatasetError(f"no {PART_GLOB}/metadata.json and no test/labels.csv under {root}")
    records, missing, unlisted, orphans = _scan_parts(parts)
    records = hold_out_val(records, val_fraction)
    if labels_path is not None:
        folder = labels_path.parent
        for name, label in read_test_labels(labels_path):
            path = (folder / name).resolve()
            if path.is_file():
                records.append(VideoRecord(path, label, "test", f"test/{name}", "test"))
            else:
                missing.append(Problem(str(path), "in the test labels.csv but not on disk"))
    check_groups(records)
    records.sort(key=lambda r: str(r.path))
    notes = [f"{len(parts)} training part(s)" + (f", test labels {labels_path}" if labels_path else ", no test set")]
    if orphans:
        notes.append(f"{orphans} fake(s) whose original is in no metadata.json (grouped by the original's name)")
    options: dict[str, Any] = {
        "parts": [p.name for p in parts],
        "test_labels": str(labels_path) if labels_path else None,
        "val_fraction": val_fraction,
    }
    return LayoutScan("dfdc", root, records, missing, unlisted, options, notes)
