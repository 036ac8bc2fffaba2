"""Sampling plans: which frames of a video to decode. Pure NumPy; shared by every decoder.

A :class:`SamplingPlan` is a small, hashable description ("uniform:32"). :meth:`SamplingPlan.resolve` turns it into
concrete frame indices against a :class:`~lib_deepfake.video.index.VideoIndex` (the demuxed packet table), so the
PyAV and DALI sources select **the same indices** for the same plan and file.

Frame index = 0-based position in presentation order (frames sorted by pts), over the frames the demuxer lists.
Times are seconds since the first frame's presentation time, read from the pts (so variable frame rate is handled
by timestamps, not by ``index / fps``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from lib_deepfake.video.errors import PlanError

if TYPE_CHECKING:
    from lib_deepfake.video.index import VideoIndex

logger = logging.getLogger(__name__)

PlanKind = Literal["uniform", "gop", "every", "fps", "keyframes", "indices"]

#: Frames per video in the field's protocol (DeepfakeBench / LIB: 32 frames spread uniformly over the video).
DEFAULT_NUM_FRAMES = 32
#: GOP-aware plans pick a keyframe or one of the next ``DEFAULT_MAX_AFTER`` frames (each costs one more decode).
DEFAULT_MAX_AFTER = 2


@dataclass(frozen=True)
class SamplingPlan:
    """What to sample. Build with :func:`uniform`, :func:`gop_aware`, :func:`every_kth`, :func:`per_second`,
    :func:`keyframes`, :func:`explicit` or :func:`parse_plan`; never needs the video.

    Attributes:
        kind: plan type.
        n: number of frames (uniform, gop, keyframes cap; None = all keyframes).
        k: step for ``every``.
        rate: frames per second for ``fps``.
        indices: explicit frame indices for ``indices``.
        max_after: gop only - how many frames after a keyframe still count as cheap.
        max_shift: gop only - a target whose cheap pick would move further than this many frames is decoded
            exactly instead (None: always take the cheap pick).
    """

    kind: PlanKind
    n: int | None = None
    k: int | None = None
    rate: float | None = None
    indices: tuple[int, ...] | None = None
    max_after: int = DEFAULT_MAX_AFTER
    max_shift: int | None = None

    def __str__(self) -> str:
        if self.kind == "uniform":
            return f"uniform:{self.n}"
        if self.kind == "gop":
            s = f"gop:{self.n}:{self.max_after}"
            return s if self.max_shift is None else f"{s}:{self.max_shift}"
        if self.kind == "every":
            return f"every:{self.k}"
        if self.kind == "fps":
            return f"fps:{self.rate:g}"
        if self.kind == "keyframes":
            return "keyframes" if self.n is None else f"keyframes:{self.n}"
        return "indices:" + ",".join(str(i) for i in self.indices or ())

    @property
    def keyframes_only(self) -> bool:
        """True when every pick is a keyframe by construction (the decoder may skip non-key packets)."""
        return self.kind == "keyframes"

    def resolve(self, index: VideoIndex) -> ResolvedPlan:
        """Concrete frame indices for this plan on one video.

        Args:
            index: the video's demuxed frame table (``frame_count``, ``times_s``, ``keyframe_indices``).

        Returns:
            A :class:`ResolvedPlan`; ``indices`` ascending and unique, possibly fewer than ``n`` when the video
            has fewer frames (or, for gop plans, fewer cheap frames).
        """
        f = index.frame_count
        if f <= 0:
            return ResolvedPlan(self, np.zeros(0, np.int64), np.zeros(0, np.int64))
        if self.kind == "uniform":
            picks = uniform_targets(f, _pos(self.n, "n"))
            return ResolvedPlan(self, picks, picks)
        if self.kind == "gop":
            targets = uniform_targets(f, _pos(self.n, "n"))
            picks, tgt = gop_snap(targets, index.keyframe_indices, f, self.max_after, self.max_shift)
            return ResolvedPlan(self, picks, tgt)
        if self.kind == "every":
            picks = np.arange(0, f, _pos(self.k, "k"), dtype=np.int64)
            return ResolvedPlan(self, picks, picks)
        if self.kind == "fps":
            picks = per_second_picks(index.times_s, float(self.rate or 0.0))
            return ResolvedPlan(self, picks, picks)
        if self.kind == "keyframes":
            keys = np.asarray(index.keyframe_indices, dtype=np.int64)
            if self.n is not None and len(keys) > self.n:
                keys = keys[np.unique(uniform_targets(len(keys), _pos(self.n, "n")))]
            return ResolvedPlan(self, keys, keys)
        if self.kind == "indices":
            picks = clamp_explicit(self.indices or (), f)
            return ResolvedPlan(self, picks, picks)
        raise PlanError(f"unknown plan kind {self.kind!r}")


@dataclass(frozen=True)
class ResolvedPlan:
    """A plan applied to one video.

    Attributes:
        plan: the plan it came from.
        indices: int64 [T], ascending unique frame indices to decode.
        targets: int64 [T], the index each pick aimed at (equal to ``indices`` except for gop plans).
    """

    plan: SamplingPlan
    indices: np.ndarray
    targets: np.ndarray
    shifts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shifts", np.asarray(self.indices, np.int64) - np.asarray(self.targets, np.int64))

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def max_shift(self) -> int:
        """Largest distance (frames) between a pick and its target; 0 for exact plans."""
        return int(np.abs(self.shifts).max()) if len(self.shifts) else 0


# ---- plan constructors ---------------------------------------------------------------------------------------


def uniform(n: int = DEFAULT_NUM_FRAMES) -> SamplingPlan:
    """``n`` frames spread uniformly over the video, ``linspace(0, frame_count - 1, n)`` truncated to int (the
    DeepfakeBench/LIB protocol). Exact: decodes from the keyframe before each pick."""
    return SamplingPlan("uniform", n=_pos(n, "n"))


def gop_aware(
    n: int = DEFAULT_NUM_FRAMES, max_after: int = DEFAULT_MAX_AFTER, max_shift: int | None = None
) -> SamplingPlan:
    """Uniform targets snapped to the nearest cheap frame (a keyframe or up to ``max_after`` frames after one).
    ``ResolvedPlan.shifts`` reports how far each pick moved."""
    if max_after < 0:
        raise PlanError(f"max_after must be >= 0, got {max_after}")
    if max_shift is not None and max_shift < 0:
        raise PlanError(f"max_shift must be >= 0, got {max_shift}")
    return SamplingPlan("gop", n=_pos(n, "n"), max_after=max_after, max_shift=max_shift)


def every_kth(k: int) -> SamplingPlan:
    """Frames 0, k, 2k, ... (``every_kth(1)`` is every frame)."""
    return SamplingPlan("every", k=_pos(k, "k"))


def per_second(rate: float) -> SamplingPlan:
    """``rate`` frames per second of video time: at t = 0, 1/rate, 2/rate, ... the frame on screen at t."""
    if not rate > 0:
        raise PlanError(f"frames per second must be > 0, got {rate}")
    return SamplingPlan("fps", rate=float(rate))


def keyframes(n: int | None = None) -> SamplingPlan:
    """Keyframes only (the fast tier); with ``n``, at most ``n`` of them spread uniformly."""
    return SamplingPlan("keyframes", n=None if n is None else _pos(n, "n"))


def explicit(indices: list[int] | tuple[int, ...] | np.ndarray) -> SamplingPlan:
    """These frame indices (any order, repeats dropped). Indices past the end clamp to the last frame."""
    idx = tuple(int(i) for i in np.asarray(indices).reshape(-1))
    if any(i < 0 for i in idx):
        raise PlanError(f"frame indices must be >= 0, got {min(idx)}")
    return SamplingPlan("indices", indices=idx)


def parse_plan(spec: str | SamplingPlan) -> SamplingPlan:
    """Parse a CLI plan string.

    Forms: ``uniform[:N]``, ``gop[:N[:MAX_AFTER[:MAX_SHIFT]]]``, ``every:K``, ``fps:R``, ``keyframes[:N]``,
    ``indices:I,J,...``, ``all`` (= ``every:1``).
    """
    if isinstance(spec, SamplingPlan):
        return spec
    s = spec.strip().lower()
    head, _, rest = s.partition(":")
    parts = [p for p in rest.split(":") if p] if rest else []
    try:
        if head == "uniform":
            return uniform(int(parts[0]) if parts else DEFAULT_NUM_FRAMES)
        if head == "gop":
            n = int(parts[0]) if parts else DEFAULT_NUM_FRAMES
            ma = int(parts[1]) if len(parts) > 1 else DEFAULT_MAX_AFTER
            ms = int(parts[2]) if len(parts) > 2 else None
            return gop_aware(n, ma, ms)
        if head == "every" and parts:
            return every_kth(int(parts[0]))
        if head == "all" and not parts:
            return every_kth(1)
        if head == "fps" and parts:
            return per_second(float(parts[0]))
        if head == "keyframes":
            return keyframes(int(parts[0]) if parts else None)
        if head == "indices" and rest:
            return explicit([int(x) for x in rest.split(",") if x.strip()])
    except ValueError as exc:
        raise PlanError(f"bad sampling plan {spec!r}: {exc}") from exc
    raise PlanError(
        f"bad sampling plan {spec!r}; use uniform[:N], gop[:N[:MAX_AFTER[:MAX_SHIFT]]], every:K, fps:R, "
        "keyframes[:N], indices:I,J,... or all"
    )


# ---- pure helpers (unit-tested directly) ---------------------------------------------------------------------


def _pos(v: int | None, name: str) -> int:
    if v is None or int(v) < 1:
        raise PlanError(f"{name} must be a positive integer, got {v}")
    return int(v)


def uniform_targets(frame_count: int, n: int) -> np.ndarray:
    """``unique(linspace(0, frame_count - 1, n).astype(int))``: int64 [<= n] ascending."""
    if frame_count <= 0:
        return np.zeros(0, np.int64)
    return np.unique(np.linspace(0, frame_count - 1, n, endpoint=True).astype(np.int64))


def gop_snap(
    targets: np.ndarray, keyframe_indices: np.ndarray, frame_count: int, max_after: int, max_shift: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Move each target to the nearest unused cheap frame.

    Cheap frames are ``k .. k + max_after`` for every keyframe ``k`` (not past the next keyframe or the end).
    Targets are processed in order; each takes the nearest cheap frame not already taken (ties: the earlier,
    cheaper one). When ``max_shift`` is set and the nearest cheap frame is further than that, the target itself is
    kept (an exact decode). Targets left without a free cheap frame are dropped.

    Returns:
        (picks, targets) int64 arrays sorted by pick, same length.
    """
    keys = np.asarray(keyframe_indices, np.int64)
    if len(keys) == 0 or keys[0] != 0:
        # The first frame is always reachable by decoding from the start, so it is cheap like a keyframe.
        keys = np.concatenate([[0], keys]).astype(np.int64)
    nxt = np.append(keys[1:], frame_count)
    grid = keys[:, None] + np.arange(max_after + 1, dtype=np.int64)[None, :]
    cheap = np.unique(grid[(grid < nxt[:, None]) & (grid < frame_count)])
    free = np.ones(len(cheap), bool)
    taken: set[int] = set()
    out: list[tuple[int, int]] = []
    for t in np.asarray(targets, np.int64).tolist():
        best = _nearest_free(cheap, free, t)
        if best is None or (max_shift is not None and abs(int(cheap[best]) - t) > max_shift):
            # No cheap frame left, or too far: decode the target exactly (only when a max_shift is given).
            if max_shift is not None and t not in taken:
                taken.add(t)
                out.append((t, t))
            continue
        pick = int(cheap[best])
        free[best] = False
        if pick in taken:  # an exact pick of an earlier target landed here
            continue
        taken.add(pick)
        out.append((pick, t))
    out.sort()
    picks = np.array([p for p, _ in out], np.int64)
    tg = np.array([t for _, t in out], np.int64)
    return picks, tg


def _nearest_free(cheap: np.ndarray, free: np.ndarray, t: int) -> int | None:
    """Position in ``cheap`` (sorted) of the free value nearest ``t``; ties go to the earlier one."""
    j = int(np.searchsorted(cheap, t))
    lo, hi = j - 1, j
    while lo >= 0 and not free[lo]:
        lo -= 1
    while hi < len(cheap) and not free[hi]:
        hi += 1
    if lo < 0 and hi >= len(cheap):
        return None
    if lo < 0:
        return hi
    if hi >= len(cheap):
        return lo
    return lo if t - int(cheap[lo]) <= int(cheap[hi]) - t else hi


def per_second_picks(times_s: np.ndarray, rate: float) -> np.ndarray:
    """For t = 0, 1/rate, ... up to the last frame time, the index of the frame on screen at t (latest time <= t).

    Args:
        times_s: float64 [F], ascending presentation times in seconds, first frame at 0.
        rate: samples per second (> 0).
    """
    times = np.asarray(times_s, np.float64)
    if len(times) == 0:
        return np.zeros(0, np.int64)
    if not rate > 0:
        raise PlanError(f"frames per second must be > 0, got {rate}")
    grid = np.arange(0.0, times[-1] + 1e-9, 1.0 / rate)
    # 1 microsecond slack so that t = j / rate lands on a frame stamped exactly there despite float rounding.
    idx = np.searchsorted(times, grid + 1e-6, side="right") - 1
    return np.unique(np.clip(idx, 0, len(times) - 1)).astype(np.int64)


def clamp_explicit(indices: tuple[int, ...] | list[int], frame_count: int) -> np.ndarray:
    """Explicit indices, sorted unique; those past the end clamp to ``frame_count - 1`` (logged once per call)."""
    idx = np.asarray(indices, np.int64).reshape(-1)
    if len(idx) and idx.min() < 0:
        raise PlanError(f"frame indices must be >= 0, got {int(idx.min())}")
    over = idx >= frame_count
    if over.any():
        logger.warning(
            "%d requested frame index(es) past the last frame (%d) clamped to it", int(over.sum()), frame_count - 1
        )
    return np.unique(np.minimum(idx, frame_count - 1))


__all__ = [
    "DEFAULT_MAX_AFTER",
    "DEFAULT_NUM_FRAMES",
    "ResolvedPlan",
    "SamplingPlan",
    "clamp_explicit",
    "every_kth",
    "explicit",
    "gop_aware",
    "gop_snap",
    "keyframes",
    "parse_plan",
    "per_second",
    "per_second_picks",
    "uniform",
    "uniform_targets",
]
