"""In-process decoding on a thread pool: the DALI (NVDEC) path, and PyAV for callers that isolate themselves.

Several files decode at once so that several NVDEC engines work; frames stay CUDA tensors and are never copied to
the host. A hang inside DALI cannot be killed from Python: the in-loop deadline and DALI's own error reporting are
the guards here (the process pool is the path with crash and hang isolation).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures

from lib_deepfake.pipeline.config import DecodeSettings
from lib_deepfake.pipeline.decode.one_file import DecodeResult, decode_dali, run_decode


class ThreadDecodePool:
    """In-process decoding on a thread pool (DALI/NVDEC: several files at once so several decoder engines work).

    Same interface as :class:`~lib_deepfake.pipeline.decode.process_pool.ProcessDecodePool`.
    ``fn(key, settings) -> DecodeResult`` must not raise.
    """

    def __init__(self, settings: DecodeSettings, workers: int,
                 fn: Callable[[str, DecodeSettings], DecodeResult] | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.workers = max(1, int(workers))
        self.fn = fn or (decode_dali if settings.decoder == "dali" else run_decode)
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future] = []
        self.restarts = 0

    def start(self) -> ThreadDecodePool:
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="lib-infer-decode")
        return self

    def wait_ready(self, timeout_s: float = 0.0) -> None:
        """Threads are ready at once (interface parity with the process pool)."""

    def peak_worker_rss_mib(self) -> float:
        return 0.0  # threads share this process's memory

    def submit(self, key: str) -> None:
        assert self._pool is not None, "start() first"
        self._futures.append(self._pool.submit(self.fn, key, self.settings))

    @property
    def pending(self) -> int:
        return len(self._futures)

    def poll(self, timeout: float | None) -> list[DecodeResult]:
        if not self._futures:
            return []
        done, _ = wait_futures(self._futures, timeout=timeout, return_when=FIRST_COMPLETED)
        out = []
        for fut in list(self._futures):
            if fut in done:
                self._futures.remove(fut)
                out.append(fut.result())
        return out

    def close(self) -> None:
        if self._pool is not None:
            for fut in self._futures:
                fut.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
        self._futures.clear()

    def __enter__(self) -> ThreadDecodePool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ThreadDecodePool"]
