"""Sparse face detection: run the detector on every K-th sampled frame and fill the frames in between by
interpolating boxes - only where both neighbours agree; everywhere else the detector runs after all.

The detector is the second-largest cost of a CPU scan (after the classifier). Sampled frames of one shot change
little from one to the next, so detecting on every second one and interpolating the boxes of the faces found on
both sides gives the same crops. The rule that keeps it safe is the *agreement check* between two detected frames
``a < b``: the frames in between are interpolated only when ``a`` and ``b`` have the same number of faces and
every face in ``a`` is matched one-to-one to a face in ``b`` with IoU >= ``min_iou`` (the face moved less than
about a third of its size). A scene cut, a face entering or leaving, or fast motion fails the check, and then the
detector runs on every frame of that gap (a second pass), exactly as dense detection would.

What it can miss: a face visible only strictly between two detected frames that both have the same faces
(with K=2, a face on screen in a single sampled frame, ~0.3 s of a 10 s clip at 32 frames); such a face would
also fall below the default ``--min-faces 3`` of identity-max aggregation. ``K=1`` (the default) detects on every
sampled frame.

Pure functions over :class:`~lib_deepfake.faces.base.Detections`; the scanner owns the batching.
"""

from __future__ import annotations

import numpy as np

from lib_deepfake.errors import ContractError
from lib_deepfake.faces.base import Detections, box_iou

DEFAULT_MIN_IOU = 0.5

__all__ = ["DEFAULT_MIN_IOU", "fill_gaps", "first_pass_positions", "interpolate", "match_faces"]


def first_pass_positions(n: int, every: int) -> list[int]:
    """Positions (0..n-1) the detector sees first: every ``every``-th one, and always the last."""
    if every < 1:
        raise ContractError(f"detect-every must be >= 1, got {every}")
    if n <= 0:
        return []
    pos = list(range(0, n, every))
    if pos[-1] != n - 1:
        pos.append(n - 1)
    return pos


def match_faces(a: Detections, b: Detections, min_iou: float) -> np.ndarray | None:
    """One-to-one match of the faces of two frames, or None when they disagree.

    Returns:
        int [len(a)] index into ``b`` for every face of ``a`` (greedy on IoU, highest first), or None when the
        counts differ or some face has no partner with IoU >= ``min_iou``.
    """
    if len(a) != len(b):
        return None
    if len(a) == 0:
        return np.zeros(0, np.int64)
    iou = box_iou(a.boxes, b.boxes)
    out = np.full(len(a), -1, np.int64)
    used = np.zeros(len(b), bool)
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(b))
        if iou[i, j] < min_iou:
            break
        if out[i] < 0 and not used[j]:
            out[i], used[j] = j, True
    return out if (out >= 0).all() else None


def interpolate(a: Detections, b: Detections, match: np.ndarray, t: float) -> Detections:
    """Faces at fraction ``t`` (0 at ``a``, 1 at ``b``) of the way between two matched frames: boxes and landmarks
    linear, score the lower of the two (an interpolated box is never more certain than its ends)."""
    mb = b.select(match)
    w = np.float32(t)
    return Detections(
        boxes=(1 - w) * a.boxes + w * mb.boxes,
        scores=np.minimum(a.scores, mb.scores),
        landmarks=(1 - w) * a.landmarks + w * mb.landmarks,
    )


def fill_gaps(dets: list[Detections | None], detected: list[int], min_iou: float = DEFAULT_MIN_IOU
              ) -> tuple[dict[int, Detections], list[int]]:  # fmt: skip
    """Decide every position between consecutive detected ones.

    Args:
        dets: per position, the detector's result (None where it has not run).
        detected: positions where it ran, ascending.
        min_iou: agreement threshold of :func:`match_faces`.

    Returns:
        (interpolated, refine): Detections for the positions filled by interpolation, and the positions the
        detector must still see (gaps whose two ends disagree), ascending.
    """
    filled: dict[int, Detections] = {}
    refine: list[int] = []
    for a, b in zip(detected, detected[1:]):
        if b - a < 2:
            continue
        da, db = dets[a], dets[b]
        if da is None or db is None:
            raise ContractError(f"positions {a} and {b} must have been detected")
        match = match_faces(da, db, min_iou)
        if match is None:
            refine.extend(range(a + 1, b))
            continue
        for p in range(a + 1, b):
            filled[p] = interpolate(da, db, match, (p - a) / (b - a))
    return filled, refine
