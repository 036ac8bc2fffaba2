"""Scanning files: a decode pool (worker processes on CPU, DALI threads on GPU) feeding the batched stages
(:class:`~lib_deepfake.pipeline.stages.ScanPipeline`), decode of the next videos overlapping detection and
classification of the current ones.

- :class:`Scanner` - ``scan(paths)`` yields :class:`~lib_deepfake.pipeline.outcomes.VideoOutcome` (row + faces +
  report data) as videos finish; engines and decode workers live until :meth:`Scanner.close`.
- :class:`VideoScanner` - a stateful callable for scale-out (Ray ``map_batches``): engines loaded once,
  ``scanner(paths) -> rows``.

The CLI, the benchmark and a Ray actor all scan through these, so every line that decides a result is shared.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib_deepfake.pipeline.components import Components, load_components
from lib_deepfake.pipeline.config import DecodeSettings, ScanConfig
from lib_deepfake.pipeline.decode import ProcessDecodePool, ThreadDecodePool
from lib_deepfake.pipeline.outcomes import VideoOutcome
from lib_deepfake.pipeline.stages import ScanPipeline, StageTotals

if TYPE_CHECKING:
    from lib_deepfake.engines.base import Engine
    from lib_deepfake.faces.base import FaceDetector


class Scanner:
    """Scans files: a decode pool feeding a :class:`ScanPipeline`; see the module docstring.

    Args:
        config: the scan settings.
        engine, detector: ready-made components (tests, the benchmark); default: built from ``config``.
        decode_fn: "module:function" replacing the worker's decode function (test hooks).
        prefetch: decoded videos allowed to wait for the detector besides those being decoded (memory bound).
        in_process: decode PyAV files on threads in this process instead of worker processes: no start-up cost,
            but no protection against a decoder that crashes or hangs (tests; callers that isolate themselves).

    Use as a context manager (or call :meth:`close`): the decode workers live until then, so repeated
    :meth:`scan` calls (Ray batches) reuse them and the loaded engines.
    """

    def __init__(self, config: ScanConfig, *, engine: Engine | None = None, detector: FaceDetector | None = None,
                 decode_fn: str | None = None, prefetch: int = 2, in_process: bool = False) -> None:  # fmt: skip
        self.config = config
        self.components: Components = load_components(config, engine=engine, detector=detector)
        self.resolved = self.components.resolved
        self.pipeline = ScanPipeline(config, self.components.engine, self.components.detector)
        self.config = self.pipeline.config  # its threshold settled
        self.decode_fn = decode_fn
        self.prefetch = max(0, int(prefetch))
        self.in_process = in_process
        self._pool: ProcessDecodePool | ThreadDecodePool | None = None

    @property
    def totals(self) -> StageTotals:
        return self.pipeline.totals

    def decode_settings(self) -> DecodeSettings:
        """The scan's decode settings with the decoder resolved, as the decode workers get them."""
        decoder = self.resolved["decoder"]
        # DALI decodes on the scan's own GPU: "cuda" is GPU 0, "cuda:N" is GPU N (a bare "gpu" would always be 0).
        cuda = "cuda:0" if self.config.device == "cuda" else self.config.device
        device = (cuda if self.config.on_cuda else "cpu") if decoder == "dali" else None
        return replace(self.config.decode, decoder=decoder, device=device, decode_fn=self.decode_fn)

    def warm_up(self) -> None:
        """Start the decode workers and run the classifier once, so that timed scans exclude start-up."""
        import torch

        self._ensure_pool().wait_ready()
        size = self.pipeline.size
        self.components.engine.infer(torch.zeros((2, size, size, 3), dtype=torch.uint8, device=self.pipeline.device))

    def peak_worker_rss_mib(self) -> float:
        """Largest peak RSS of a decode worker process so far (0 for thread decoding)."""
        return self._pool.peak_worker_rss_mib() if self._pool is not None else 0.0

    def _ensure_pool(self) -> ProcessDecodePool | ThreadDecodePool:
        if self._pool is None:
            settings = self.decode_settings()
            workers = self.config.resolved_workers()
            if settings.decoder == "dali" or self.in_process:
                self._pool = ThreadDecodePool(settings, workers).start()
            else:
                # The worker's own in-loop deadline fires first for slow decodes; the kill is for true hangs.
                grace = min(10.0, max(1.0, 0.25 * self.config.timeout_s))
                self._pool = ProcessDecodePool(settings, workers, grace_s=grace).start()
        return self._pool

    def scan(self, paths: Iterable[str | Path]) -> Iterator[VideoOutcome]:
        """Scan files; yields one :class:`VideoOutcome` per file as it finishes (not in input order)."""
        todo = deque(str(p) for p in paths)
        if not todo:
            return
        pool = self._ensure_pool()
        pipe = self.pipeline
        limit = pool.workers + self.prefetch
        while todo or pool.pending or pipe.busy:
            while todo and pool.pending + pipe.holding_frames < limit:
                pool.submit(todo.popleft())
            has_work = pipe.busy
            t0 = time.perf_counter()
            results = pool.poll(0.0 if has_work else 0.5)
            if not has_work:
                pipe.totals.wait_s += time.perf_counter() - t0
            for res in results:
                yield from pipe.add(res)
            if pipe.has_detect_work():
                yield from pipe.step_detect()
            elif pipe.has_classify_work():
                # A full batch always runs; a partial one runs when nothing else is ready (idle main = lost time).
                yield from pipe.step_classify(force=not results)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoScanner:
    """Stateful per-worker scanner for scale-out (a Ray ``map_batches`` actor): engines load once in ``__init__``.

    ``scanner(paths)`` (a list of paths, or a dict with a ``"path"`` list as Ray batches are) returns the rows in
    input order, built by the same code as ``lib-infer``. :meth:`outcomes` also returns faces and report data.
    """

    def __init__(self, config: ScanConfig, **kwargs: Any) -> None:
        self.scanner = Scanner(config, **kwargs)

    def outcomes(self, paths: Iterable[str | Path]) -> list[VideoOutcome]:
        keys = [str(p) for p in paths]
        got = {o.row["path"]: o for o in self.scanner.scan(keys)}
        return [got[k] for k in keys if k in got]

    def __call__(self, batch: Any) -> list[dict[str, Any]]:
        paths = batch["path"] if isinstance(batch, dict) else batch
        return [o.row for o in self.outcomes(list(paths))]

    def close(self) -> None:
        self.scanner.close()


__all__ = ["Scanner", "VideoScanner"]
