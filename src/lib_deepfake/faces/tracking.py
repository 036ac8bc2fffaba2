"""Face tracks: link per-frame detections across sampled frames into identities.

Sampled frames can be far apart (32 frames over a 10 s clip are ~9 frames apart), so linking is greedy on IoU
with a centre-distance fallback for faces that moved more than their box overlap allows; a track survives up to
``max_gap`` sampled frames without a detection. Two people in a video give two tracks; per-identity scoring is
done downstream (lib-infer aggregates per track, lib-prep keeps the largest track or all of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lib_deepfake.errors import ContractError
from lib_deepfake.faces.base import Detections, box_iou

__all__ = ["FaceTrack", "TrackingConfig", "link_tracks", "rank_tracks"]


@dataclass(frozen=True)
class TrackingConfig:
    """Linking options.

    Attributes:
        iou_threshold: link a detection to a track when their IoU is at least this ...
        max_center_shift: ... or when the centre moved less than this fraction of the track's box size and the
            box size changed by less than ``max_size_ratio`` (fast motion between sparse samples).
        max_size_ratio: largest allowed ratio between the two box sides for the centre-distance link.
        max_gap: a track with no detection for more than this many consecutive sampled frames is closed.
        min_length: tracks with fewer detections are dropped (spurious single-frame boxes).
    """

    iou_threshold: float = 0.3
    max_center_shift: float = 0.5
    max_size_ratio: float = 1.5
    max_gap: int = 2
    min_length: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ContractError(f"iou_threshold must be in [0, 1], got {self.iou_threshold}")
        if self.max_gap < 0 or self.min_length < 1:
            raise ContractError("max_gap must be >= 0 and min_length >= 1")


@dataclass
class FaceTrack:
    """One identity over the sampled frames.

    Attributes:
        track_id: 0-based, in order of creation (before ranking).
        positions: int [n] positions in the sampled-frame sequence (0..T-1) where the face was found.
        frame_indices: int [n] the video frame index of each of those samples.
        boxes: float32 [n, 4] xyxy; scores: float32 [n]; landmarks: float32 [n, 5, 2].
    """

    track_id: int
    positions: list[int] = field(default_factory=list)
    frame_indices: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.positions)

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes float32 [n, 4], scores float32 [n], landmarks float32 [n, 5, 2])."""
        return (
            np.asarray(self.boxes, np.float32).reshape(-1, 4),
            np.asarray(self.scores, np.float32).reshape(-1),
            np.asarray(self.landmarks, np.float32).reshape(-1, 5, 2),
        )

    @property
    def mean_area(self) -> float:
        b = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        return float(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).mean()) if len(b) else 0.0

    @property
    def total_area(self) -> float:
        """Sum of box areas: long tracks of big faces rank first (the main subject of the video)."""
        return self.mean_area * len(self)


def _link_score(last: np.ndarray, boxes: np.ndarray, cfg: TrackingConfig) -> np.ndarray:
    """float [K] link affinity of detections ``boxes`` [K, 4] to a track's last box; <= 0 means no link."""
    iou = box_iou(last[None], boxes)[0]
    side_last = max(float(last[2] - last[0]), float(last[3] - last[1]), 1e-6)
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).clip(1e-6)
    shift = np.hypot(
        (boxes[:, 0] + boxes[:, 2]) / 2 - (last[0] + last[2]) / 2,
        (boxes[:, 1] + boxes[:, 3]) / 2 - (last[1] + last[3]) / 2,
    ) / max(side_last, 1e-6)
    ratio = np.maximum(sides / side_last, side_last / sides)
    near = (shift < cfg.max_center_shift) & (ratio < cfg.max_size_ratio)
    # IoU links rank above centre-distance links; both are positive, everything else is 0.
    score = np.where(iou >= max(cfg.iou_threshold, 1e-6), 1.0 + iou, 0.0)
    score = np.where((score == 0) & near, 1.0 - shift / cfg.max_center_shift * 0.999, score)
    return score


def link_tracks(
    detections: Sequence[Detections],
    frame_indices: Sequence[int] | None = None,
    config: TrackingConfig | None = None,
) -> list[FaceTrack]:
    """Link detections of consecutive sampled frames into face tracks (greedy, highest affinity first).

    Args:
        detections: one Detections per sampled frame, in time order.
        frame_indices: the video frame index of each sample (default 0..T-1).
        config: linking options.

    Returns:
        Tracks ranked by :func:`rank_tracks` (the main face first), ``min_length`` applied.
    """
    cfg = config or TrackingConfig()
    if frame_indices is None:
        frame_indices = list(range(len(detections)))
    if len(frame_indices) != len(detections):
        raise ContractError(f"{len(detections)} detections but {len(frame_indices)} frame indices")
    tracks: list[FaceTrack] = []
    active: list[FaceTrack] = []
    last_seen: dict[int, int] = {}
    for pos, (dets, fidx) in enumerate(zip(detections, frame_indices)):
        active = [t for t in active if pos - last_seen[t.track_id] - 1 <= cfg.max_gap]
        k = len(dets)
        assigned = np.zeros(k, dtype=bool)
        if active and k:
            aff = np.stack([_link_score(t.boxes[-1], dets.boxes, cfg) for t in active])  # [A, K]
            # Greedy global matching: repeatedly take the best remaining (track, detection) pair.
            pairs = np.argwhere(aff > 0)
            order = np.argsort(-aff[pairs[:, 0], pairs[:, 1]], kind="stable")
            used_tracks: set[int] = set()
            for ti, di in pairs[order]:
                if ti in used_tracks or assigned[di]:
                    continue
                used_tracks.add(int(ti))
                assigned[di] = True
                _append(active[ti], pos, int(fidx), dets, int(di))
                last_seen[active[ti].track_id] = pos
        for di in np.flatnonzero(~assigned):
            track = FaceTrack(track_id=len(tracks))
            _append(track, pos, int(fidx), dets, int(di))
            tracks.append(track)
            active.append(track)
            last_seen[track.track_id] = pos
    return rank_tracks([t for t in tracks if len(t) >= cfg.min_length])


def _append(track: FaceTrack, pos: int, fidx: int, dets: Detections, i: int) -> None:
    track.positions.append(pos)
    track.frame_indices.append(fidx)
    track.boxes.append(dets.boxes[i].copy())
    track.scores.append(float(dets.scores[i]))
    track.landmarks.append(dets.landmarks[i].copy())


def rank_tracks(tracks: Sequence[FaceTrack]) -> list[FaceTrack]:
    """Tracks by descending total box area (length x mean area), ties by creation order."""
    return sorted(tracks, key=lambda t: (-t.total_area, t.track_id))
