"""The frame index: every frame's pts, time and keyframe flag, from demuxing packets (no decoding)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lib_deepfake.video._av import Deadline, decode_error, open_input
from lib_deepfake.video.errors import CorruptVideoError, EmptyVideoError, VideoFileError
from lib_deepfake.video.info import DEFAULT_TIMEOUT_S, VideoInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoIndex:
    """Per-frame table of a video stream in presentation order.

    Attributes:
        pts: int64 [F] presentation timestamps in ``time_base`` units, ascending.
        times_s: float64 [F] seconds since the first frame (``(pts - pts[0]) * time_base``).
        is_key: bool [F] keyframe (random-access point) flags.
        time_base: stream time base.
        truncated: demuxing stopped at a damaged or missing part of the file; frames after it are not listed.
    """

    pts: np.ndarray
    times_s: np.ndarray
    is_key: np.ndarray
    time_base: Fraction
    truncated: bool = False
    keyframe_indices: np.ndarray = field(init=False)
    _pts_to_index: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyframe_indices", np.flatnonzero(self.is_key).astype(np.int64))
        object.__setattr__(self, "_pts_to_index", {int(p): i for i, p in enumerate(self.pts.tolist())})

    @property
    def frame_count(self) -> int:
        return len(self.pts)

    @property
    def duration_s(self) -> float:
        """Time of the last frame (0 for a single frame)."""
        return float(self.times_s[-1]) if len(self.times_s) else 0.0

    def keyframe_before(self, i: int) -> int:
        """Index of the last keyframe at or before frame ``i`` (0 when none: decoding starts at the file start)."""
        keys = self.keyframe_indices
        j = int(np.searchsorted(keys, i, side="right")) - 1
        return int(keys[j]) if j >= 0 else 0

    def index_of_pts(self, pts: int | None) -> int | None:
        """Frame index of a decoded frame's pts (nearest listed pts when it is not listed exactly)."""
        if pts is None or len(self.pts) == 0:
            return None
        i = self._pts_to_index.get(int(pts))
        if i is not None:
            return i
        j = int(np.searchsorted(self.pts, pts))
        if j <= 0:
            return 0
        if j >= len(self.pts):
            return len(self.pts) - 1
        return j if (self.pts[j] - pts) < (pts - self.pts[j - 1]) else j - 1


def build_index(path: str | Path, *, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> VideoIndex:
    """Demux the first video stream and list its frames (reads the file, decodes nothing).

    Raises:
        NotAVideoError, NoVideoStreamError, CorruptVideoError, DecodeTimeoutError (all ``VideoError``).
    """
    container, stream = open_input(path)
    try:
        return index_container(container, stream, path, Deadline(timeout_s, path, "indexing"))
    finally:
        container.close()


def index_container(container: Any, stream: Any, path: str | Path, deadline: Deadline) -> VideoIndex:
    """:func:`build_index` on an opened container; seeks it to the start first and leaves it at the end."""
    if container.streams.video[0] is not stream:
        raise ValueError("stream must be the container's first video stream")
    pts_list: list[int] = []
    key_list: list[bool] = []
    truncated = False
    try:
        container.seek(0, stream=stream, backward=True, any_frame=False)
    except Exception as exc:  # noqa: BLE001 - unseekable input: read from wherever we are (fresh containers are at 0)
        logger.debug("seek to start failed before indexing %s: %s", path, exc)
    try:
        for packet in container.demux(stream):
            if len(pts_list) % 256 == 0:
                deadline.check()
            if packet.size == 0:  # the flush packet at the end
                continue
            if packet.is_discard:
                # Edit lists (e.g. phone MOVs) mark leading frames "decode but never show": not frames of the video.
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                # No timestamp at all (rare raw streams): place it one tick after the previous one.
                ts = (pts_list[-1] + 1) if pts_list else 0
            pts_list.append(int(ts))
            key_list.append(bool(packet.is_keyframe))
    except VideoFileError:
        raise
    except Exception as exc:  # noqa: BLE001
        if not pts_list:
            raise decode_error(exc, path, "demuxing") from exc
        truncated = True
        logger.warning("%s: demuxing stopped after %d packets (%s); later frames are not indexed", path,
                       len(pts_list), exc)  # fmt: skip
    pts = np.asarray(pts_list, np.int64)
    keys = np.asarray(key_list, bool)
    order = np.argsort(pts, kind="stable")
    pts, keys = pts[order], keys[order]
    if len(pts) and np.any(np.diff(pts) == 0):
        # Duplicate timestamps would make pts -> index ambiguous; keep the first of each.
        keep = np.concatenate([[True], np.diff(pts) != 0])
        logger.warning("%s: %d packets with duplicate timestamps ignored", path, int((~keep).sum()))
        pts, keys = pts[keep], keys[keep]
    tb = Fraction(stream.time_base) if stream.time_base is not None else Fraction(1, 1)
    times = (pts - (pts[0] if len(pts) else 0)).astype(np.float64) * float(tb)
    return VideoIndex(pts=pts, times_s=times, is_key=keys, time_base=tb, truncated=truncated)


def check_complete(info: VideoInfo, index: VideoIndex, path: str | Path, *,
                   allow_truncated: bool = False) -> str | None:  # fmt: skip
    """Raise :class:`CorruptVideoError` when the file holds fewer frames than its header promises; with
    ``allow_truncated``, return why it is truncated instead (None: complete).

    Evidence used: demuxing stopped on an error, the header's exact frame count (``nb_frames``) exceeds the
    packets found, or the stream-level duration is more than 5 % + 2 frames longer than the last frame's time.
    Container-level durations are not used when there is audio (the audio track may simply run longer).
    With ``allow_truncated`` the readable part is decoded and a warning is logged instead.
    """
    if index.frame_count == 0:
        raise EmptyVideoError("the video stream holds no frames", path)
    reason = None
    if index.truncated:
        reason = "demuxing stopped at a damaged part"
    elif info.frame_count_exact and index.frame_count < info.frame_count:
        reason = f"the header lists {info.frame_count} frames but only {index.frame_count} are present"
    elif info.fps > 0 and (info.duration_source == "stream" or not info.has_audio) and info.duration_s > 0:
        present = index.duration_s + 1.0 / info.fps
        if present + 2.0 / info.fps < 0.95 * info.duration_s:
            reason = f"the header says {info.duration_s:.2f} s but frames end at {present:.2f} s"
    if reason is None:
        return None
    if allow_truncated:
        logger.warning("%s: truncated video (%s); decoding the %d frames present", path, reason, index.frame_count)
        return reason
    raise CorruptVideoError(f"truncated video: {reason} (allow_truncated=True decodes the rest)", path)


__all__ = ["VideoIndex", "build_index", "check_complete", "index_container"]
