"""DALI decoding: NVDEC on a GPU (frames stay on the GPU as torch CUDA tensors), DALI's CPU decoder otherwise.

One ``@pipeline_def`` serves both: ``external_source("enc")`` (the file's bytes) and ``external_source("frames")``
(the plan's frame indices, int32) feed ``fn.decoders.video(enc, device=..., frames=...)``; ``device`` is "mixed"
(NVDEC) or "cpu". Plans are resolved by :mod:`lib_deepfake.video.sampling` against the PyAV-built
:class:`VideoIndex`, so both decoders get the same indices. DALI numbers frames in presentation order from its own
index (``build_index=True``), which matches ours on the clips we test.

Where DALI's idea of the frame count differs from ours (edit lists, leading B-frames, VFR), its default
``pad_mode="constant"`` would return black frames for indices past its end, silently (a ``no_face`` row). The
decoder runs with ``pad_mode="none"`` (DALI then raises for such an index) and every run's frame count is checked:
either way the file fails with :class:`FrameCountMismatchError`, an error row naming ``--decoder pyav``.

The GPU is the one the caller names (``device="cuda:1"``/``"gpu:1"``; bare ``"gpu"``/``"cuda"`` is GPU 0), never
``torch.cuda.current_device()``, which is 0 in every decode thread. Frames come back as coded; the display rotation
is applied here (:func:`rotation_to_apply` also recognises a decoder that already rotated 90/270-degree frames).

Codec support is checked **before** decoding (:func:`dali_codec_support`). DALI's CPU decoder handles only VP8,
VP9 and MJPEG; NVDEC depends on the GPU generation (no AV1 before Ampere GA10x, so none on A100/H100/H200; no
10-bit H.264). An unsupported stream raises :class:`UnsupportedCodecError` naming ``--decoder pyav``: we never
switch decoders silently.

Memory knobs: ``prefetch_queue_depth=1`` (one batch in flight: the inputs are fed just before each run) and
``chunk_frames`` (frames per run; one run holds ``chunk_frames`` RGB frames in device memory plus DALI's own
decode surfaces).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lib_deepfake.video._av import Deadline
from lib_deepfake.video.errors import CorruptVideoError, UnsupportedCodecError, VideoFileError
from lib_deepfake.video.frames import DecodeStats, Frame, FrameBatch, SourceBase, check_batch_size, stack_frames
from lib_deepfake.video.index import VideoIndex, check_complete, index_container
from lib_deepfake.video.info import DEFAULT_MAX_PIXELS, DEFAULT_TIMEOUT_S, VideoInfo, probe_container
from lib_deepfake.video.sampling import ResolvedPlan, SamplingPlan

logger = logging.getLogger(__name__)

#: Codecs DALI's CPU video decoder supports (DALI docs: "VP8, VP9 and MJPEG work on CPU and GPU").
DALI_CPU_CODECS = frozenset({"vp8", "vp9", "mjpeg"})
#: Codecs DALI's mixed (NVDEC) decoder supports at all; per-GPU limits in :func:`dali_codec_support`.
DALI_GPU_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mjpeg", "mpeg4"})
# NVDEC bit depths per codec (NVDEC application note, Turing..Hopper columns); 4:2:0 chroma only for simplicity.
_NVDEC_MAX_BITS = {"h264": 8, "hevc": 12, "vp8": 8, "vp9": 12, "av1": 10, "mjpeg": 8, "mpeg4": 8}
_YUV420 = ("yuv420p", "yuvj420p", "nv12", "yuv420p10le", "yuv420p12le", "p010le", "p016le")


def nvdec_has_av1(compute_capability: tuple[int, int]) -> bool:
    """AV1 decode exists on GA10x (8.6/8.7), Ada (8.9) and Blackwell (10.x, 12.x); not on Turing, A100, Hopper."""
    major, minor = compute_capability
    return (major == 8 and minor >= 6) or major >= 10


def dali_codec_support(
    codec: str, pix_fmt: str, device: str, compute_capability: tuple[int, int] | None = None
) -> str | None:
    """Why DALI cannot decode this stream on ``device`` ("cpu" or "gpu"), or None when it can. Pure function.

    Args:
        codec: canonical codec name (:func:`lib_deepfake.video.info.canonical_codec`).
        pix_fmt: decoded pixel format reported by libavcodec.
        device: "cpu" (DALI CPU decoder) or "gpu" (NVDEC via the mixed backend).
        compute_capability: the GPU's (major, minor); needed for AV1 on "gpu".
    """
    if device == "cpu":
        if codec not in DALI_CPU_CODECS:
            return f"DALI's CPU decoder supports only VP8, VP9 and MJPEG, not {codec}"
        return None
    if codec not in DALI_GPU_CODECS:
        return f"NVDEC (DALI mixed decoder) does not support {codec}"
    if codec == "av1" and compute_capability is not None and not nvdec_has_av1(compute_capability):
        cc = ".".join(map(str, compute_capability))
        return f"this GPU (compute capability {cc}) has no AV1 decoder in NVDEC"
    if codec != "mjpeg" and pix_fmt and pix_fmt not in _YUV420:
        return f"NVDEC path supports 4:2:0 YUV only, not {pix_fmt}"
    bits = 10 if "10" in pix_fmt or pix_fmt == "p010le" else 12 if "12" in pix_fmt else 8
    if bits > _NVDEC_MAX_BITS.get(codec, 8):
        return f"NVDEC does not decode {bits}-bit {codec}"
    return None


class FrameCountMismatchError(CorruptVideoError):
    """DALI returned fewer (or more) frames than asked: its frame count disagrees with the PyAV index."""


def parse_dali_device(device: str | None, cuda_available: bool) -> tuple[str, int | None]:
    """``device`` -> ("gpu", GPU index) or ("cpu", None). Pure function.

    Accepts None (the GPU 0 when CUDA is available, else the CPU), "cpu", "gpu"/"cuda"/"mixed" (GPU 0) and
    "gpu:N"/"cuda:N". The index is explicit so decode threads never fall back to the thread's current device.

    Raises:
        ContractError: anything else.
    """
    from lib_deepfake.errors import ContractError

    if device is None:
        return ("gpu", 0) if cuda_available else ("cpu", None)
    kind, _, index = str(device).partition(":")
    if kind == "cpu" and not index:
        return "cpu", None
    if kind in ("gpu", "cuda", "mixed") and (not index or index.isdigit()):
        return "gpu", int(index or 0)
    raise ContractError(f"DALI device must be 'cpu', 'gpu' or 'gpu:N' (or cuda[:N]), got {device!r}")


def check_frame_count(asked: int, got: int, path: Path | str) -> None:
    """Raise :class:`FrameCountMismatchError` unless a decode run returned exactly the frames asked for."""
    if got != asked:
        raise FrameCountMismatchError(
            f"DALI returned {got} frames for the {asked} asked: its frame count disagrees with the index (edit list, "
            "leading B-frames or variable frame rate?); use --decoder pyav for this file",
            path,
        )


def rotation_to_apply(rotation: int, frame_hw: tuple[int, int], coded_hw: tuple[int, int], path: Path | str) -> int:
    """Degrees (counter-clockwise) still to rotate a decoded frame for display. Pure function.

    DALI returns frames as coded (its CPU decoder does, tested; NVDEC is checked by a GPU test): then the whole
    ``rotation`` is left to apply. A 90/270-degree frame that already has the display shape was rotated by the
    decoder, and is not rotated again. For 180 degrees and square frames the shape cannot tell, so the decoder is
    taken to return coded frames.

    Raises:
        CorruptVideoError: the frame matches neither the coded nor the display size.
    """
    h, w = coded_hw
    if rotation in (90, 270) and h != w and tuple(frame_hw) == (w, h):
        logger.debug("%s: the decoder returned frames already rotated by %d degrees", path, rotation)
        return 0
    if tuple(frame_hw) == (h, w):
        return rotation
    raise CorruptVideoError(f"decoded frames are {frame_hw[1]}x{frame_hw[0]}, the stream says {w}x{h}", path)


def _make_pipeline(decoder_device: str, device_id: int | None, threads: int) -> Any:
    """Build the decode pipeline; ``decoder_device`` is "mixed" (NVDEC) or "cpu"."""
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=1, num_threads=max(threads, 1), device_id=device_id, prefetch_queue_depth=1,
                  exec_dynamic=True)  # type: ignore[call-overload]  # fmt: skip
    def video_pipe() -> Any:
        enc = fn.external_source(name="enc", dtype=types.DALIDataType.UINT8, ndim=1, device="cpu")
        wanted = fn.external_source(name="frames", dtype=types.DALIDataType.INT32, ndim=1, device="cpu")
        # pad_mode="none": an index past DALI's own end is an error, never a black frame.
        return fn.decoders.video(enc, device=decoder_device, frames=wanted, pad_mode="none", name="decoder")

    pipe = video_pipe()
    pipe.build()
    return pipe


class DaliVideoSource(SourceBase):
    """A video decoded by DALI. Implements :class:`~lib_deepfake.video.frames.VideoSource`.

    Probing and indexing use PyAV (headers + demux, no decoding), so plans resolve exactly as for
    :class:`~lib_deepfake.video.pyav_source.PyAVSource`.

    Args:
        path: the video file.
        device: "gpu:N" (NVDEC on GPU N; frames are torch CUDA tensors there; "gpu" is GPU 0), "cpu" (DALI CPU
            decoder; VP8/VP9/MJPEG only), or None for GPU 0 when CUDA is available, else "cpu". "cuda[:N]" works too.
        threads: DALI CPU threads.
        timeout_s: time limit for opening and for each read; checked between decode runs (one DALI run of
            ``chunk_frames`` frames is not interruptible - use :func:`~lib_deepfake.video.api.decode_in_subprocess`
            for a hard limit).
        allow_truncated: decode the readable part of a truncated file (warning) instead of raising
            :class:`CorruptVideoError`.
        max_pixels: refuse larger frames before decoding.
        chunk_frames: frames decoded per DALI run.

    Raises:
        UnsupportedCodecError: DALI cannot decode this stream on ``device`` (message names ``--decoder pyav``).
        MissingDependencyError: DALI is not installed.
    """

    name = "dali"

    def __init__(
        self,
        path: str | Path,
        *,
        device: str | None = None,
        threads: int = 0,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        allow_truncated: bool = False,
        chunk_frames: int = 32,
    ) -> None:
        from lib_deepfake._optional import require
        from lib_deepfake.video._av import open_input

        require("nvidia.dali", purpose="decoding video with DALI (--decoder dali)")
        import torch

        self.path = Path(path)
        self.timeout_s = timeout_s
        self.chunk_frames = max(int(chunk_frames), 1)
        self.device, self.device_id = parse_dali_device(device, torch.cuda.is_available())
        self._threads = threads or 2
        self._stats = DecodeStats()
        container, stream = open_input(self.path)
        try:
            deadline = Deadline(timeout_s, self.path, "opening")
            self._info: VideoInfo = probe_container(container, stream, self.path, max_pixels=max_pixels,
                                                    deadline=deadline)  # fmt: skip
            self._index: VideoIndex = index_container(container, stream, self.path, deadline)
            check_complete(self._info, self._index, self.path, allow_truncated=allow_truncated)
        finally:
            container.close()
        cc = torch.cuda.get_device_capability(self.device_id) if self.device == "gpu" else None
        why = dali_codec_support(self._info.codec, self._info.pix_fmt, self.device, cc)
        if why:
            raise UnsupportedCodecError(f"{why}; use --decoder pyav (decoder='pyav') for this file", self.path)
        self._pipe: Any = self._build()
        # DALI parses the container from memory; the whole file is read once per source.
        self._data = np.fromfile(self.path, dtype=np.uint8)

    def read(self, plan: SamplingPlan | str) -> FrameBatch:
        rp = self.resolve(plan)
        check_batch_size(len(rp), self._info.display_height, self._info.display_width, self.path)
        frames = [Frame(f.image.clone(), f.index, f.time_s) for f in self._iter_resolved(rp)]
        dev = f"cuda:{self.device_id}" if self.device == "gpu" else "cpu"
        return stack_frames(frames, info=self._info, plan=rp, stats=self._stats, decoder=self.name, device=dev)

    def close(self) -> None:
        self._pipe = None
        self._data = np.zeros(0, np.uint8)

    def _build(self) -> Any:
        return _make_pipeline("mixed" if self.device == "gpu" else "cpu", self.device_id, self._threads)

    def _decode_chunk(self, chunk: np.ndarray) -> Any:
        """One DALI run: uint8 [len(chunk), H, W, 3] frames as coded (a torch view of DALI's output buffer)."""
        import torch

        if self._pipe is None:
            self._pipe = self._build()
        self._pipe.feed_input("enc", [self._data])
        self._pipe.feed_input("frames", [chunk])
        try:
            (out,) = self._pipe.run()
        except Exception as exc:  # noqa: BLE001 - DALI raises RuntimeError for every decode failure
            self._pipe = None  # DALI invalidates a pipeline after an error; the next read builds a new one
            raise _dali_error(exc, self.path) from exc
        # Batch of one sample, FHWC. DLPack hands torch DALI's buffer and orders torch's current stream after
        # DALI's work on it (DALI inserts the event), so no host synchronisation is needed.
        seq = torch.from_dlpack(out[0])
        check_frame_count(len(chunk), int(seq.shape[0]), self.path)
        return seq

    def _iter_resolved(self, rp: ResolvedPlan) -> Iterator[Frame]:
        import torch

        stats = self._stats = DecodeStats()
        deadline = Deadline(self.timeout_s, self.path, "decoding")
        t0 = time.perf_counter()
        wanted = np.asarray(rp.indices, np.int32)
        coded = (self._info.height, self._info.width)
        try:
            for start in range(0, len(wanted), self.chunk_frames):
                deadline.check()
                chunk = wanted[start : start + self.chunk_frames]
                seq = self._decode_chunk(chunk)
                rot = rotation_to_apply(self._info.rotation, tuple(seq.shape[1:3]), coded, self.path)
                stats.frames_converted += len(chunk)
                stats.frames_decoded = -1  # DALI does not report the frames it decoded to reach these
                stats.seeks += 1
                for j, idx in enumerate(chunk.tolist()):
                    img = seq[j]
                    if rot:
                        img = torch.rot90(img, k=rot // 90, dims=(0, 1)).contiguous()
                    # Valid until the next run: read() clones; iter_frames callers must clone to keep it.
                    yield Frame(image=img, index=int(idx), time_s=float(self._index.times_s[idx]))
        finally:
            stats.wall_s = time.perf_counter() - t0


def _dali_error(exc: BaseException, path: Path) -> VideoFileError:
    msg = " ".join(str(exc).split())
    if "out-of-bounds frame index" in msg:
        detail = msg[msg.find("Unexpected out-of-bounds") :].split(". ")[0]
        return FrameCountMismatchError(
            f"DALI has fewer frames than the index ({detail[:160]}): its frame count disagrees with the index "
            "(edit list, leading B-frames or variable frame rate?); use --decoder pyav for this file",
            path,
        )
    if "not supported" in msg or "nvcuvid" in msg.lower():
        return UnsupportedCodecError(f"DALI cannot decode this file ({msg[:200]}); use --decoder pyav", path)
    return CorruptVideoError(f"DALI decoding failed: {msg[:200]}", path)


__all__ = [
    "DALI_CPU_CODECS",
    "DALI_GPU_CODECS",
    "DaliVideoSource",
    "FrameCountMismatchError",
    "check_frame_count",
    "dali_codec_support",
    "nvdec_has_av1",
    "parse_dali_device",
    "rotation_to_apply",
]
