"""Sizes and time limits of a GPU-check run: ``gpu`` (the real check on an NVIDIA machine) and ``dry-run`` (CPU,
small inputs; what CI runs). Each step's time limit comes from the step table (:mod:`.steps`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lib_deepfake.bench.gpu_check.steps import step_limits


@dataclass(frozen=True)
class Profile:
    """Sizes and time limits of one run (``gpu``: the real check; ``dry-run``: CPU, small).

    Attributes:
        name: ``gpu`` or ``dry-run``.
        device: torch device of the GPU parts (``cuda`` or ``cpu``).
        model: keyword arguments of :func:`lib_deepfake.model.testing.write_test_checkpoint`.
        batch_sizes, warmup, iters, rounds, parity_samples: ``lib-bench engines`` settings.
        crop_frame_size, crop_faces, crop_frames, crop_iters: ``lib-bench crops`` settings (frame size is HxW).
        clip_size, clip_frames: (width, height) and length of the generated H.264 decode clip.
        corpus_videos, corpus_seconds, infer_frames: the lib-infer corpus and frames sampled per video.
        timeouts: per-step time limit in seconds.
        budget_s: the whole run's limit; a step never gets more than what is left.
    """

    name: str
    device: str
    model: dict[str, Any]
    batch_sizes: tuple[int, ...]
    warmup: int
    iters: int
    rounds: int
    parity_samples: int
    crop_frame_size: tuple[int, int]
    crop_faces: int
    crop_frames: int
    crop_iters: int
    clip_size: tuple[int, int]
    clip_frames: int
    corpus_videos: int
    corpus_seconds: float
    infer_frames: int
    timeouts: dict[str, float] = field(default_factory=dict)
    budget_s: float = 360.0


GPU_PROFILE = Profile(
    name="gpu",
    device="cuda",
    model={"backbone": "resnet34", "num_libs": 4, "size": 224, "width_mult": 1.0},
    batch_sizes=(1, 16, 64, 256),
    warmup=3,
    iters=12,
    rounds=2,
    parity_samples=64,
    crop_frame_size=(1080, 1920),
    crop_faces=64,
    crop_frames=4,
    crop_iters=20,
    clip_size=(1920, 1080),
    clip_frames=240,
    corpus_videos=4,
    corpus_seconds=2.0,
    infer_frames=8,
    timeouts=step_limits("gpu"),
    budget_s=330.0,  # + about 30 s of wheel installs in bench/gpu_check.sh = the 6 minutes the kit is sized for
)

DRY_PROFILE = Profile(
    name="dry-run",
    device="cpu",
    model={"backbone": "resnet34", "num_libs": 2, "size": 64, "width_mult": 0.25},
    batch_sizes=(1, 4),
    warmup=1,
    iters=2,
    rounds=1,
    parity_samples=8,
    crop_frame_size=(360, 640),
    crop_faces=16,
    crop_frames=2,
    crop_iters=3,
    clip_size=(640, 360),
    clip_frames=60,
    corpus_videos=2,
    corpus_seconds=1.0,
    infer_frames=4,
    timeouts=step_limits("dry-run"),
    budget_s=420.0,  # a cap for loaded CI machines; the run itself takes about 1-2 minutes
)

PROFILES = {"gpu": GPU_PROFILE, "dry-run": DRY_PROFILE}


def profile_from_dict(d: dict[str, Any]) -> Profile:
    """The :class:`Profile` of ``dataclasses.asdict(profile)`` after a JSON round trip (lists back to tuples)."""
    d = dict(d)
    for key in ("batch_sizes", "crop_frame_size", "clip_size"):
        d[key] = tuple(d[key])
    return Profile(**d)
