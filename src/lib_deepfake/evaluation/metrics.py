"""Frame- and video-level metrics of one scored dataset, in the paper's and DeepfakeBench's terms.

- frame level (the LIB paper's metric): AUC, AP, EER, LogLoss over every scored crop;
- video level, two ways: the mean of a video's frame scores (DeepfakeBench's video AUC) and ``identity-max``
  (lib-infer's verdict: the max over the video's face identities of their mean score, identities with fewer than
  ``min_faces`` crops ignored unless none has that many), both by :func:`lib_deepfake.pipeline.aggregate.aggregate`;
- at the model's threshold: accuracy and the error rates of the verdict ``score >= threshold`` at each level.

A video is a list folder, or the parent of ``face0``, ``face1``, ... folders (``lib-prep --faces all``: one folder
per identity). AUC, AP and EER come from :func:`lib_deepfake.train.metrics.binary_metrics` (scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lib_deepfake.evaluation.scoring import DatasetScores
from lib_deepfake.train.lists import video_of_folder

__all__ = ["DatasetResult", "dataset_metrics", "video_of_folder"]

LEVELS = ("frame", "video_mean", "video_identity_max")


@dataclass
class DatasetResult:
    """Metrics of one dataset plus the per-level labels and scores (for ROC curves and the score files)."""

    metrics: dict[str, Any]
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # level -> (labels, scores)
    videos: list[str]
    video_scores: dict[str, np.ndarray]  # "video_mean" / "video_identity_max" -> float64 [V]


def _level(labels: np.ndarray, scores: np.ndarray, threshold: float, what: str) -> dict[str, Any]:
    from lib_deepfake.model.threshold import metrics_at_threshold
    from lib_deepfake.train.metrics import binary_metrics

    m = binary_metrics(labels, scores, what=what)
    m.pop("acc", None)  # accuracy is reported at the model's threshold, with that threshold named
    m["at_threshold"] = metrics_at_threshold(labels, scores, threshold) if labels.size else None
    return m


def dataset_metrics(scores: DatasetScores, threshold: float, *, min_faces: int = 3) -> DatasetResult:
    """All metrics of one scored dataset at ``threshold``."""
    from lib_deepfake.pipeline.aggregate import aggregate

    video_keys: dict[str, int] = {}
    folder_video = np.zeros(len(scores.folders), dtype=np.int64)
    folder_identity = np.zeros(len(scores.folders), dtype=np.int64)
    for i, key in enumerate(scores.folders):
        video, identity = video_of_folder(key)
        folder_video[i] = video_keys.setdefault(video, len(video_keys))
        folder_identity[i] = identity
    videos = list(video_keys)
    frame_video = folder_video[scores.frame_folder]
    frame_identity = folder_identity[scores.frame_folder]
    means, maxes, vlabels, kept = [], [], [], []
    for v in range(len(videos)):
        sel = frame_video == v
        if not sel.any():
            continue  # every crop of the video was unreadable: no score
        means.append(aggregate(frame_identity[sel], scores.scores[sel], rule="mean").score)
        maxes.append(aggregate(frame_identity[sel], scores.scores[sel], rule="identity-max", min_faces=min_faces).score)
        vlabels.append(int(scores.folder_labels[folder_video == v].max()))  # any fake identity makes a fake video
        kept.append(videos[v])
    vl = np.asarray(vlabels, dtype=np.int64)
    curves = {
        "frame": (scores.labels, scores.scores),
        "video_mean": (vl, np.asarray(means, dtype=np.float64)),
        "video_identity_max": (vl, np.asarray(maxes, dtype=np.float64)),
    }
    metrics: dict[str, Any] = {
        "dataset": scores.dataset,
        "split": scores.split,
        "videos": len(kept),
        "videos_real": int((vl == 0).sum()),
        "videos_fake": int((vl == 1).sum()),
        "folders": len(scores.folders),
        "frames": int(scores.labels.size),
        "frames_skipped": len(scores.skipped),
        "threshold": float(threshold),
    }
    for level, what in zip(LEVELS, ("frames", "videos", "videos")):
        metrics[level] = _level(*curves[level], threshold, what)
    return DatasetResult(metrics, curves, kept, {k: curves[k][1] for k in LEVELS[1:]})
