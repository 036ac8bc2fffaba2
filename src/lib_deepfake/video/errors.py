"""Typed video errors. Every one is a :class:`lib_deepfake.errors.VideoError` whose message is one line.

Callers that scan many files catch :class:`VideoError` (or :class:`lib_deepfake.errors.LibDeepfakeError`) per file,
record ``err.reason`` and go on; the subclasses let them count failure kinds.
"""

from __future__ import annotations

from pathlib import Path

from lib_deepfake.errors import VideoError


class VideoFileError(VideoError):
    """Base of the typed video errors; ``reason`` is the one-line explanation, ``path`` the file (may be None)."""

    def __init__(self, reason: str, path: str | Path | None = None) -> None:
        # One line, always: libav messages sometimes carry newlines.
        reason = " ".join(str(reason).split())
        self.reason = reason
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:
        # Picklable with its fields, so errors cross process boundaries (decode_in_subprocess, worker pools).
        return (type(self), (self.reason, self.path))


class NotAVideoError(VideoFileError):
    """The file is missing, empty, or not a container libav can open."""


class NoVideoStreamError(VideoFileError):
    """The container opens but holds no video stream (audio-only, subtitles, ...)."""


class EmptyVideoError(VideoFileError):
    """The video stream holds no decodable frame."""


class CorruptVideoError(VideoFileError):
    """Demuxing or decoding failed part-way (truncated file, damaged packets)."""


class UnsupportedCodecError(VideoFileError):
    """The chosen decoder cannot decode this codec (names the alternative, e.g. ``--decoder pyav``)."""


class ResolutionTooLargeError(VideoFileError):
    """The frame size exceeds the configured limit (protects memory before anything is decoded)."""


class DecodeTimeoutError(VideoFileError):
    """Decoding this file took longer than its per-file time limit."""


class PlanError(VideoFileError):
    """A sampling plan is malformed (bad parameters, an explicit index outside the video)."""


__all__ = [
    "CorruptVideoError",
    "DecodeTimeoutError",
    "EmptyVideoError",
    "NoVideoStreamError",
    "NotAVideoError",
    "PlanError",
    "ResolutionTooLargeError",
    "UnsupportedCodecError",
    "VideoError",
    "VideoFileError",
]
