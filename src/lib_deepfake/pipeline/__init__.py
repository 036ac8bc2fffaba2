"""Scanning videos end to end (what ``lib-infer`` runs): decode -> detect -> track -> crop -> classify -> aggregate.

Public API (heavy modules load on first use; importing this package imports nothing heavy)::

    from lib_deepfake.pipeline import ScanConfig, ScanSession, Scanner, VideoScanner, run_scan

    cfg = ScanConfig(model="model.onnx", plan="uniform:32")
    result = run_scan(cfg, ["videos/"], "scan-out", resume=True)  # results.csv/jsonl, run.json, report.html
    result.summary, result.header                                  # what run.json holds
    with Scanner(cfg) as scanner:                                  # in-process: outcomes as videos finish
        for outcome in scanner.scan(paths):
            outcome.row, outcome.faces, outcome.report
    scanner = VideoScanner(cfg); rows = scanner(paths)             # stateful callable (Ray map_batches)

Modules: ``config`` (ScanConfig, DecodeSettings), ``inputs`` (discovery), ``decode`` (worker processes / DALI
threads), ``components`` (engine and detector loading), ``stages`` (batched detection and classification),
``scanner`` (decode pool + stages), ``outcomes`` (rows, faces, report data; pure), ``aggregate`` (scores),
``results`` (rows, incremental writer, resume), ``session`` (one scan's output folder, for every driver; report.html
comes from :mod:`lib_deepfake.report`), ``run`` (one complete scan in this process).
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "ScanConfig": "lib_deepfake.pipeline.config",
    "DecodeSettings": "lib_deepfake.pipeline.config",
    "discover": "lib_deepfake.pipeline.inputs",
    "aggregate": "lib_deepfake.pipeline.aggregate",
    "build_row": "lib_deepfake.pipeline.results",
    "ResultsStore": "lib_deepfake.pipeline.results",
    "Scanner": "lib_deepfake.pipeline.scanner",
    "VideoScanner": "lib_deepfake.pipeline.scanner",
    "ScanPipeline": "lib_deepfake.pipeline.stages",
    "VideoOutcome": "lib_deepfake.pipeline.outcomes",
    "error_outcome": "lib_deepfake.pipeline.outcomes",
    "video_row": "lib_deepfake.pipeline.outcomes",
    "ScanSession": "lib_deepfake.pipeline.session",
    "ScanResult": "lib_deepfake.pipeline.session",
    "run_scan": "lib_deepfake.pipeline.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lib_deepfake.pipeline' has no attribute {name!r}")
