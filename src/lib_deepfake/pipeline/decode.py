"""Decoding for a scan: worker processes on the CPU path (crash and hang isolation), threads on the DALI path.

CPU path - :class:`ProcessDecodePool`: N long-lived worker processes, one file at a time each, talking over a pipe.
The parent knows which file every worker holds, so

- a worker that dies (segfault inside libav, OOM kill) costs exactly that file: its row gets status error with
  "decoder process crashed (...)" and a fresh worker takes the slot;
- a worker past the per-file deadline is killed (the only way to stop a call hung inside libav), its file gets
  "decode timed out", and a fresh worker takes the slot;
- decoding overlaps with detection/classification in the parent (the workers run while the parent computes).

Workers are started with **spawn**, deliberately: the parent already runs torch and ONNX Runtime thread pools, and a
forked child inherits their locks in whatever state they were (a classic deadlock); spawn starts clean. The start
cost (~1-2 s importing torch/av) is paid once per worker, not per file, because workers are reused.

Frames come back as one uint8 array (at most ``max_frame_bytes``; frames larger than ``max_analysis_side`` are
area-downscaled in the worker first, so a 4K clip travels as 1920-wide frames) that the worker decoded straight into
shared memory (``frame_transport``): only its file name crosses the pipe. Without a usable ``/dev/shm`` the bytes
go through the pipe.

GPU path - :class:`ThreadDecodePool`: DALI decodes in this process (NVDEC; frames stay CUDA tensors and are never
copied to the host), several files at once on a thread pool so that several NVDEC engines work. A hang inside DALI
cannot be killed from Python; the in-loop deadline and DALI's own error reporting are the guards there.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import multiprocessing as mp
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from lib_deepfake.errors import LibDeepfakeError

logger = logging.getLogger(__name__)


class FrameBudgetError(LibDeepfakeError):
    """The sampled frames of one video would need more memory than ``max_frame_bytes``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class DecodeSettings:
    """What a decode worker needs (picklable).

    Attributes:
        plan: sampling plan spec.
        timeout_s: per-file limit (in-loop deadline inside the worker; the parent kills at timeout + grace).
        max_pixels: refuse larger frames before decoding (None: the video package default).
        max_analysis_side: area-downscale frames whose long side exceeds this (None: never).
        max_frame_bytes: refuse videos whose sampled frames exceed this.
        threads: decoder threads per worker (0: libavcodec's choice).
        allow_truncated: decode what a truncated file holds instead of an error row.
        decoder: "pyav" or "dali".
        device: DALI device ("gpu"/"cpu"), unused by PyAV.
        decode_fn: "module:function" used instead of :func:`decode_for_scan` (test hooks; must be importable).
    """

    plan: str = "uniform:32"
    timeout_s: float = 120.0
    max_pixels: int | None = None
    max_analysis_side: int | None = 1920
    max_frame_bytes: int = 1536 << 20
    threads: int = 1
    allow_truncated: bool = False
    decoder: str = "pyav"
    device: str | None = None
    decode_fn: str | None = None


@dataclass
class DecodeResult:
    """One file's decode outcome, as the scanner consumes it.

    Attributes:
        key: the path as reported.
        frames: uint8 [T, h, w, 3] RGB (numpy on the process path; a torch tensor, CUDA for DALI, on the thread path),
            None on error.
        indices: int64 [T] frame indices; times_s: float64 [T].
        info: ``VideoInfo.as_dict()`` (None when the file could not be probed).
        scale: analysed size / display size (1.0 unless downscaled).
        decode_s: wall time of the decode (worker side).
        missing: wanted frames the decoder never produced.
        error, error_kind: one-line reason and error class name on failure.
    """

    key: str
    frames: Any = None
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    times_s: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    info: dict[str, Any] | None = None
    scale: float = 1.0
    decode_s: float = 0.0
    missing: list[int] = field(default_factory=list)
    decoder: str = "pyav"
    error: str | None = None
    error_kind: str | None = None


def analysis_size(height: int, width: int, max_side: int | None) -> tuple[int, int, float]:
    """(h, w, scale) of frames downscaled so the long side is at most ``max_side`` (never upscaled)."""
    if max_side is None or max(height, width) <= max_side:
        return height, width, 1.0
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale)), scale


def decode_for_scan(path: str, settings: DecodeSettings,
                    allocate: Callable[[tuple[int, ...]], np.ndarray] | None = None) -> dict[str, Any]:  # fmt: skip
    """Probe, index and decode one file's plan with PyAV into one uint8 array (runs inside a worker).

    ``allocate(shape)`` makes that array (the worker passes shared memory, see ``frame_transport``); default
    ``np.empty``. The frames returned are its first T frames (fewer when wanted frames could not be decoded).

    Returns:
        dict with frames (uint8 [T, h, w, 3] numpy), indices, times_s, info (dict), scale, missing, decode_s.

    Raises:
        VideoError subclasses (typed, one-line reason), FrameBudgetError.
    """
    from lib_deepfake.video import DEFAULT_MAX_PIXELS, open_video

    t0 = time.perf_counter()
    max_pixels = settings.max_pixels if settings.max_pixels is not None else DEFAULT_MAX_PIXELS
    with open_video(path, decoder="pyav", threads=settings.threads, timeout_s=settings.timeout_s,
                    max_pixels=max_pixels, allow_truncated=settings.allow_truncated) as src:  # fmt: skip
        info = src.info
        rp = src.resolve(settings.plan)
        dh, dw = info.display_height, info.display_width
        oh, ow, scale = analysis_size(dh, dw, settings.max_analysis_side)
        need = len(rp) * oh * ow * 3
        if need > settings.max_frame_bytes:
            raise FrameBudgetError(
                f"the plan's {len(rp)} frames of {ow}x{oh} need {need / 2**30:.1f} GiB, over the "
                f"{settings.max_frame_bytes / 2**30:.1f} GiB limit; sample fewer frames"
            )
        shape = (len(rp), oh, ow, 3)
        out = allocate(shape) if allocate is not None else np.empty(shape, np.uint8)
        indices, times = [], []
        for j, fr in enumerate(src.iter_frames(settings.plan)):
            img = fr.image.numpy()
            if img.shape != (dh, dw, 3):
                from lib_deepfake.video import CorruptVideoError

                raise CorruptVideoError(f"frame size changes mid-stream ({img.shape[1]}x{img.shape[0]} after "
                                        f"{dw}x{dh}); cannot batch", path)  # fmt: skip
            if scale != 1.0:
                import cv2

                img = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_AREA)
            out[j] = img
            indices.append(fr.index)
            times.append(fr.time_s)
        stats = src.stats
    n = len(indices)
    return {
        "frames": out[:n] if n < len(out) else out,
        "indices": np.asarray(indices, np.int64),
        "times_s": np.asarray(times, np.float64),
        "info": info.as_dict(),
        "scale": scale,
        "missing": list(stats.missing),
        "decode_s": time.perf_counter() - t0,
    }


def _resolve_fn(spec: str | None) -> Callable[[str, DecodeSettings], dict[str, Any]]:
    if not spec:
        return decode_for_scan
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _error_fields(exc: BaseException) -> tuple[str, str]:
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return type(exc).__name__, " ".join(str(reason).split())


def run_decode(key: str, settings: DecodeSettings) -> DecodeResult:
    """Decode in this process, turning every failure into an error result (never raises for a bad file)."""
    try:
        payload = _resolve_fn(settings.decode_fn)(key, settings)
    except (LibDeepfakeError, OSError, MemoryError, RuntimeError, ValueError) as exc:
        kind, reason = _error_fields(exc)
        return DecodeResult(key, decoder=settings.decoder, error=reason, error_kind=kind)
    return DecodeResult(key, payload["frames"], payload["indices"], payload["times_s"], payload["info"],
                        payload["scale"], payload["decode_s"], payload["missing"], settings.decoder)  # fmt: skip


def _worker_main(conn: Any, settings: DecodeSettings) -> None:
    # Ctrl-C goes to the whole process group; the parent decides what to do, workers just stop with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import torch

        torch.set_num_threads(1)  # frames only pass through torch here; its pool would compete with the parent
    except ImportError:  # pragma: no cover
        pass
    fn = _resolve_fn(settings.decode_fn)
    import lib_deepfake.video.pyav_source  # noqa: F401 - pay the av import before saying ready
    from lib_deepfake.pipeline.frame_transport import allocate_frames

    shared: list[Any] = []  # this file's shared frame buffer (SharedFrames), if one was made
    # decode_for_scan and hooks that accept ``allocate`` decode into shared memory; others' frames are sent as bytes
    takes_allocate = "allocate" in inspect.signature(fn).parameters

    def allocate(shape: tuple[int, ...]) -> np.ndarray:
        array, buf = allocate_frames(shape)
        if buf is not None:
            shared.append(buf)
        return array

    # The parent starts a file's deadline only after this, so a slow interpreter start never times a file out.
    conn.send(("ready",))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        shared.clear()
        try:
            payload = fn(msg, settings, allocate=allocate) if takes_allocate else fn(msg, settings)
            frames = payload.pop("frames")
            buf = shared[0] if shared else None
            if buf is not None and np.may_share_memory(frames, buf.array):
                # Decoded straight into shared memory: only the file name travels.
                shape = frames.shape
                del frames
                buf.release()
                shared.clear()
                conn.send(("ok", msg, payload, shape, buf.path.name))
            else:
                frames = np.ascontiguousarray(frames)
                # Raw bytes right after the small header: pickling them would copy them once more in this process
                # and once more in the parent (190 MB each for 32 frames of 1920x1080).
                conn.send(("ok", msg, payload, frames.shape, None))
                conn.send_bytes(memoryview(frames).cast("B"))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - every failure is one file's row; the worker lives on
            kind, reason = _error_fields(exc)
            try:
                conn.send(("err", msg, kind, reason))
            except (OSError, ValueError):
                return
        finally:
            for buf in shared:  # not sent (an error, or frames that were not the shared ones)
                buf.discard()
            shared.clear()


def vm_hwm_kib(pid: int | str = "self") -> int:
    """Peak resident memory (VmHWM, KiB) of a live process on Linux; 0 when unknown. Unlike ``ru_maxrss`` it is not
    inflated by the parent's size at fork time (spawned children report their parent's RSS there)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _attach(name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    from lib_deepfake.pipeline.frame_transport import attach_frames

    try:
        return attach_frames(name, shape)
    except OSError as exc:
        logger.warning("could not map decoded frames %s: %s", name, exc)
        return None


def _recv_frames(conn: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """Receive the raw frame bytes that follow an "ok" header into a writable uint8 array of ``shape``."""
    buf = bytearray(int(np.prod(shape, dtype=np.int64)))
    try:
        if buf:
            conn.recv_bytes_into(buf)
        else:
            conn.recv_bytes()
    except (EOFError, OSError):
        return None
    return np.frombuffer(buf, np.uint8).reshape(shape)


@dataclass
class _Slot:
    proc: Any
    conn: Any
    key: str | None = None
    started: float = 0.0
    ready: bool = False
    spawned: float = 0.0


class ProcessDecodePool:
    """Worker processes that decode one file each at a time; see the module docstring.

    Args:
        settings: decode settings shared by every file.
        workers: number of processes.
        grace_s: extra seconds past ``settings.timeout_s`` before a worker is killed (its own in-loop deadline
            normally fires first with a clean DecodeTimeoutError).
    """

    def __init__(self, settings: DecodeSettings, workers: int, grace_s: float = 10.0) -> None:
        self.settings = settings
        self.workers = max(1, int(workers))
        self.grace_s = grace_s
        self._ctx = mp.get_context("spawn")
        self._slots: list[_Slot] = []
        self._queue: deque[str] = deque()
        self.restarts = 0
        self.start_timeout_s = 120.0
        self.worker_peak_kib = 0
        # Crashed/killed workers are replaced for as long as files keep coming; only start-up failures are capped.
        self.max_restarts = 1000

    def start(self) -> ProcessDecodePool:
        from lib_deepfake.pipeline.frame_transport import sweep_orphans

        sweep_orphans()  # frame files of an earlier scan that was killed before it could clean up
        while len(self._slots) < self.workers:
            self._slots.append(self._spawn())
        return self

    def _spawn(self) -> _Slot:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_worker_main, args=(child, self.settings), daemon=True,
                                 name="lib-infer-decode")  # fmt: skip
        proc.start()
        child.close()
        return _Slot(proc, parent, spawned=time.monotonic())

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until every worker has started (benchmarks exclude start-up from timed runs)."""
        end = time.monotonic() + timeout_s
        while not all(s.ready for s in self._slots) and time.monotonic() < end:
            wait([s.conn for s in self._slots if not s.ready], 0.2)
            self._check_starting()

    def submit(self, key: str) -> None:
        self._queue.append(key)
        self._dispatch()

    @property
    def busy(self) -> int:
        return sum(1 for s in self._slots if s.key is not None)

    @property
    def pending(self) -> int:
        """Files submitted and not yet returned by :meth:`poll`."""
        return len(self._queue) + self.busy

    def _dispatch(self) -> None:
        for i, slot in enumerate(self._slots):
            if not self._queue:
                return
            if slot.key is None and slot.ready:
                key = self._queue.popleft()
                try:
                    slot.conn.send(key)
                except (OSError, ValueError):  # the idle worker died: replace it; the file waits for a ready one
                    self._queue.appendleft(key)
                    self._replace(i)
                    continue
                slot.key, slot.started = key, time.monotonic()

    def _note_peak(self, slot: _Slot) -> None:
        if slot.proc.is_alive():
            self.worker_peak_kib = max(self.worker_peak_kib, vm_hwm_kib(slot.proc.pid))

    def peak_worker_rss_mib(self) -> float:
        """Largest peak RSS of any decode worker so far (live workers are read now)."""
        for slot in self._slots:
            self._note_peak(slot)
        return round(self.worker_peak_kib / 1024, 1)

    def _replace(self, i: int) -> None:
        from lib_deepfake.pipeline.frame_transport import remove_worker_files

        old = self._slots[i]
        self._note_peak(old)
        if old.proc.is_alive():
            old.proc.kill()
        old.proc.join(5)
        old.conn.close()
        remove_worker_files(old.proc.pid)  # a frame file it was writing when it crashed or was killed
        self._slots[i] = self._spawn()
        self.restarts += 1

    def _check_starting(self) -> None:
        """Mark workers that reported ready; replace workers that died or hung while starting."""
        for i, slot in enumerate(self._slots):
            if slot.ready:
                continue
            try:
                if slot.conn.poll():
                    msg = slot.conn.recv()
                    slot.ready = msg == ("ready",)
                    continue
            except (EOFError, OSError):
                pass
            if not slot.proc.is_alive() or time.monotonic() - slot.spawned > self.start_timeout_s:
                if self.restarts >= self.max_restarts:
                    raise LibDeepfakeError("decode worker processes keep failing to start; see the log")
                logger.warning("decode worker failed to start (exit code %s); starting another", slot.proc.exitcode)
                self._replace(i)

    def poll(self, timeout: float | None) -> list[DecodeResult]:
        """Collect finished files, waiting at most ``timeout`` seconds (0: don't wait) for the first one."""
        self._check_starting()
        self._dispatch()
        busy = [s for s in self._slots if s.key is not None]
        starting = [s for s in self._slots if not s.ready]
        if not busy and not (starting and self._queue):
            return []
        limit = self.settings.timeout_s + self.grace_s
        now = time.monotonic()
        wait_s = timeout if timeout is not None else limit
        if busy:
            wait_s = min(wait_s, min(s.started + limit for s in busy) - now)
        handles = [s.conn for s in busy + starting] + [s.proc.sentinel for s in busy + starting]
        wait(handles, max(0.0, wait_s))
        self._check_starting()
        out: list[DecodeResult] = []
        for i, slot in enumerate(self._slots):
            if slot.key is None:
                continue
            key = slot.key
            result: DecodeResult | None = None
            if slot.conn.poll():
                try:
                    msg = slot.conn.recv()
                except (EOFError, OSError):
                    msg = None
                if msg is not None and msg[0] == "ok":
                    p, shape, name = msg[2], msg[3], msg[4]
                    frames = _recv_frames(slot.conn, shape) if name is None else _attach(name, shape)
                    if frames is None and name is not None:
                        result = DecodeResult(key, decoder=self.settings.decoder, error_kind="DecoderCrashError",
                                              error="the decoded frames vanished from shared memory")  # fmt: skip
                    elif frames is None:
                        msg = None  # died between header and frames: handled as a crash below
                    else:
                        result = DecodeResult(key, frames, p["indices"], p["times_s"], p["info"], p["scale"],
                                              p["decode_s"], p["missing"], self.settings.decoder)  # fmt: skip
                elif msg is not None and msg[0] == "err":
                    result = DecodeResult(key, decoder=self.settings.decoder, error=msg[3], error_kind=msg[2])
            if result is None and not slot.proc.is_alive():
                code = slot.proc.exitcode
                why = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
                result = DecodeResult(key, decoder=self.settings.decoder, error_kind="DecoderCrashError",
                                      error=f"decoder process crashed ({why}) while decoding this file")  # fmt: skip
                self._replace(i)
            elif result is None and time.monotonic() - slot.started > limit:
                result = DecodeResult(key, decoder=self.settings.decoder, error_kind="DecodeTimeoutError",
                                      error=f"decoding exceeded the {self.settings.timeout_s:g} s per-file time limit "
                                      "(decoder process killed)")  # fmt: skip
                self._replace(i)
            if result is not None:
                if result.error is not None:
                    result.decode_s = time.monotonic() - slot.started  # the time this file cost, failure included
                self._slots[i].key = None
                out.append(result)
        self._dispatch()
        return out

    def close(self) -> None:
        from lib_deepfake.pipeline.frame_transport import remove_worker_files

        for slot in self._slots:
            self._note_peak(slot)
            with contextlib.suppress(OSError, ValueError):
                slot.conn.send(None)
        deadline = time.monotonic() + 3
        for slot in self._slots:
            slot.proc.join(max(0.0, deadline - time.monotonic()))
            if slot.proc.is_alive():
                slot.proc.kill()
                slot.proc.join(2)
            slot.conn.close()
            remove_worker_files(slot.proc.pid)
        self._slots.clear()
        self._queue.clear()

    def __enter__(self) -> ProcessDecodePool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def decode_dali(key: str, settings: DecodeSettings) -> DecodeResult:
    """Decode one file with DALI in this process: frames stay on the decoder's device (CUDA for NVDEC).

    Frames over ``max_analysis_side`` are downscaled on the device (bilinear with antialias), the GPU twin of the
    worker's area filter.
    """
    import torch
    import torch.nn.functional as F

    from lib_deepfake.video import DEFAULT_MAX_PIXELS, open_video

    t0 = time.perf_counter()
    try:
        max_pixels = settings.max_pixels if settings.max_pixels is not None else DEFAULT_MAX_PIXELS
        with open_video(key, decoder="dali", device=settings.device, timeout_s=settings.timeout_s,
                        max_pixels=max_pixels, allow_truncated=settings.allow_truncated) as src:  # fmt: skip
            info = src.info
            rp = src.resolve(settings.plan)
            oh, ow, scale = analysis_size(info.display_height, info.display_width, settings.max_analysis_side)
            need = len(rp) * oh * ow * 3
            if need > settings.max_frame_bytes:
                raise FrameBudgetError(
                    f"the plan's {len(rp)} frames of {ow}x{oh} need {need / 2**30:.1f} GiB, over "
                    f"the {settings.max_frame_bytes / 2**30:.1f} GiB limit; sample fewer frames"
                )
            batch = src.read(rp.plan)
            frames = batch.frames
            if scale != 1.0 and len(frames):
                x = frames.permute(0, 3, 1, 2).float()
                x = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)
                frames = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
            return DecodeResult(key, frames, batch.indices, batch.times_s, info.as_dict(), scale,
                                time.perf_counter() - t0, list(batch.stats.missing), "dali")  # fmt: skip
    except (LibDeepfakeError, OSError, MemoryError, RuntimeError, ValueError) as exc:
        kind, reason = _error_fields(exc)
        return DecodeResult(key, decoder="dali", error=reason, error_kind=kind, decode_s=time.perf_counter() - t0)


class ThreadDecodePool:
    """In-process decoding on a thread pool (DALI/NVDEC: several files at once so several decoder engines work).

    Same interface as :class:`ProcessDecodePool`. ``fn(key, settings) -> DecodeResult`` must not raise.
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
        """Threads are ready at once (interface parity with :class:`ProcessDecodePool`)."""

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
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as fwait

        done, _ = fwait(self._futures, timeout=timeout, return_when=FIRST_COMPLETED)
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


def cpu_count_hint() -> int:
    return os.cpu_count() or 1


__all__ = [
    "DecodeResult", "DecodeSettings", "FrameBudgetError", "ProcessDecodePool", "ThreadDecodePool", "analysis_size",
    "decode_dali", "decode_for_scan", "run_decode",
]  # fmt: skip
