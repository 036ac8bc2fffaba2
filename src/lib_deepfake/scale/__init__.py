"""Scale-out: ``lib-infer --ray`` - one scan spread over many GPUs/CPUs and machines with Ray Data.

The unit of work is a **video path**, not a frame: ``ray.data.from_items(paths)`` -> ``map_batches`` with a pool of
stateful actors (:class:`~lib_deepfake.scale.ray_worker.RayScanWorker`), each holding its own decoder, face detector
and classifier engine (loaded once) and running the very :class:`~lib_deepfake.pipeline.scanner.VideoScanner` that
a local scan runs, so every row is built by the same code. The driver streams the outcomes into the same
:class:`~lib_deepfake.pipeline.session.ScanSession` as a local scan (results.jsonl/csv, run.json, report.html,
``--resume``, Ctrl-C).

Modules (importing this package imports nothing heavy; ``ray`` is imported only inside functions):

- ``planning`` - pure logic: address parsing, actor-pool sizing, the crash ledger that bounds retries.
- ``remote`` - object-store / http(s) URLs: listing and staging to a local temporary file for the decoder.
- ``ray_connection`` - :func:`connect`: a running cluster, a new local one, or Ray Client.
- ``ray_worker`` - :class:`RayScanWorker`, one actor of the pool.
- ``ray_scan`` - :func:`scan_with_ray`, the driver.
- ``cli`` - ``RayOptions`` / ``run_ray_from_cli``: what ``lib-infer --ray`` sets and runs.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "scan_with_ray": "lib_deepfake.scale.ray_scan",
    "connect": "lib_deepfake.scale.ray_connection",
    "RayScanWorker": "lib_deepfake.scale.ray_worker",
    "PoolPlan": "lib_deepfake.scale.planning",
    "plan_pool": "lib_deepfake.scale.planning",
    "CrashLedger": "lib_deepfake.scale.planning",
    "RayOptions": "lib_deepfake.scale.cli",
    "run_ray_from_cli": "lib_deepfake.scale.cli",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lib_deepfake.scale' has no attribute {name!r}")
