"""The CPU decode path of a scan: worker processes, one file at a time each, with crash and hang isolation.

:class:`ProcessDecodePool`: N long-lived worker processes talking over a pipe. The parent knows which file every
worker holds, so

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
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import multiprocessing as mp
import signal
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.pipeline.config import DecodeSettings
from lib_deepfake.pipeline.decode.one_file import DecodeResult, error_fields, resolve_decode_fn

logger = logging.getLogger(__name__)

#: How long a worker may take to start (interpreter, torch and av imports) before it is replaced.
WORKER_START_TIMEOUT_S = 120.0


def _worker_main(conn: Any, settings: DecodeSettings) -> None:
    # Ctrl-C goes to the whole process group; the parent decides what to do, workers just stop with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import torch

        torch.set_num_threads(1)  # frames only pass through torch here; its pool would compete with the parent
    except ImportError:  # pragma: no cover
        pass
    fn = resolve_decode_fn(settings.decode_fn)
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
            kind, reason = error_fields(exc)
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
        self.start_timeout_s = WORKER_START_TIMEOUT_S
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

    def wait_ready(self, timeout_s: float = WORKER_START_TIMEOUT_S) -> None:
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


__all__ = ["ProcessDecodePool", "vm_hwm_kib"]
