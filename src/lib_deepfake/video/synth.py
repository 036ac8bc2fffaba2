"""Synthetic test clips written with PyAV: used by the tests (``tests/helpers/media.py``) and ``lib-bench decode``.

Frames are cheap to make (a precomputed gradient rolled per frame, a few precomputed noise tiles, and an 8-bit
index code), so a 60 s 720p clip is encoder-bound, not generator-bound. The index code - 8 black/white cells in a
band at the top, bit b of ``frame_index % 256`` in cell b - survives lossy coding and lets tests check that a
decoder returned exactly the frame it claims (:func:`read_index_code`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

FrameFn = Callable[[int, int, int], np.ndarray]
"""``fn(index, width, height) -> uint8 [height, width, 3] RGB``."""

_CODE_BITS = 8
# Irregular frame durations (ms) for variable-frame-rate clips: mean 38.25 ms (about 26 fps).
VFR_PATTERN_MS = (20, 40, 33, 60)


def _code_band(height: int) -> int:
    return max(4, height // 6)


class SyntheticFrames:
    """Cheap moving content with an index code: ``SyntheticFrames(w, h)(i)`` -> uint8 [h, w, 3] RGB.

    Args:
        width, height: frame size in pixels (any, odd included).
        noise: add precomputed noise blocks (realistic bitrate for benchmarks); off gives smooth, tiny files.
        seed: RNG seed for the noise tiles.
    """

    def __init__(self, width: int, height: int, *, noise: bool = True, seed: int = 0) -> None:
        self.width, self.height, self.noise = width, height, noise
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        # Twice as wide so a per-frame horizontal roll is a cheap slice.
        base = np.stack(
            [
                (xx / max(width, 1) * 255),
                (yy / max(height, 1) * 255),
                ((xx + yy) / max(width + height, 1) * 255),
            ],
            axis=-1,
        ).astype(np.uint8)
        self._base = np.concatenate([base, base[:, ::-1]], axis=1)
        rng = np.random.default_rng(seed)
        self._tile = max(8, min(width, height) // 6)
        self._tiles = rng.integers(0, 256, size=(8, self._tile, self._tile, 3), dtype=np.uint8)

    def __call__(self, index: int, width: int | None = None, height: int | None = None) -> np.ndarray:
        w, h = self.width, self.height
        off = (index * 7) % w if w else 0
        img = np.ascontiguousarray(self._base[:, off : off + w])
        if self.noise:
            t = self._tile
            for j in range(3):
                # Blocks wander so that motion search has work to do, as in real video.
                y = (index * (3 + j) + j * 37) % max(h - t, 1)
                x = (index * (5 + 2 * j) + j * 91) % max(w - t, 1)
                img[y : y + t, x : x + t] = self._tiles[(index + j) % len(self._tiles)][: h - y, : w - x]
        draw_index_code(img, index)
        return img


def draw_index_code(img: np.ndarray, index: int) -> None:
    """Write ``index % 256`` into the top band of ``img`` (uint8 [H, W, 3], in place)."""
    h, w = img.shape[:2]
    band = _code_band(h)
    edges = np.linspace(0, w, _CODE_BITS + 1).astype(int)
    for b in range(_CODE_BITS):
        img[:band, edges[b] : edges[b + 1]] = 255 if (index >> b) & 1 else 0


def read_index_code(img: np.ndarray) -> int:
    """Read back the code written by :func:`draw_index_code` from a decoded uint8 [H, W, 3] (or [H, W]) frame."""
    a = np.asarray(img)
    if a.ndim == 3:
        a = a.mean(axis=2)
    h, w = a.shape[:2]
    band = _code_band(h)
    edges = np.linspace(0, w, _CODE_BITS + 1).astype(int)
    value = 0
    for b in range(_CODE_BITS):
        # Inner part of each cell only: chroma subsampling and deblocking smear the cell edges.
        x0, x1 = edges[b], edges[b + 1]
        mx, my = max((x1 - x0) // 4, 0), max(band // 4, 0)
        cell = a[my : max(band - my, my + 1), x0 + mx : max(x1 - mx, x0 + mx + 1)]
        if cell.mean() > 127:
            value |= 1 << b
    return value


def write_clip(
    path: str | Path,
    frames: int = 30,
    size: tuple[int, int] = (64, 48),
    fps: float = 30,
    codec: str = "libx264",
    *,
    gop: int | None = None,
    bframes: int | None = None,
    pix_fmt: str | None = None,
    rotation: int = 0,
    vfr: bool | Sequence[float] = False,
    content: FrameFn | None = None,
    noise: bool = False,
    audio: bool = False,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode a clip with PyAV.

    Args:
        path: output file; the container follows the suffix (.mp4, .mkv, .webm, .avi, .mov).
        frames: number of frames (0 writes a container with a video stream and no frames).
        size: (width, height).
        fps: nominal frame rate.
        codec: encoder name: libx264, libx265, libvpx-vp9, mjpeg, mpeg4, libsvtav1, ...
        gop: keyframe interval (fixed: scene-cut detection off where the encoder has it).
        bframes: max B-frames (None: encoder default).
        pix_fmt: yuv420p (default; yuvj420p for mjpeg), yuv420p10le, gray, yuv444p, ...
        rotation: display rotation in degrees counter-clockwise (container display matrix).
        vfr: True for irregular frame durations (:data:`VFR_PATTERN_MS` cycled), or explicit per-frame
            durations in seconds.
        content: ``fn(index, width, height) -> uint8 [H, W, 3] RGB``; default :class:`SyntheticFrames`.
        noise: noise blocks in the default content (bigger, realistic files).
        audio: add a short silent AAC track (when the container takes one).
        options: extra encoder options.
        container_options: muxer options, e.g. ``{"movflags": "faststart"}`` (index at the front of an MP4).

    Returns:
        ``path`` as a Path.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    gen = content or SyntheticFrames(w, h, noise=noise)
    pix_fmt = pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv420p")
    opts: dict[str, str] = {}
    if codec in ("libx264", "libx265") and gop is not None:
        key = "x264-params" if codec == "libx264" else "x265-params"
        opts[key] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
    if codec == "libx264":
        opts.setdefault("preset", "veryfast")
    if codec == "libx265":
        opts.setdefault("preset", "ultrafast")
        opts.setdefault("x265-params", "log-level=error")
    if codec == "libvpx-vp9":
        opts.update({"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"})
    if codec == "libsvtav1":
        opts.setdefault("preset", "12")
    if options:
        opts.update(options)

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream: Any = out.add_stream(codec, rate=rate, options=opts)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        if bframes is not None:
            stream.codec_context.max_b_frames = bframes
        if rotation:
            stream.set_display_rotation(rotation)
        durations: list[float] | None = None
        if vfr is True:
            durations = [VFR_PATTERN_MS[i % len(VFR_PATTERN_MS)] / 1000 for i in range(frames)]
        elif vfr:
            durations = [float(d) for d in vfr]  # type: ignore[union-attr]
        tb = Fraction(1, 1000) if durations else None
        if tb is not None:
            stream.codec_context.time_base = tb
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=16000)
        if frames == 0:
            out.start_encoding()  # headers only: a video stream that holds no frame (AVI keeps such a stream)
        t_ms = 0.0
        for i in range(frames):
            img = gen(i, w, h)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if pix_fmt not in ("rgb24",):
                vf = vf.reformat(format=pix_fmt)
            if durations is not None:
                vf.pts, vf.time_base = int(round(t_ms)), tb
                t_ms += durations[i % len(durations)] * 1000
            for pkt in stream.encode(vf):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
        if astream is not None:
            _write_silence(av, out, astream, seconds=max(frames / float(fps), 0.1))
    return path


def _write_silence(av, out, astream, seconds: float) -> None:  # noqa: ANN001 - av types are optional
    n = int(astream.rate * seconds)
    chunk = 1024
    for start in range(0, n, chunk):
        af = av.AudioFrame.from_ndarray(np.zeros((1, chunk), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = astream.rate, start
        for pkt in astream.encode(af):
            out.mux(pkt)
    for pkt in astream.encode():
        out.mux(pkt)


def write_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """A container with one silent AAC track and no video (for the audio-only error path)."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as out:
        astream = out.add_stream("aac", rate=16000)
        _write_silence(av, out, astream, seconds)
    return path


__all__ = ["VFR_PATTERN_MS", "SyntheticFrames", "draw_index_code", "read_index_code", "write_audio_only", "write_clip"]
