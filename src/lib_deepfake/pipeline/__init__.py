"""Scanning videos end to end (what ``lib-infer`` runs): decode -> detect -> track -> crop -> classify -> aggregate.

Public API (heavy modules load on first use; importing this package imports nothing heavy)::

    from lib_deepfake.pipeline import ScanConfig, Scanner, VideoScanner, run_scan, rebuild_outputs

    cfg = ScanConfig(model="model.onnx", plan="uniform:32")
    summary = run_scan(cfg, ["videos/"], "scan-out", resume=True)      # results.csv/jsonl, run.json, report.html
    with Scanner(cfg) as scanner:                                        # in-process: outcomes as videos finish
        for outcome in scanner.scan(paths):
            outcome.row, outcome.faces, outcome.report
    scanner = VideoScanner(cfg); rows = scanner(paths)                   # stateful callable (Ray map_batches)

Modules: ``config`` (ScanConfig), ``inputs`` (discovery), ``decode`` (worker processes / DALI threads),
``scanner`` (batched stages), ``aggregate`` (scores), ``results`` (rows, incremental writer, resume), ``report``
(report.html), ``run`` (one complete scan).
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "ScanConfig": "lib_deepfake.pipeline.config",
    "discover": "lib_deepfake.pipeline.inputs",
    "aggregate": "lib_deepfake.pipeline.aggregate",
    "build_row": "lib_deepfake.pipeline.results",
    "ResultsStore": "lib_deepfake.pipeline.results",
    "Scanner": "lib_deepfake.pipeline.scanner",
    "VideoScanner": "lib_deepfake.pipeline.scanner",
    "VideoOutcome": "lib_deepfake.pipeline.scanner",
    "ScanPipeline": "lib_deepfake.pipeline.scanner",
    "run_scan": "lib_deepfake.pipeline.run",
    "rebuild_outputs": "lib_deepfake.pipeline.run",
    "render_report": "lib_deepfake.pipeline.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lib_deepfake.pipeline' has no attribute {name!r}")
