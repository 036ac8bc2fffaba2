"""Streaming writer of report.html and its sidecar folder.

Pass 1 reads results.jsonl line by line and writes each row straight into the page as a compact array (columns
named once, folders named once, trailing empty cells dropped), keeping only a heap of the N highest scores. Pass 2
reads report_data.jsonl and keeps the face crops and timelines of those N videos, written as sidecar script files
of ``chunk`` videos each that the page loads when a row is opened. Memory is bounded by N, not by the scan.
"""

from __future__ import annotations

import heapq
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from lib_deepfake.report.page import CONTROLS, CSP, CSS, JS, esc, json_for_script

REPORT_FILES = "report_files"

#: Table columns: (row key, header label). ``dir`` and ``name`` are the path split at its last separator.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("dir", "folder"), ("name", "file"), ("status", "status"), ("verdict", "verdict"), ("score", "score"),
    ("frames_sampled", "frames"), ("frames_with_faces", "with faces"), ("faces", "faces"),
    ("identities", "identities"), ("codec", "codec"), ("resolution", "size"), ("duration_s", "duration s"),
    ("seconds", "seconds"), ("error", "error"), ("duplicate_of", "duplicate of"), ("cached", "cached"),
)  # fmt: skip


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Complete, parseable lines of a JSONL file, one at a time (a torn or damaged line is skipped: the results
    store repairs those on resume; the report only has to not fail on them)."""
    if not path.is_file():
        return
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n") or not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                yield rec


def _split_path(path: str) -> tuple[str, str]:
    cut = max(path.rfind("/"), path.rfind("\\")) + 1
    return path[:cut], path[cut:]


def _compact(row: dict[str, Any], dir_index: int) -> list[Any]:
    _, name = _split_path(str(row.get("path", "")))
    cells: list[Any] = []
    for key, _ in COLUMNS:
        if key == "dir":
            cells.append(dir_index)
        elif key == "name":
            cells.append(name)
        else:
            v = row.get(key)
            if isinstance(v, float):
                v = round(v, 4)
            cells.append(v)
    while cells and cells[-1] is None:  # the JS reads a missing cell as null
        cells.pop()
    return cells


def _head(run: dict[str, Any], summary: dict[str, Any]) -> str:
    resolved = run.get("resolved", {})
    cfg = run.get("config", {})
    threshold = float(cfg.get("threshold", 0.5))
    meta = [
        ("model", cfg.get("model")),
        ("engine", f"{resolved.get('engine_label', resolved.get('engine', ''))} ({resolved.get('engine_choice', '')})"),
        ("decoder", f"{resolved.get('decoder', '')} ({resolved.get('decoder_choice', '')})"),
        ("device", resolved.get("device")),
        ("provider", resolved.get("provider")),
        ("detector", f"{resolved.get('detector', '')} on {resolved.get('detector_provider') or 'n/a'}"),
        ("sampling", cfg.get("plan")),
        ("threshold", f"{threshold}" + (f" ({run['threshold_source']})" if run.get("threshold_source") else "")),
        ("aggregation", run.get("aggregation_rule")),
        ("started / finished", f"{run.get('started', '')} / {run.get('finished', '')}"),
    ]
    card = run.get("model_card")
    if isinstance(card, dict):
        meta.append(("model card", card.get("summary") or card.get("intended_use") or ""))
    counts = summary.get("status", {})
    verdicts = summary.get("verdicts", {})
    cards = [("files", summary.get("files", 0)), ("fake", verdicts.get("fake", 0)), ("real", verdicts.get("real", 0)),
             ("no face", counts.get("no_face", 0)), ("errors", counts.get("error", 0))]  # fmt: skip
    for key, label in (("duplicates", "duplicates"), ("cached", "from cache")):
        if summary.get(key):
            cards.append((label, summary[key]))
    metrics = summary.get("metrics")
    if metrics and metrics.get("auc") is not None:
        cards.append(("video AUC", metrics["auc"]))
        if metrics.get("accuracy") is not None:
            cards.append(("accuracy", metrics["accuracy"]))
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">',
        "<title>lib-infer report</title><style>", CSS, "</style></head><body>",
        "<h1>lib-infer report</h1>",
        '<div class="meta">', "<br>".join(f"<b>{esc(k)}</b>: <code>{esc(v)}</code>" for k, v in meta), "</div>",
        '<div class="cards">', "".join(f'<div class="card"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in cards), "</div>",
        '<h2>Scores</h2><div id="hist"></div><h2>Files</h2>', CONTROLS,
        '<table><thead><tr id="head"></tr></thead><tbody id="rows"></tbody></table>',
        '<noscript><p>The table needs JavaScript; results.csv next to this page holds the same rows.</p></noscript>',
    ])  # fmt: skip


def _write_rows(fh: IO[str], results: Path, details: int) -> tuple[list[str], list[tuple[float, int, str]]]:
    """Pass 1. Returns the folder table and the heap of the ``details`` highest-scoring rows (score, index, path)."""
    dirs: dict[str, int] = {}
    top: list[tuple[float, int, str]] = []
    fh.write('<script type="application/json" id="rows-data">[')
    for n, row in enumerate(iter_jsonl(results)):
        path = str(row.get("path", ""))
        folder, _ = _split_path(path)
        d = dirs.setdefault(folder, len(dirs))
        fh.write(("," if n else "") + json_for_script(_compact(row, d)))
        score = row.get("score")
        if details > 0 and row.get("status") == "ok" and isinstance(score, (int, float)):
            # ties keep the earlier row: -index makes the later one the smaller entry
            item = (float(score), -n, path)
            if len(top) < details:
                heapq.heappush(top, item)
            elif item > top[0]:
                heapq.heapreplace(top, item)
    fh.write("]</script>\n")
    return list(dirs), top


def _write_details(files_dir: Path, report_data: Path | None, top: list[tuple[float, int, str]],
                   chunk: int) -> tuple[dict[int, list[int]], list[str]]:  # fmt: skip
    """Pass 2: the sidecar scripts. Returns row index -> [chunk id, position] and the chunk file names."""
    ranked = sorted(top, reverse=True)
    rank_of = {path: (rank, -neg_idx) for rank, (_, neg_idx, path) in enumerate(ranked)}
    kept: dict[int, dict[str, Any]] = {}
    if report_data is not None:
        for rec in iter_jsonl(report_data):
            hit = rank_of.get(str(rec.get("path")))
            if hit is not None:
                kept[hit[0]] = {"thumbs": rec.get("thumbs") or [], "timeline": rec.get("timeline") or []}
    mapping: dict[int, list[int]] = {}
    names: list[str] = []
    for start in range(0, len(ranked), chunk):
        items = []
        for rank in range(start, min(start + chunk, len(ranked))):
            if rank not in kept:
                continue
            _, row_index = rank_of[ranked[rank][2]]
            mapping[row_index] = [len(names), len(items)]
            items.append(kept[rank])
        if not items:
            continue
        name = f"details-{len(names):05d}.js"
        # A JS call with a JSON argument: JSON is a JS literal, and ensure_ascii keeps U+2028/2029 out.
        (files_dir / name).write_text(f"LIBREPORT_CHUNK({len(names)},{json_for_script(items)});\n", encoding="ascii")
        names.append(name)
    return mapping, names


def write_report(path: Path | str, *, results: Path | str, report_data: Path | str | None, run: dict[str, Any],
                 summary: dict[str, Any], details: int = 1000, chunk: int = 50) -> Path:  # fmt: skip
    """Write ``path`` (report.html) and ``report_files/`` beside it from the scan's JSONL files.

    Args:
        path: the page to write.
        results: results.jsonl (one row per file, :func:`lib_deepfake.pipeline.results.build_row` keys).
        report_data: report_data.jsonl (``path``, ``thumbs`` with base64 JPEGs, ``timeline``), or None.
        run: run.json content (config, resolved choices, aggregation rule; optional threshold_source, model_card).
        summary: counts by status and verdict (and metrics with labels).
        details: keep face crops and timelines for this many highest-scoring videos.
        chunk: videos per sidecar file.

    Both the page and the sidecar folder are replaced atomically: a reader sees the old report or the new one.
    """
    from lib_deepfake.atomic import atomic_open

    path = Path(path)
    files_dir = path.parent / REPORT_FILES
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{REPORT_FILES}.", dir=path.parent))
    try:
        with atomic_open(path) as fh:
            fh.write(_head(run, summary))
            dirs, top = _write_rows(fh, Path(results), details)
            mapping, names = _write_details(tmp_dir, Path(report_data) if report_data else None, top, chunk)
            meta = {"columns": [{"key": k, "label": label} for k, label in COLUMNS], "dirs": dirs,
                    "details": mapping, "chunk_files": names, "files": REPORT_FILES,
                    "threshold": float(run.get("config", {}).get("threshold", 0.5))}  # fmt: skip
            fh.write(f'<script type="application/json" id="meta-data">{json_for_script(meta)}</script>\n')
            fh.write("<script>" + JS + "</script></body></html>\n")
            # The sidecar goes in place just before the page does, so the new page never points at old chunks.
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp_dir, 0o777 & ~mask)  # mkdtemp makes 0700; the report is meant to be read by others
            old = None
            if files_dir.exists():
                old = files_dir.with_name(f".{REPORT_FILES}.old.{os.getpid()}")
                os.replace(files_dir, old)
            os.replace(tmp_dir, files_dir)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


__all__ = ["COLUMNS", "REPORT_FILES", "iter_jsonl", "write_report"]
