"""Frame containers and the :class:`VideoSource` protocol every decoder implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import torch

    from lib_deepfake.video.index import VideoIndex
    from lib_deepfake.video.info import VideoInfo
    from lib_deepfake.video.sampling import ResolvedPlan, SamplingPlan


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        image: uint8 [H, W, 3] RGB torch tensor, already rotated for display. CPU for PyAV; CUDA for DALI on a GPU
            (CPU for DALI's CPU backend). DALI frames are views valid until the next frame is requested -
            ``.clone()`` to keep one.
        index: 0-based frame index in presentation order.
        time_s: presentation time in seconds since the first frame.
    """

    image: torch.Tensor
    index: int
    time_s: float


@dataclass
class DecodeStats:
    """What one pass over a plan cost.

    Attributes:
        frames_decoded: frames that came out of the decoder (wanted or not); -1 when the decoder does not say
            (DALI).
        frames_converted: frames converted to RGB (only wanted ones are).
        seeks: container seeks done.
        packets_read: packets demuxed during decoding (the index pass not included).
        wall_s: wall time of the pass, index build included when it happened inside the pass.
        missing: wanted indices the decoder never produced (damaged tail); they are absent from the output.
    """

    frames_decoded: int = 0
    frames_converted: int = 0
    seeks: int = 0
    packets_read: int = 0
    wall_s: float = 0.0
    missing: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_decoded": self.frames_decoded,
            "frames_converted": self.frames_converted,
            "seeks": self.seeks,
            "packets_read": self.packets_read,
            "wall_s": self.wall_s,
            "missing": list(self.missing),
        }


@dataclass
class FrameBatch:
    """All frames of one plan on one video - what the face detector consumes.

    Attributes:
        frames: uint8 [T, H, W, 3] RGB torch tensor on ``device`` (T may be 0 only if the plan selected nothing).
        indices: int64 [T] frame indices (presentation order), ascending.
        times_s: float64 [T] presentation times in seconds since the first frame.
        shifts: int64 [T] how far each pick moved from its target (gop plans; zeros otherwise).
        info: the probed stream facts.
        plan: the resolved plan (targets, shifts).
        stats: decode cost of this read.
        decoder: "pyav" or "dali".
    """

    frames: torch.Tensor
    indices: np.ndarray
    times_s: np.ndarray
    shifts: np.ndarray
    info: VideoInfo
    plan: ResolvedPlan
    stats: DecodeStats
    decoder: str

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def device(self) -> str:
        return str(self.frames.device)


@runtime_checkable
class VideoSource(Protocol):
    """An opened video that decodes the frames of a sampling plan.

    Implementations: :class:`~lib_deepfake.video.pyav_source.PyAVSource` (CPU),
    :class:`~lib_deepfake.video.dali_source.DaliVideoSource` (NVDEC, or DALI's CPU decoder for VP8/VP9/MJPEG).
    Both resolve plans through :mod:`lib_deepfake.video.sampling` against the same :class:`VideoIndex`, so they
    select the same frame indices. Use as a context manager; ``close()`` releases the decoder.
    """

    name: str

    @property
    def info(self) -> VideoInfo: ...

    @property
    def index(self) -> VideoIndex: ...

    @property
    def stats(self) -> DecodeStats:
        """Cost of the last :meth:`iter_frames` / :meth:`read` pass."""
        ...

    def resolve(self, plan: SamplingPlan | str) -> ResolvedPlan: ...

    def iter_frames(self, plan: SamplingPlan | str) -> Iterator[Frame]:
        """Yield the plan's frames in ascending index order."""
        ...

    def read(self, plan: SamplingPlan | str) -> FrameBatch:
        """All of the plan's frames as one :class:`FrameBatch`."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> VideoSource: ...

    def __exit__(self, *exc: object) -> None: ...


class SourceBase:
    """What every decoder shares: the probed info and packet index, the last pass's stats, plan resolution against
    that index (so decoders pick the same frames) and the context manager. Subclasses set ``_info``, ``_index``,
    ``_stats`` and implement ``read``, ``close`` and ``_iter_resolved``."""

    _info: VideoInfo
    _index: VideoIndex
    _stats: DecodeStats

    @property
    def info(self) -> VideoInfo:
        return self._info

    @property
    def index(self) -> VideoIndex:
        return self._index

    @property
    def stats(self) -> DecodeStats:
        return self._stats

    def resolve(self, plan: SamplingPlan | str) -> ResolvedPlan:
        from lib_deepfake.video.sampling import parse_plan

        return parse_plan(plan).resolve(self._index)

    def iter_frames(self, plan: SamplingPlan | str) -> Iterator[Frame]:
        return self._iter_resolved(self.resolve(plan))

    def _iter_resolved(self, rp: ResolvedPlan) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Largest batch :meth:`VideoSource.read` returns (bytes of uint8 RGB). Bigger plans (``all`` on a long video) must
#: stream through ``iter_frames`` instead of failing with an out-of-memory crash.
MAX_BATCH_BYTES = 16 * 1024**3


def check_batch_size(frames: int, height: int, width: int, path: object = None) -> None:
    """Raise :class:`PlanError` when ``frames`` RGB frames of this size exceed :data:`MAX_BATCH_BYTES`."""
    from lib_deepfake.video.errors import PlanError

    nbytes = frames * height * width * 3
    if nbytes > MAX_BATCH_BYTES:
        raise PlanError(
            f"the plan selects {frames} frames ({nbytes / 1024**3:.1f} GiB as RGB), more than one batch may hold "
            f"({MAX_BATCH_BYTES / 1024**3:.0f} GiB); use iter_frames() or a sparser plan",
            None if path is None else str(path),
        )


def stack_frames(
    frames: list[Frame], *, info: VideoInfo, plan: ResolvedPlan, stats: DecodeStats, decoder: str, device: str = "cpu"
) -> FrameBatch:
    """Stack frames into a :class:`FrameBatch` (copies; safe to keep after the source moves on)."""
    import torch

    from lib_deepfake.video.errors import CorruptVideoError

    idx = np.array([f.index for f in frames], np.int64)
    times = np.array([f.time_s for f in frames], np.float64)
    pick_to_shift = dict(zip(plan.indices.tolist(), plan.shifts.tolist(), strict=True))
    shifts = np.array([pick_to_shift.get(int(i), 0) for i in idx], np.int64)
    if frames:
        shapes = {tuple(f.image.shape) for f in frames}
        if len(shapes) > 1:
            raise CorruptVideoError(f"frame size changes mid-stream ({sorted(shapes)}); cannot batch", info.path)
        tensor = torch.stack([f.image for f in frames])
    else:
        h, w = info.display_height, info.display_width
        tensor = torch.zeros((0, h, w, 3), dtype=torch.uint8, device=device)
    return FrameBatch(tensor, idx, times, shifts, info, plan, stats, decoder)


__all__ = ["MAX_BATCH_BYTES", "DecodeStats", "Frame", "FrameBatch", "VideoSource", "check_batch_size", "stack_frames"]
