"""Run an importer: a :class:`LayoutScan` -> labelled videos -> ``lib-prep videos`` -> an import manifest.

The cropping itself is :func:`lib_deepfake.prep.videos.prepare_videos` (same decoding, detection, tracks, crops,
resume markers, workers and official list files as ``lib-prep videos``). This module only converts records to
:class:`~lib_deepfake.prep.dataset.VideoItem` s (crop folders keyed by the path relative to the dataset root, so
FF++'s ``000_003.mp4`` of each method gets its own folder), and writes beside the prepared dataset:

- ``import_labels.csv``: path,label,split,group,source of every video found (``lib-prep videos --labels`` reads it);
- ``import_manifest.json``: what was found (videos per split and class, per source, the fake/real balance), what
  was left out (missing, unlisted) and which videos failed to prepare (unreadable, no face), by kind.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lib_deepfake.atomic import atomic_open, write_json_atomic
from lib_deepfake.errors import DatasetError
from lib_deepfake.prep.dataset import VideoItem, video_key
from lib_deepfake.prep.datasets.records import LayoutScan, class_balance, count_records

__all__ = ["IMPORT_LABELS", "IMPORT_MANIFEST", "build_manifest", "import_layout", "to_items"]

IMPORT_LABELS = "import_labels.csv"
IMPORT_MANIFEST = "import_manifest.json"
MANIFEST_VERSION = 1
LISTED_PROBLEMS = 200  # the manifest keeps the first N missing/unlisted/failed paths (counts are always complete)


def to_items(scan: LayoutScan) -> list[VideoItem]:
    """The records as ``lib-prep videos`` items; crop folders are keyed by the path relative to the dataset root."""
    return [VideoItem(r.path, r.label, r.split, video_key(r.path, scan.root)) for r in scan.records]


def _write_labels(scan: LayoutScan, path: Path) -> None:
    with atomic_open(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "label", "split", "group", "source"])
        writer.writerows([str(r.path), r.label, r.split, r.group, r.source] for r in scan.records)


def _listed(problems: list[Any]) -> dict[str, Any]:
    rows = [asdict(p) if not isinstance(p, dict) else p for p in problems]
    return {"count": len(rows), "first": rows[:LISTED_PROBLEMS]}


def build_manifest(scan: LayoutScan, summary: dict[str, Any] | None) -> dict[str, Any]:
    """The import manifest (a plain dict, JSON-ready).

    Args:
        scan: what the reader found.
        summary: ``prepare_videos``' summary, or None for ``--scan-only``.
    """
    failures = (summary or {}).get("failures", [])
    by_kind = Counter(f.get("kind") or "error" for f in failures)
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "importer": scan.importer,
        "source_root": str(scan.root),
        "options": scan.options,
        "notes": scan.notes,
        "found": {
            "videos": len(scan.records),
            "by_split": count_records(scan.records),
            "by_source": count_records(scan.records, by_source=True),
            "fake_per_real": class_balance(scan.records),
        },
        "left_out": {"missing": _listed(scan.missing), "unlisted": _listed(scan.unlisted)},
        "prepared": None,
    }
    if summary is not None:
        manifest["prepared"] = {
            "done": summary["done"],
            "skipped": summary["skipped"],
            "failed": summary["failed"],
            "failed_by_kind": dict(sorted(by_kind.items())),
            "failures": _listed(failures),
            "list_files": summary["list_files"],
            "detection_rate": summary["detection_rate"],
        }
    return manifest


def import_layout(
    scan: LayoutScan,
    output_root: Path | str,
    name: str,
    config: Any = None,
    *,
    workers: int = 1,
    on_result: Callable[[Any], None] | None = None,
    scan_only: bool = False,
) -> dict[str, Any]:
    """Prepare the videos of ``scan`` into ``output_root/name`` and write the import manifest.

    Args:
        scan: a reader's result.
        output_root, name: the prepared dataset goes to ``output_root/name`` (the official list layout).
        config: :class:`~lib_deepfake.prep.videos.PrepConfig` (default settings when None).
        workers: processes for ``prepare_videos``.
        on_result: progress callback, one call per finished video.
        scan_only: write ``import_labels.csv`` and the manifest, prepare nothing.

    Returns:
        The manifest (also in ``output_root/name/import_manifest.json``).

    Raises:
        DatasetError: the reader found no video.
    """
    if not scan.records:
        raise DatasetError(
            f"no {scan.importer} video found under {scan.root} ({len(scan.missing)} listed but missing, "
            f"{len(scan.unlisted)} in no split)"
        )
    if not name or "/" in name or name.startswith("."):
        raise DatasetError(f"invalid dataset name {name!r}")
    dataset_dir = Path(output_root) / name
    dataset_dir.mkdir(parents=True, exist_ok=True)
    _write_labels(scan, dataset_dir / IMPORT_LABELS)
    summary = None
    if not scan_only:
        from lib_deepfake.prep.videos import prepare_videos

        provenance = {"importer": scan.importer, "source_root": str(scan.root), "options": scan.options,
                      "synthetic": False}  # fmt: skip
        summary = prepare_videos(to_items(scan), output_root, name, config, workers=workers, on_result=on_result,
                                 provenance=provenance)  # fmt: skip
    manifest = build_manifest(scan, summary)
    write_json_atomic(dataset_dir / IMPORT_MANIFEST, manifest)
    return manifest
