"""One actor of a Ray scan: loads its decoder, face detector and classifier engine once, then scans batches of
videos with the code of a local scan and returns one outcome per video.

A batch that a worker died on before is scanned one video at a time (the :class:`~lib_deepfake.scale.planning.
CrashLedger` actor tracks the deaths), so the next death names its video; after ``video_retries`` solo deaths that
video becomes an error row (``error_kind`` "WorkerCrashError"). URL inputs are staged to a local file first and
reported under their URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from lib_deepfake.pipeline.components import model_manifest
from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.outcomes import VideoOutcome, error_outcome
from lib_deepfake.pipeline.scanner import Scanner, VideoScanner

logger = logging.getLogger(__name__)

#: error_kind of a video given up after its worker died ``video_retries + 1`` times while scanning it alone.
WORKER_CRASH = "WorkerCrashError"
#: error_kind of a video for which the Ray job returned nothing (should not happen; the scan still completes).
WORKER_LOST = "RayWorkerLost"


def _rekey(out: VideoOutcome, key: str, size: int | None) -> VideoOutcome:
    """A staged URL was scanned under a temporary file name: report it under the URL."""
    from lib_deepfake.scale.remote import url_name

    row = {**out.row, "path": key, "name": url_name(key), "size_bytes": size}
    faces = [{**f, "path": key} for f in out.faces]
    report = {**out.report, "path": key} if out.report is not None else None
    return VideoOutcome(row, faces, report)


class RayScanWorker:
    """One actor of the pool: engines loaded once; ``__call__`` scans a batch of videos and returns one row each.

    Args:
        config: the scan settings (as on the driver; ``threads``, ``workers`` and ``device`` are adapted to the
            actor's share: its own threads, decode processes, and ``cuda:0`` = the GPU Ray assigned it).
        plan: the :class:`PoolPlan` as a dict.
        ledger: handle of the :class:`CrashLedger` actor (None: no crash bookkeeping, e.g. direct use).
        artifacts: model files shipped through the object store, for nodes that cannot see the driver's files:
            ``{"model"|"detector_model": {"ref": ObjectRef of {name: bytes}, "size": bytes of the main file}}``.
        scanner_factory: ``fn(config) -> scanner`` with ``outcomes(paths)`` and ``close()`` (default:
            :class:`~lib_deepfake.pipeline.scanner.VideoScanner`); a seam for tests and custom pipelines.
    """

    def __init__(
        self,
        config: ScanConfig,
        plan: dict[str, Any],
        ledger: Any = None,
        artifacts: dict[str, Any] | None = None,
        scanner_factory: Callable[[ScanConfig], Any] | None = None,
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="lib-deepfake-ray-"))
        cfg = replace(
            config,
            threads=config.threads or int(plan["threads"]),
            workers=config.workers or int(plan["decode_workers"]),
            # Ray sets CUDA_VISIBLE_DEVICES to the GPU(s) it assigned this actor: they are cuda:0.. here.
            device="cuda:0" if config.on_cuda else "cpu",
        )
        cfg = self._localize(cfg, artifacts or {})
        self.config = cfg
        self.ledger = ledger
        if scanner_factory is None:
            scanner_factory = VideoScanner
        self.scanner = scanner_factory(cfg)
        self._sent_info = False
        self._last_totals: dict[str, float] = {}

    # -- setup -----------------------------------------------------------------------------------------------------
    def _localize(self, cfg: ScanConfig, artifacts: dict[str, Any]) -> ScanConfig:
        """Use the driver's model file when this node sees the same file, else the copy shipped with the job."""
        import ray

        changes: dict[str, Any] = {}
        for field_name, shipped in artifacts.items():
            path = getattr(cfg, field_name)
            if path is None or shipped is None:
                continue
            try:
                if Path(path).stat().st_size == shipped["size"]:
                    continue
            except OSError:
                pass
            files: dict[str, bytes] = ray.get(shipped["ref"])
            folder = self.tmp / "artifacts" / field_name
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (folder / name).write_bytes(data)
            changes[field_name] = folder / Path(path).name
            logger.info("using the shipped copy of %s (%s is not on this node)", Path(path).name, path)
        return replace(cfg, **changes) if changes else cfg

    def _info(self) -> dict[str, Any]:
        import ray

        inner = getattr(self.scanner, "scanner", None)
        info: dict[str, Any] = {"pid": os.getpid()}
        try:
            ctx = ray.get_runtime_context()
            info["node_id"] = ctx.get_node_id()
            info["gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
        except Exception:  # noqa: BLE001 - descriptive only
            pass
        if isinstance(inner, Scanner):
            info["resolved"] = inner.resolved
            manifest = model_manifest(inner.components.engine)
            if manifest is not None:
                info["model_manifest"] = manifest
        return info

    def _totals_delta(self) -> dict[str, float]:
        inner = getattr(self.scanner, "scanner", None)
        if not isinstance(inner, Scanner):
            return {}
        now = {k: float(v) for k, v in inner.totals.as_dict().items()}
        delta = {k: round(v - self._last_totals.get(k, 0.0), 6) for k, v in now.items()}
        self._last_totals = now
        return delta

    # -- scanning --------------------------------------------------------------------------------------------------
    def _scan(self, keys: list[str]) -> dict[str, VideoOutcome]:
        """Outcomes per key; URLs are staged to local files first."""
        from lib_deepfake.scale.remote import RemoteReadError, is_url, stage

        thr = self.config.threshold
        results: dict[str, VideoOutcome] = {}
        local: dict[str, str] = {}
        staged: list[Path] = []
        try:
            for k in keys:
                if is_url(k):
                    try:
                        p = stage(k, self.tmp / "staged", timeout_s=self.config.timeout_s)
                    except RemoteReadError as exc:
                        results[k] = error_outcome(k, str(exc), "RemoteReadError", threshold=thr)
                        continue
                    staged.append(p)
                    local[k] = str(p)
                else:
                    local[k] = k
            if local:
                try:
                    got = {o.key: o for o in self.scanner.outcomes(list(local.values()))}
                except Exception as exc:  # noqa: BLE001 - a failure of the whole call becomes rows, the scan goes on
                    logger.exception("scanner failed on %d video(s)", len(local))
                    got = {}
                    for k in local:
                        results[k] = error_outcome(k, f"worker error: {type(exc).__name__}: {exc}",
                                                   type(exc).__name__, threshold=thr)  # fmt: skip
                for k, lp in local.items():
                    if k in results:
                        continue
                    out = got.get(lp)
                    if out is None:
                        results[k] = error_outcome(k, "the scanner returned no result for this file", WORKER_LOST,
                                                   threshold=thr)  # fmt: skip
                    elif lp != k:
                        results[k] = _rekey(out, k, os.stat(lp).st_size)
                    else:
                        results[k] = out
        finally:
            for p in staged:
                p.unlink(missing_ok=True)
        return results

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Scan one Ray batch.

        Args:
            batch: ``{"path": array of str [B]}`` (Ray's numpy batch format).

        Returns:
            ``{"path": [B] str, "outcome": [B] JSON str (row, faces, report), "meta": [B] JSON str ("" except on the
            first row: this actor's description once, and the stage-time totals of this call)}``.
        """
        import numpy as np

        import ray

        keys = [str(p) for p in batch["path"]]
        results: dict[str, VideoOutcome] = {}
        status = ray.get(self.ledger.status.remote(keys)) if self.ledger is not None else [(0, 0)] * len(keys)
        if all(c == 0 for c, _ in status):
            self._begin(keys, solo=False)
            results.update(self._scan(keys))
            self._end(keys, solo=False)
        else:
            # A worker died holding this batch before: one video at a time, so the next death names its video.
            for k, (_crashes, solo) in zip(keys, status):
                if ray.get(self.ledger.should_give_up.remote(k)):
                    ray.get(self.ledger.give_up.remote(k))
                    results[k] = error_outcome(
                        k, f"the scan worker died {solo} time(s) while scanning this video alone (crash or out-of-"
                           "memory kill in the decoder, detector or classifier, or a lost node); given up",
                        WORKER_CRASH, threshold=self.config.threshold)  # fmt: skip
                    continue
                self._begin([k], solo=True)
                results.update(self._scan([k]))
                self._end([k], solo=True)
        meta = {"totals": self._totals_delta()}
        if not self._sent_info:
            meta["worker"] = self._info()
            self._sent_info = True
        outcomes = [json.dumps(results[k].to_dict(), ensure_ascii=True, allow_nan=False, default=str) for k in keys]
        metas = [json.dumps(meta, default=str)] + [""] * (len(keys) - 1)
        return {"path": np.array(keys, dtype=object), "outcome": np.array(outcomes, dtype=object),
                "meta": np.array(metas, dtype=object)}  # fmt: skip

    def _begin(self, keys: list[str], solo: bool) -> None:
        if self.ledger is not None:
            import ray

            ray.get(self.ledger.begin.remote(keys, solo))

    def _end(self, keys: list[str], solo: bool) -> None:
        if self.ledger is not None:
            import ray

            ray.get(self.ledger.end.remote(keys, solo))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.scanner.close()
        shutil.rmtree(getattr(self, "tmp", ""), ignore_errors=True)


__all__ = ["WORKER_CRASH", "WORKER_LOST", "RayScanWorker"]
