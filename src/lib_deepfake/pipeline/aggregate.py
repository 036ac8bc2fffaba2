"""Face scores -> identity scores -> one video score. Pure NumPy; the same function serves CPU, GPU and Ray scans.

The rules (``ScanConfig.aggregation``; :meth:`ScanConfig.aggregation_rule` states them in words):

- ``identity-max`` (default): an identity's score is the mean P(fake) of its faces; the video score is the max
  over identities with at least ``min_faces`` faces, or over all identities when none has that many (a short clip
  with one face in two frames is still scored). Max, because one swapped face makes a video fake, and the
  ``min_faces`` floor keeps one spurious detection from deciding it.
- ``mean``: mean over all faces (DeepfakeBench's video-level protocol, for comparison).
- ``topk``: mean of the ``top_k`` highest face scores.

A video without faces has no score (None): it is reported ``no_face``, never 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IdentityScore:
    """One identity's aggregate. ``identity`` is its rank (0 = the largest, longest face track)."""

    identity: int
    faces: int
    score: float
    max_score: float
    eligible: bool


@dataclass(frozen=True)
class VideoScore:
    """The video-level result: ``score`` None when there is no face."""

    score: float | None
    identities: list[IdentityScore]
    top_identity: int | None


def aggregate(
    identity_ids: np.ndarray,
    face_scores: np.ndarray,
    *,
    rule: str = "identity-max",
    min_faces: int = 3,
    top_k: int = 5,
) -> VideoScore:
    """Aggregate face scores of one video.

    Args:
        identity_ids: int [N] identity of each face (0-based ranks).
        face_scores: float [N] P(fake) of each face.
        rule: "identity-max", "mean" or "topk".
        min_faces: identities need this many faces to count for "identity-max" (unless none has).
        top_k: k of "topk".

    Returns:
        :class:`VideoScore`; ``score`` is None when N == 0.
    """
    ids = np.asarray(identity_ids, np.int64).reshape(-1)
    scores = np.asarray(face_scores, np.float64).reshape(-1)
    if len(ids) != len(scores):
        raise ValueError(f"{len(ids)} identity ids but {len(scores)} scores")
    if len(scores) == 0:
        return VideoScore(None, [], None)
    idents = []
    uniq = np.unique(ids)
    counts = {int(i): int((ids == i).sum()) for i in uniq}
    any_eligible = any(c >= min_faces for c in counts.values())
    for i in uniq:
        s = scores[ids == i]
        idents.append(IdentityScore(int(i), len(s), float(s.mean()), float(s.max()),
                                    eligible=(len(s) >= min_faces) or not any_eligible))  # fmt: skip
    if rule == "identity-max":
        eligible = [x for x in idents if x.eligible]
        best = max(eligible, key=lambda x: (x.score, -x.identity))
        return VideoScore(best.score, idents, best.identity)
    top = max(idents, key=lambda x: (x.score, -x.identity)).identity
    if rule == "mean":
        return VideoScore(float(scores.mean()), idents, top)
    if rule == "topk":
        k = min(top_k, len(scores))
        return VideoScore(float(np.sort(scores)[::-1][:k].mean()), idents, top)
    raise ValueError(f"unknown aggregation rule {rule!r}")


def verdict(score: float | None, threshold: float) -> str:
    """ "fake" when score >= threshold, "real" below, "unknown" without a score."""
    if score is None:
        return "unknown"
    return "fake" if score >= threshold else "real"


__all__ = ["IdentityScore", "VideoScore", "aggregate", "verdict"]
