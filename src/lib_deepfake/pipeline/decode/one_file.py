"""Decoding one file of a scan: its sampled frames as one uint8 array, or an error result (never an exception).

- :func:`decode_for_scan` - PyAV, run inside a decode worker process; decodes straight into the array the worker
  allocates (shared memory, see ``frame_transport``).
- :func:`decode_dali` - DALI in this process (NVDEC on the GPU path); frames stay on the decoder's device.
- :func:`run_decode` - the PyAV decode in this process, every failure turned into an error result.

Frames larger than ``max_analysis_side`` are downscaled first, and a plan whose frames would exceed
``max_frame_bytes`` is refused before any frame is decoded (:class:`FrameBudgetError`).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.pipeline.config import DecodeSettings

#: What a failed decode of one file may raise; anything else is a bug and propagates.
DECODE_FAILURES = (LibDeepfakeError, OSError, MemoryError, RuntimeError, ValueError)


class FrameBudgetError(LibDeepfakeError):
    """The sampled frames of one video would need more memory than ``max_frame_bytes``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


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


def _check_frame_budget(frames: int, height: int, width: int, limit: int) -> None:
    need = frames * height * width * 3
    if need > limit:
        raise FrameBudgetError(
            f"the plan's {frames} frames of {width}x{height} need {need / 2**30:.1f} GiB, over the "
            f"{limit / 2**30:.1f} GiB limit; sample fewer frames"
        )


def _max_pixels(settings: DecodeSettings) -> int:
    from lib_deepfake.video import DEFAULT_MAX_PIXELS

    return settings.max_pixels if settings.max_pixels is not None else DEFAULT_MAX_PIXELS


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
    from lib_deepfake.video import open_video

    t0 = time.perf_counter()
    with open_video(path, decoder="pyav", threads=settings.threads, timeout_s=settings.timeout_s,
                    max_pixels=_max_pixels(settings), allow_truncated=settings.allow_truncated) as src:  # fmt: skip
        info = src.info
        rp = src.resolve(settings.plan)
        dh, dw = info.display_height, info.display_width
        oh, ow, scale = analysis_size(dh, dw, settings.max_analysis_side)
        _check_frame_budget(len(rp), oh, ow, settings.max_frame_bytes)
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


def resolve_decode_fn(spec: str | None) -> Callable[..., dict[str, Any]]:
    """The worker's decode function: :func:`decode_for_scan`, or the "module:function" hook of ``spec``."""
    if not spec:
        return decode_for_scan
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def error_fields(exc: BaseException) -> tuple[str, str]:
    """(error class name, one-line reason) of a failed decode."""
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return type(exc).__name__, " ".join(str(reason).split())


def failed(key: str, exc: BaseException, decoder: str, decode_s: float = 0.0) -> DecodeResult:
    """The error result of a file whose decode raised ``exc``."""
    kind, reason = error_fields(exc)
    return DecodeResult(key, decoder=decoder, error=reason, error_kind=kind, decode_s=decode_s)


def run_decode(key: str, settings: DecodeSettings) -> DecodeResult:
    """Decode in this process, turning every failure into an error result (never raises for a bad file)."""
    try:
        payload = resolve_decode_fn(settings.decode_fn)(key, settings)
    except DECODE_FAILURES as exc:
        return failed(key, exc, settings.decoder)
    return DecodeResult(key, payload["frames"], payload["indices"], payload["times_s"], payload["info"],
                        payload["scale"], payload["decode_s"], payload["missing"], settings.decoder)  # fmt: skip


def decode_dali(key: str, settings: DecodeSettings) -> DecodeResult:
    """Decode one file with DALI in this process: frames stay on the decoder's device (CUDA for NVDEC).

    Frames over ``max_analysis_side`` are downscaled on the device (bilinear with antialias), the GPU twin of the
    worker's area filter.
    """
    import torch
    import torch.nn.functional as F

    from lib_deepfake.video import open_video

    t0 = time.perf_counter()
    try:
        with open_video(key, decoder="dali", device=settings.device, timeout_s=settings.timeout_s,
                        max_pixels=_max_pixels(settings), allow_truncated=settings.allow_truncated) as src:  # fmt: skip
            info = src.info
            rp = src.resolve(settings.plan)
            oh, ow, scale = analysis_size(info.display_height, info.display_width, settings.max_analysis_side)
            _check_frame_budget(len(rp), oh, ow, settings.max_frame_bytes)
            batch = src.read(rp.plan)
            frames = batch.frames
            if scale != 1.0 and len(frames):
                x = frames.permute(0, 3, 1, 2).float()
                x = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)
                frames = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
            return DecodeResult(key, frames, batch.indices, batch.times_s, info.as_dict(), scale,
                                time.perf_counter() - t0, list(batch.stats.missing), "dali")  # fmt: skip
    except DECODE_FAILURES as exc:
        return failed(key, exc, "dali", time.perf_counter() - t0)


__all__ = ["DECODE_FAILURES", "DecodeResult", "FrameBudgetError", "analysis_size", "decode_dali", "decode_for_scan",
           "error_fields", "failed", "resolve_decode_fn", "run_decode"]  # fmt: skip
