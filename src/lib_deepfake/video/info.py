"""Probing: stream facts from the headers plus, at most, the first decoded frame."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lib_deepfake.video._av import Deadline, decode_error, normalise_rotation, open_input
from lib_deepfake.video.errors import EmptyVideoError, ResolutionTooLargeError, VideoFileError

logger = logging.getLogger(__name__)

#: Largest frame (width * height) decoded by default: 8192 x 4320 (8K DCI-ish). One such RGB frame is 106 MB, and a
#: 32-frame batch 3.4 GB, so larger frames are refused before anything is decoded. Raise it per call if needed.
DEFAULT_MAX_PIXELS = 8192 * 4320
#: Per-file time limit in seconds for each of: open (probe + index) and every read of a plan.
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video's first video stream.

    Attributes:
        path: file path.
        container: libavformat demuxer name ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", ...).
        codec: decoder name ("h264", "hevc", "vp9", "av1"/"libdav1d", "mjpeg", ...).
        width, height: coded frame size (before rotation).
        rotation: display rotation, degrees counter-clockwise (0, 90, 180, 270).
        display_width, display_height: frame size after rotation (the size of decoded frames we return).
        fps: average frame rate (frames per second; for VFR the mean).
        duration_s: stream (or container) duration in seconds; 0 when unknown.
        frame_count: frames according to the header (``nb_frames``), else ``round(duration_s * fps)``.
        frame_count_exact: False when ``frame_count`` is the duration*fps estimate. Plans never use this count:
            they resolve against :class:`~lib_deepfake.video.index.VideoIndex`, which counts packets.
        pix_fmt: decoder pixel format ("yuv420p", "yuv420p10le", "gray", ...).
        bit_depth: bits per luma sample.
        has_audio: the container also holds an audio stream.
        duration_source: "stream", "container" (may include audio) or "none".
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    rotation: int
    display_width: int
    display_height: int
    fps: float
    duration_s: float
    frame_count: int
    frame_count_exact: bool
    pix_fmt: str
    bit_depth: int
    has_audio: bool
    duration_source: str = "stream"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(
    path: str | Path,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    decode_first_frame: bool = True,
) -> VideoInfo:
    """Read a video's stream facts without decoding it.

    Reads the container headers and, with ``decode_first_frame`` (default), decodes the first frame only: that is
    where the display rotation is read, and a file that cannot produce one frame fails here instead of mid-batch.

    Args:
        path: the video file.
        max_pixels: refuse frames larger than this (width * height); None disables the check.
        timeout_s: time limit for probing.
        decode_first_frame: decode one frame (rotation, early failure); False reads headers only (rotation 0).

    Raises:
        NotAVideoError, NoVideoStreamError, EmptyVideoError, CorruptVideoError, UnsupportedCodecError,
        ResolutionTooLargeError, DecodeTimeoutError: all :class:`lib_deepfake.errors.VideoError`.
    """
    container, stream = open_input(path)
    try:
        return probe_container(
            container, stream, path, max_pixels=max_pixels, deadline=Deadline(timeout_s, path, "probing"),
            decode_first_frame=decode_first_frame,
        )  # fmt: skip
    finally:
        container.close()


def probe_container(
    container: Any,
    stream: Any,
    path: str | Path,
    *,
    max_pixels: int | None,
    deadline: Deadline,
    decode_first_frame: bool = True,
) -> VideoInfo:
    """:func:`probe` on an already opened container (leaves it positioned after the first frame)."""
    ctx = stream.codec_context
    width, height = int(ctx.width or stream.width or 0), int(ctx.height or stream.height or 0)
    if max_pixels is not None and width * height > max_pixels:
        raise ResolutionTooLargeError(
            f"frame size {width}x{height} exceeds the limit of {max_pixels} pixels (max_pixels)", path
        )
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration, dsrc = float(stream.duration * stream.time_base), "stream"
    elif container.duration is not None:
        duration, dsrc = container.duration / 1_000_000, "container"  # AV_TIME_BASE units
    else:
        duration, dsrc = 0.0, "none"
    if stream.frames and stream.frames > 0:
        frame_count, exact = int(stream.frames), True
    else:
        frame_count, exact = int(round(duration * fps)), False
    pix_fmt = ctx.format.name if ctx.format is not None else (ctx.pix_fmt or "")
    rotation = 0
    if decode_first_frame:
        first = _first_frame(container, stream, path, deadline)
        rotation = normalise_rotation(getattr(first, "rotation", 0))
        width, height = first.width or width, first.height or height
        pix_fmt = first.format.name
        if max_pixels is not None and width * height > max_pixels:
            raise ResolutionTooLargeError(
                f"frame size {width}x{height} exceeds the limit of {max_pixels} pixels (max_pixels)", path
            )
    dw, dh = (height, width) if rotation in (90, 270) else (width, height)
    return VideoInfo(
        path=str(path),
        container=container.format.name or "",
        codec=canonical_codec(ctx.name or ""),
        width=width,
        height=height,
        rotation=rotation,
        display_width=dw,
        display_height=dh,
        fps=fps,
        duration_s=duration,
        frame_count=frame_count,
        frame_count_exact=exact,
        pix_fmt=pix_fmt or "",
        bit_depth=_bit_depth(pix_fmt),
        has_audio=bool(container.streams.audio),
        duration_source=dsrc,
    )


def _first_frame(container: Any, stream: Any, path: str | Path, deadline: Deadline) -> Any:
    try:
        for packet in container.demux(stream):
            deadline.check()
            for frame in packet.decode():
                return frame
    except VideoFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any libav failure is a property of the file
        raise decode_error(exc, path, "decoding the first frame") from exc
    raise EmptyVideoError("the video stream holds no decodable frame", path)


# Decoder names that differ from the codec name (PyAV reports the decoder libavcodec picked).
_CODEC_ALIASES = {"libdav1d": "av1", "libaom-av1": "av1", "av1_cuvid": "av1", "libvpx-vp9": "vp9", "libvpx": "vp8",
                  "h264_cuvid": "h264", "hevc_cuvid": "hevc", "libopenh264": "h264"}  # fmt: skip


def canonical_codec(name: str) -> str:
    """Codec name (h264, hevc, vp9, av1, ...) from a libavcodec decoder name."""
    return _CODEC_ALIASES.get(name, name)


def _bit_depth(pix_fmt: str) -> int:
    try:
        import av

        return int(av.VideoFormat(pix_fmt).components[0].bits)
    except Exception:  # noqa: BLE001 - unknown formats report 8
        return 8


__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_TIMEOUT_S", "VideoInfo", "canonical_codec", "probe", "probe_container"]
