"""Video decoding for lib-deepfake: probe, index, sampling plans, and two decoders behind one interface.

Public API (import from ``lib_deepfake.video``; nothing heavy is imported until a function needs it)::

    info  = probe(path)                                  # VideoInfo: duration, fps, frame_count, codec, size, rotation
    index = build_index(path)                            # VideoIndex: per-frame pts/times/keyframe flags (demux only)
    plan  = parse_plan("uniform:32")                     # or uniform(32), gop_aware(32), every_kth(k), per_second(r),
                                                         #    keyframes(), explicit([...])
    with open_video(path, decoder="pyav") as src:        # VideoSource ("pyav" CPU | "dali" NVDEC / DALI CPU)
        for fr in src.iter_frames(plan):                 # Frame(image uint8 [H,W,3] RGB torch, index, time_s)
            ...
        batch = src.read(plan)                           # FrameBatch(frames uint8 [T,H,W,3], indices, times_s, ...)
    batch = read_frames(path, "gop:32", decoder="pyav")  # one call: open + read + close
    batch = decode_in_subprocess(path, "uniform:32", timeout_s=60)   # hard kill of a hung libav call

Conventions: frame index = 0-based presentation order (pts-sorted demuxed packets); times in seconds since the first
frame; frames are RGB, rotated for display. Errors are typed subclasses of ``lib_deepfake.errors.VideoError``
(see :mod:`lib_deepfake.video.errors`), each with a one-line ``reason``.
"""

from __future__ import annotations

from lib_deepfake.video.api import DECODERS, decode_in_subprocess, open_video, read_frames, run_in_subprocess
from lib_deepfake.video.errors import (
    CorruptVideoError,
    DecodeTimeoutError,
    EmptyVideoError,
    NotAVideoError,
    NoVideoStreamError,
    PlanError,
    ResolutionTooLargeError,
    UnsupportedCodecError,
    VideoError,
    VideoFileError,
)
from lib_deepfake.video.frames import DecodeStats, Frame, FrameBatch, VideoSource
from lib_deepfake.video.index import VideoIndex, build_index
from lib_deepfake.video.info import DEFAULT_MAX_PIXELS, DEFAULT_TIMEOUT_S, VideoInfo, probe
from lib_deepfake.video.sampling import (
    DEFAULT_NUM_FRAMES,
    ResolvedPlan,
    SamplingPlan,
    every_kth,
    explicit,
    gop_aware,
    keyframes,
    parse_plan,
    per_second,
    uniform,
)

__all__ = [
    "DECODERS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_NUM_FRAMES",
    "DEFAULT_TIMEOUT_S",
    "CorruptVideoError",
    "DecodeStats",
    "DecodeTimeoutError",
    "EmptyVideoError",
    "Frame",
    "FrameBatch",
    "NoVideoStreamError",
    "NotAVideoError",
    "PlanError",
    "ResolutionTooLargeError",
    "ResolvedPlan",
    "SamplingPlan",
    "UnsupportedCodecError",
    "VideoError",
    "VideoFileError",
    "VideoIndex",
    "VideoInfo",
    "VideoSource",
    "build_index",
    "decode_in_subprocess",
    "every_kth",
    "explicit",
    "gop_aware",
    "keyframes",
    "open_video",
    "parse_plan",
    "per_second",
    "probe",
    "read_frames",
    "run_in_subprocess",
    "uniform",
]
