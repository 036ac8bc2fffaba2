"""What one scanned video produces - its row, its faces.jsonl lines, its report entry - as pure functions of what the
scan found. The status rule (error / ok / no_face) lives in :func:`video_row` only: the scheduler, the Ray workers
and the benchmark's reference pipeline all make their rows through it, and rows are built by
:func:`~lib_deepfake.pipeline.results.build_row`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lib_deepfake.pipeline.results import build_row

if TYPE_CHECKING:
    from lib_deepfake.pipeline.aggregate import VideoScore
    from lib_deepfake.pipeline.decode import DecodeResult


@dataclass
class VideoOutcome:
    """Everything one video produced: its row, its faces (faces.jsonl lines) and its report data."""

    row: dict[str, Any]
    faces: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return str(self.row["path"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (Ray workers send outcomes to the driver this way)."""
        return {"row": self.row, "faces": list(self.faces), "report": self.report}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoOutcome:
        return cls(d["row"], list(d.get("faces") or []), d.get("report"))


def video_row(key: str, *, threshold: float, score: float | None = None, error: str | None = None,
              error_kind: str | None = None, **fields: Any) -> dict[str, Any]:  # fmt: skip
    """The row of one video, its status decided here: "error" when ``error_kind`` is given, "ok" when it has a
    score, "no_face" otherwise (noting how many sampled frames were searched).

    Args:
        key: the path (or URL) the row is reported under.
        threshold: verdict threshold.
        score: the aggregated video score (None: no face was scored).
        error, error_kind: one-line reason and error class name of a failure.
        fields: the other :func:`~lib_deepfake.pipeline.results.build_row` fields (info, timings, counts, ...).
    """
    if error_kind is not None:
        return build_row(key, status="error", threshold=threshold, error=error, error_kind=error_kind, **fields)
    if score is not None:
        return build_row(key, status="ok", threshold=threshold, score=score, **fields)
    note = f"no face found in {fields.get('frames_sampled', 0)} sampled frame(s)"
    return build_row(key, status="no_face", threshold=threshold, error=note, **fields)


def empty_report(key: str) -> dict[str, Any]:
    """The report entry of a video without scored faces."""
    return {"path": key, "thumbs": [], "timeline": []}


def error_outcome(key: str, reason: str, kind: str, *, threshold: float, **fields: Any) -> VideoOutcome:
    """The outcome of a video that failed (a bad file, a crashed decoder or worker, an unreadable URL)."""
    return VideoOutcome(video_row(key, threshold=threshold, error=reason, error_kind=kind, **fields), [],
                        empty_report(key))  # fmt: skip


def video_fields(res: DecodeResult, *, frames_sampled: int, timings: dict[str, float]) -> dict[str, Any]:
    """Row fields of a decoded video: what it is, how it was decoded and where its time went."""
    return {"info": res.info, "frames_sampled": frames_sampled, "analysis_scale": res.scale, "decoder": res.decoder,
            "timings": timings, "missing_frames": res.missing}  # fmt: skip


def identity_entries(vs: VideoScore) -> list[dict[str, Any]]:
    """The row's ``identity_scores``: per identity its face count, mean and max score, and whether it counted."""
    return [{"identity": x.identity, "faces": x.faces, "score": round(x.score, 6), "max_score": round(x.max_score, 6),
             "eligible": x.eligible} for x in vs.identities]  # fmt: skip


def face_lines(key: str, indices: np.ndarray, times_s: np.ndarray, positions: np.ndarray, identity: np.ndarray,
               boxes: np.ndarray, det_scores: np.ndarray, scores: np.ndarray, interpolated: np.ndarray,
               scale: float) -> list[dict[str, Any]]:  # fmt: skip
    """faces.jsonl lines, one per face: frame, time, identity, box in display pixels, where the box came from
    (detector or interpolation), detector and classifier scores. ``positions`` index the sampled frames."""
    return [
        {
            "path": key,
            "frame": int(indices[p]),
            "time_s": round(float(times_s[p]), 4),
            "identity": int(i),
            "box": [round(float(c) / scale, 2) for c in b],
            "det_score": round(float(ds), 4),
            "box_source": "interpolated" if interpolated[p] else "detector",
            "score": round(float(s), 6),
        }
        for p, i, b, ds, s in zip(positions, identity, boxes, det_scores, scores)
    ]


def score_timeline(indices: np.ndarray, times_s: np.ndarray, positions: np.ndarray | None = None,
                   scores: np.ndarray | None = None) -> list[list[Any]]:  # fmt: skip
    """The report's timeline: per sampled frame ``[frame, time, highest face score or None]``."""
    per_frame = np.full(len(indices), np.nan)
    if positions is not None and scores is not None:
        for p, s in zip(positions, scores):
            per_frame[p] = s if np.isnan(per_frame[p]) else max(per_frame[p], s)
    return [[int(i), round(float(t), 3), None if np.isnan(s) else round(float(s), 4)]
            for i, t, s in zip(indices, times_s, per_frame)]  # fmt: skip


def thumbnails(crops: Any, scores: np.ndarray, indices: np.ndarray, times_s: np.ndarray, positions: np.ndarray,
               identity: np.ndarray, count: int) -> list[dict[str, Any]]:  # fmt: skip
    """The report's ``count`` highest-scoring face crops as JPEG (``crops``: uint8 [N, S, S, 3] RGB tensor, any
    device)."""
    n = min(count, len(scores))
    if n == 0 or crops is None:
        return []
    import torch

    top = np.argsort(-scores, kind="stable")[:n]
    chosen = crops[torch.as_tensor(top, device=crops.device)].cpu().numpy()
    return [{"jpeg": encode_thumbnail(c), "score": round(float(scores[j]), 4), "frame": int(indices[positions[j]]),
             "identity": int(identity[j]), "time_s": round(float(times_s[positions[j]]), 3)}
            for j, c in zip(top, chosen)]  # fmt: skip


def encode_thumbnail(crop: np.ndarray, max_side: int = 112) -> str:
    """Base64 JPEG of a uint8 [S, S, 3] RGB crop, at most ``max_side`` pixels (report thumbnails)."""
    import cv2

    img = crop
    if max(img.shape[:2]) > max_side:
        img = cv2.resize(img, (max_side, max_side), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else ""


__all__ = ["VideoOutcome", "empty_report", "encode_thumbnail", "error_outcome", "face_lines", "identity_entries",
           "score_timeline", "thumbnails", "video_fields", "video_row"]  # fmt: skip
