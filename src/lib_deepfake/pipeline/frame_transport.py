"""Decoded frames from a decode worker to the scanning process without copying them through a pipe.

A 10 s 720p clip sampled at 32 frames is 88 MB of RGB; pushed through a pipe it costs ~0.2 s of CPU on each side
(about 8 % of the whole scan on the 2-core machine). Instead the worker decodes straight into a file on a RAM
filesystem (``/dev/shm``) that both processes map:

- the worker creates ``lib-deepfake-<worker pid>-<n>.frames``, reserves its size with ``posix_fallocate`` (a full
  tmpfs then fails cleanly with ENOSPC instead of killing the worker with SIGBUS on first write), maps it and
  decodes into the mapping;
- it sends the file's name; the parent maps it and unlinks it at once, so the memory goes back to the system as
  soon as the parent drops the array (when the video's crops exist) and nothing is left behind if it then dies;
- files of a worker that crashed or was killed mid-file are removed by the parent (:func:`remove_worker_files`),
  and :func:`sweep_orphans` removes those of processes that no longer exist (a parent killed with SIGKILL).

When ``/dev/shm`` is missing, not writable or too full, the worker falls back to the pipe for that video (logged
once at info level; results are identical, only slower).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import mmap
import os
import re
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

ENV_DIR = "LIB_DEEPFAKE_SHM_DIR"
PREFIX = "lib-deepfake-"
SUFFIX = ".frames"
#: Leave this much of the RAM filesystem free for everybody else.
HEADROOM_BYTES = 256 << 20
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-\d+{re.escape(SUFFIX)}$")
_counter = itertools.count()
_warned = False


def shm_dir() -> Path:
    """The RAM filesystem frames travel through: ``$LIB_DEEPFAKE_SHM_DIR`` or ``/dev/shm``."""
    return Path(os.environ.get(ENV_DIR) or "/dev/shm")


def shm_available(nbytes: int, directory: Path | None = None) -> bool:
    """Whether ``directory`` (default :func:`shm_dir`) can hold ``nbytes`` more (plus headroom) and is writable."""
    directory = directory or shm_dir()
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return os.access(directory, os.W_OK) and st.f_bavail * st.f_frsize >= nbytes + HEADROOM_BYTES


class SharedFrames:
    """A uint8 array of ``shape`` backed by a new file in ``directory`` (worker side).

    Raises:
        OSError: the file cannot be created or its space reserved (the caller falls back to the pipe).
    """

    def __init__(self, shape: tuple[int, ...], directory: Path | None = None) -> None:
        directory = directory or shm_dir()
        self.shape = tuple(int(s) for s in shape)
        nbytes = int(np.prod(self.shape, dtype=np.int64))
        self.path = directory / f"{PREFIX}{os.getpid()}-{next(_counter)}{SUFFIX}"
        self._map: mmap.mmap | None = None  # set before anything can fail: discard() reads it
        self.array = np.empty(self.shape if not nbytes else 0, np.uint8)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if nbytes:
                os.posix_fallocate(fd, 0, nbytes)
                self._map = mmap.mmap(fd, nbytes)
                self.array = np.frombuffer(self._map, np.uint8).reshape(self.shape)
        except BaseException:
            os.close(fd)
            self.discard()
            raise
        os.close(fd)

    def release(self) -> None:
        """Drop this process's mapping (the file stays for the parent)."""
        self.array = np.empty(0, np.uint8)
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a view still alive: the GC closes it later
                self._map.close()
            self._map = None

    def discard(self) -> None:
        """Release and delete the file (the frames were not sent)."""
        self.release()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def allocate_frames(shape: tuple[int, ...]) -> tuple[np.ndarray, SharedFrames | None]:
    """A writable uint8 array of ``shape`` for decoding into: shared when possible, else ordinary memory."""
    global _warned
    nbytes = int(np.prod(shape, dtype=np.int64))
    if nbytes and shm_available(nbytes):
        try:
            shared = SharedFrames(shape)
            return shared.array, shared
        except OSError as exc:
            reason = f"{shm_dir()}: {exc.strerror or exc}"
    else:
        reason = f"{shm_dir()} is missing, read-only or has too little free space"
    if not _warned:
        logger.info("frames go through the pipe (slower): %s", reason)
        _warned = True
    return np.empty(shape, np.uint8), None


def attach_frames(name: str, shape: tuple[int, ...], directory: Path | None = None) -> np.ndarray:
    """Map a worker's frame file (parent side) and unlink it; the array owns the mapping.

    Raises:
        OSError: the file is gone or shorter than ``shape`` needs.
    """
    if not _NAME.match(name):
        raise OSError(f"not a frame file name: {name!r}")
    path = (directory or shm_dir()) / name
    nbytes = int(np.prod(shape, dtype=np.int64))
    fd = os.open(path, os.O_RDWR)
    try:
        os.unlink(path)
        if os.fstat(fd).st_size < nbytes:
            raise OSError(f"frame file {name} holds {os.fstat(fd).st_size} bytes, {nbytes} expected")
        if nbytes == 0:
            return np.empty(shape, np.uint8)
        mapping = mmap.mmap(fd, nbytes)
    finally:
        os.close(fd)
    return np.frombuffer(mapping, np.uint8).reshape(shape)


def remove_worker_files(pid: int, directory: Path | None = None) -> int:
    """Delete every frame file a (dead) worker left; returns how many."""
    removed = 0
    for path in (directory or shm_dir()).glob(f"{PREFIX}{int(pid)}-*{SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def sweep_orphans(directory: Path | None = None) -> int:
    """Delete frame files whose worker process no longer exists (left by a scan that was SIGKILLed)."""
    directory = directory or shm_dir()
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        m = _NAME.match(name)
        if m and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError, PermissionError):
                (directory / name).unlink()
                removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


__all__ = ["ENV_DIR", "SharedFrames", "allocate_frames", "attach_frames", "remove_worker_files", "shm_available",
           "shm_dir", "sweep_orphans"]  # fmt: skip
