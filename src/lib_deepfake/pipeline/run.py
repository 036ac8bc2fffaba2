"""One complete scan into an output folder (what ``lib-infer`` runs), and rebuilding the outputs from rows.

:func:`run_scan` = discover inputs -> open the output folder (resume/repair) -> write run.json (settings, every
automatic choice, the aggregation rule, the model manifest, versions) -> scan, appending each video as it finishes
-> summary -> report.html. :func:`rebuild_outputs` writes the same files from rows made elsewhere (a Ray scan).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.inputs import Discovery, discover
from lib_deepfake.pipeline.results import (
    FACES_JSONL,
    REPORT_DATA,
    REPORT_HTML,
    RESULTS_CSV,
    RESULTS_JSONL,
    RUN_JSON,
    OutputError,
    ResultsStore,
    csv_header,
    csv_line,
    now_iso,
    read_labels,
    summarize,
)

logger = logging.getLogger(__name__)


def _model_manifest(config: ScanConfig, engine: Any) -> dict[str, Any] | None:
    man = getattr(engine, "manifest", None)
    if man is None:
        return None
    try:
        d = man.to_dict()
    except Exception:  # noqa: BLE001 - descriptive only
        return None
    d.pop("io", None)
    return d


def run_header(config: ScanConfig, resolved: dict[str, Any], engine: Any, discovery: Discovery | None,
               fingerprint: str) -> dict[str, Any]:  # fmt: skip
    """The run.json payload (before the summary is added)."""
    from lib_deepfake.manifest import library_versions  # versions of what this process has imported

    inputs = None
    if discovery is not None:
        inputs = {"files": len(discovery.files), "skipped_non_video": discovery.skipped_non_video,
                  "duplicates": discovery.duplicates, "missing": len(discovery.missing)}  # fmt: skip
    return {
        "tool": "lib-infer",
        "started": now_iso(),
        "finished": None,
        "fingerprint": fingerprint,
        "config": config.to_dict(),
        "resolved": resolved,
        "aggregation_rule": config.aggregation_rule(),
        "verdict_rule": f"fake if score >= {config.threshold}, real below; no_face and error rows have no score",
        "model_manifest": _model_manifest(config, engine),
        "inputs": inputs,
        "versions": library_versions(),
    }


def run_scan(
    config: ScanConfig,
    inputs: Iterable[str | Path],
    out_dir: Path | str,
    *,
    resume: bool = False,
    overwrite: bool = False,
    labels: Path | str | None = None,
    all_files: bool = False,
    on_outcome: Callable[[dict[str, Any], int, int], None] | None = None,
    scanner_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Scan ``inputs`` into ``out_dir``.

    Args:
        config: scan settings.
        inputs: files, folders, list files (see :mod:`lib_deepfake.pipeline.inputs`).
        out_dir: output folder.
        resume: skip files finished by an earlier run of the same settings in ``out_dir``.
        overwrite: replace earlier results in ``out_dir``.
        labels: optional ``path,label`` CSV: the summary then reports video-level AUC and accuracy.
        all_files: scan every file in folders, not only video extensions.
        on_outcome: ``fn(row, done, total)`` after each file (progress display).
        scanner_kwargs: passed to :class:`~lib_deepfake.pipeline.scanner.Scanner` (fakes in tests).

    Returns:
        The summary (also in run.json): counts, verdicts, error kinds, timing, metrics with labels.

    Raises:
        InputError, OutputError, and engine/detector loading errors: the scan could not run at all. Per-file
        problems never raise; they are rows.
    """
    from lib_deepfake.pipeline.scanner import Scanner

    t0 = time.perf_counter()
    found = discover(inputs, all_files=all_files)
    label_map = read_labels(labels) if labels is not None else None
    fingerprint = config.fingerprint()
    store = ResultsStore(out_dir, resume=resume, overwrite=overwrite, faces=config.faces_jsonl,
                         fingerprint=fingerprint)  # fmt: skip
    done = store.open()
    try:
        todo = [str(p) for p in found.files if str(p) not in done]
        if found.skipped_non_video:
            logger.info("skipped %d file(s) without a video extension (use --all-files to scan them)",
                        found.skipped_non_video)  # fmt: skip
        if done:
            logger.info("resume: %d file(s) already done, %d to scan", len(done), len(todo))
        for note in store.repaired:
            logger.warning("resume repaired %s", note)
        with Scanner(config, **(scanner_kwargs or {})) as scanner:
            header = run_header(config, scanner.resolved, scanner.components.engine, found, fingerprint)
            header["resumed"] = bool(done)
            store.write_run(header)
            total, count = len(todo), 0
            interrupted = False
            try:
                for outcome in scanner.scan(todo):
                    store.append(outcome.row, outcome.faces, outcome.report)
                    count += 1
                    if on_outcome is not None:
                        on_outcome(outcome.row, count, total)
            except KeyboardInterrupt:
                interrupted = True
            totals = scanner.totals.as_dict()
        wall = time.perf_counter() - t0
        summary = summarize(store.rows, label_map, config.threshold)
        summary.update({"scanned_this_run": count, "skipped_done": len(done), "wall_s": round(wall, 3),
                        "videos_per_s": round(count / wall, 4) if wall > 0 else None, "stages": totals,
                        "interrupted": interrupted, "skipped_non_video": found.skipped_non_video,
                        "duplicates": found.duplicates})  # fmt: skip
        header.update({"finished": None if interrupted else now_iso(), "summary": summary})
        store.write_run(header)
        if config.report:
            write_scan_report(store, header, summary)
        if interrupted:
            raise KeyboardInterrupt
        return summary
    finally:
        store.close()


def write_scan_report(store: ResultsStore, header: dict[str, Any], summary: dict[str, Any]) -> None:
    from lib_deepfake.pipeline.report import write_report

    try:
        write_report(store.out_dir / REPORT_HTML, store.rows, store.report_entries(), header, summary)
    except OSError as exc:
        raise OutputError(f"cannot write {REPORT_HTML} in {store.out_dir}: {exc}") from exc


def rebuild_outputs(
    out_dir: Path | str,
    rows: list[dict[str, Any]],
    *,
    run: dict[str, Any] | None = None,
    faces: Iterable[dict[str, Any]] | None = None,
    report_data: list[dict[str, Any]] | None = None,
    labels: Path | str | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """Write results.jsonl, results.csv (and faces.jsonl, report_data.jsonl, run.json, report.html) from rows,
    atomically - for scans whose rows were made elsewhere (Ray workers call the same row builder).

    Returns:
        The summary.
    """
    import json

    from lib_deepfake.atomic import atomic_open, write_json_atomic
    from lib_deepfake.pipeline.report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    uniq = []
    for r in rows:
        if r["path"] not in seen:
            seen.add(r["path"])
            uniq.append(r)
    threshold = float((run or {}).get("config", {}).get("threshold", 0.5))
    summary = summarize(uniq, read_labels(labels) if labels else None, threshold)
    try:
        with atomic_open(out / RESULTS_JSONL) as fh:
            fh.writelines(json.dumps(r, ensure_ascii=True, default=str) + "\n" for r in uniq)
        with atomic_open(out / RESULTS_CSV) as fh:
            fh.write(csv_header())
            fh.writelines(csv_line(r) for r in uniq)
        if faces is not None:
            with atomic_open(out / FACES_JSONL) as fh:
                fh.writelines(json.dumps(f, ensure_ascii=True) + "\n" for f in faces)
        if report_data is not None:
            with atomic_open(out / REPORT_DATA) as fh:
                fh.writelines(json.dumps(d, ensure_ascii=True) + "\n" for d in report_data)
        payload = dict(run or {"tool": "lib-infer"})
        payload["summary"] = summary
        write_json_atomic(out / RUN_JSON, payload)
        if report:
            write_report(out / REPORT_HTML, uniq, report_data or [], payload, summary)
        from lib_deepfake.pipeline.results import readable

        for name in (RESULTS_JSONL, RESULTS_CSV, FACES_JSONL, REPORT_DATA, RUN_JSON):
            readable(out / name)
    except OSError as exc:
        raise OutputError(f"cannot write results in {out}: {exc}") from exc
    return summary


__all__ = ["rebuild_outputs", "run_header", "run_scan"]
