"""PyAV plumbing shared by probe, index and the PyAV source: opening with typed errors, deadlines, rotation."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from lib_deepfake.video.errors import (
    CorruptVideoError,
    DecodeTimeoutError,
    EmptyVideoError,
    NotAVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoFileError,
)

logger = logging.getLogger(__name__)

# libavformat demuxers that read single pictures or text, not video: a .jpg or .txt "opens" through them.
_NOT_VIDEO_FORMATS = ("image2", "_pipe", "tty", "image2pipe")


def require_av() -> Any:
    from lib_deepfake._optional import require

    return require("av", purpose="decoding video on the CPU")


class Deadline:
    """A wall-clock budget; :meth:`check` raises :class:`DecodeTimeoutError` once it is spent."""

    def __init__(self, seconds: float | None, path: str | Path | None, what: str = "decoding") -> None:
        self.seconds = seconds
        self.path = path
        self.what = what
        self.end = None if seconds is None or seconds <= 0 else time.monotonic() + seconds

    def check(self) -> None:
        if self.end is not None and time.monotonic() > self.end:
            raise DecodeTimeoutError(f"{self.what} exceeded the {self.seconds:g} s per-file time limit", self.path)


def open_input(path: str | Path) -> tuple[Any, Any]:
    """Open ``path`` and return ``(container, video_stream)``; every failure becomes a typed error."""
    av = require_av()
    p = Path(path)
    if not p.exists():
        raise NotAVideoError("file not found", p)
    if p.is_dir():
        raise NotAVideoError("is a directory, not a video file", p)
    if p.stat().st_size == 0:
        raise NotAVideoError("empty file (0 bytes)", p)
    try:
        container = av.open(str(p), mode="r", metadata_errors="ignore")
    except av.error.EOFError as exc:
        raise CorruptVideoError(f"file ends before its headers do (truncated?): {_msg(exc)}", p) from exc
    except av.error.InvalidDataError as exc:
        if _looks_like_mp4(p):
            raise CorruptVideoError("MP4/MOV file without its index (moov atom): truncated or unfinished", p) from exc
        raise NotAVideoError(f"not a video libav can read: {_msg(exc)}", p) from exc
    except av.FFmpegError as exc:
        if "moov atom not found" in str(exc):
            raise CorruptVideoError("MP4/MOV index (moov atom) missing: truncated or unfinished file", p) from exc
        raise NotAVideoError(f"cannot open: {_msg(exc)}", p) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise NotAVideoError(f"cannot open: {exc}", p) from exc
    try:
        fmt = container.format.name or ""
        if any(tag in fmt for tag in _NOT_VIDEO_FORMATS):
            raise NotAVideoError(f"not a video (libav reads it as {fmt!r}: a still image or text)", p)
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            what = "audio-only file" if kinds == ["audio"] else f"streams: {', '.join(kinds) or 'none'}"
            raise NoVideoStreamError(f"no video stream ({what})", p)
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise UnsupportedCodecError(f"no decoder for this video codec (tag {stream.codec_tag!r})", p)
    except VideoFileError:
        container.close()
        raise
    return container, stream


def _looks_like_mp4(p: Path) -> bool:
    # ISO-BMFF files start with a box whose type is "ftyp"; if such a file cannot be opened it was cut short.
    try:
        with p.open("rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return len(head) >= 8 and head[4:8] == b"ftyp"


def _msg(exc: BaseException) -> str:
    # av errors look like "[Errno 1094995529] Invalid data found when processing input: '/x.mp4'"; keep the middle.
    s = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(s).split())


def normalise_rotation(value: Any) -> int:
    """Display rotation in degrees counter-clockwise, snapped to 0/90/180/270 (others ignored with a log line)."""
    try:
        r = float(value or 0)
    except (TypeError, ValueError):
        return 0
    q = int(round(r / 90.0)) * 90
    if abs(r - q) > 1:
        logger.warning("ignoring non-right-angle display rotation %.1f deg", r)
        return 0
    return q % 360


def decode_error(exc: BaseException, path: str | Path | None, what: str = "decoding") -> VideoFileError:
    """Map an exception raised while demuxing/decoding to a typed error."""
    av = require_av()
    if isinstance(exc, VideoFileError):
        return exc
    if isinstance(exc, av.error.EOFError):
        return EmptyVideoError(f"{what}: no decodable frame before the end of the file", path)
    return CorruptVideoError(f"{what} failed: {_msg(exc)}", path)
