"""Frame- and video-level detection metrics (method.md §4.6, §6.4).

Scores are P(fake) = softmax(fused logits)[:, 1]; label 1 = fake. Frame level: AUC, ACC (threshold 0.5, as a
fraction, the official code prints percent), LogLoss, AP, EER. Video level: the mean of a video's frame scores, then
AUC and ACC over videos; videos are keyed by their full folder path (the folder *name* collides across FF++
methods). With one class present, the ranking metrics are None and a warning is logged.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from lib_deepfake.log import warn_once

logger = logging.getLogger(__name__)


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """EER: the point of the ROC where the false-positive rate equals the false-negative rate."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def binary_metrics(labels: np.ndarray, scores: np.ndarray, *, what: str = "frames") -> dict[str, Any]:
    """AUC, ACC, LogLoss, AP, EER of P(fake) ``scores`` float [N] against ``labels`` int [N]."""
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    out: dict[str, Any] = {
        "n": int(labels.size),
        "n_fake": int(labels.sum()),
        "acc": float(((scores > 0.5).astype(np.int64) == labels).mean()) if labels.size else None,
    }
    if labels.size:
        out["logloss"] = float(log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1]))
    if np.unique(labels).size < 2:
        warn_once(logger, f"only one class among the evaluated {what}: AUC, AP and EER are undefined")
        out.update(auc=None, ap=None, eer=None)
        return out
    out["auc"] = float(roc_auc_score(labels, scores))
    out["ap"] = float(average_precision_score(labels, scores))
    out["eer"] = equal_error_rate(labels, scores)
    return out


def video_scores(
    video_ids: np.ndarray, labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean frame score per video. Returns (video ids, video labels, video scores), sorted by id."""
    video_ids = np.asarray(video_ids, dtype=np.int64)
    uniq, inverse = np.unique(video_ids, return_inverse=True)
    sums = np.bincount(inverse, weights=np.asarray(scores, dtype=np.float64), minlength=uniq.size)
    counts = np.bincount(inverse, minlength=uniq.size)
    vlabels = np.zeros(uniq.size, dtype=np.int64)
    vlabels[inverse] = np.asarray(labels, dtype=np.int64)
    return uniq, vlabels, sums / counts


def evaluate_scores(labels: np.ndarray, scores: np.ndarray, video_ids: np.ndarray) -> dict[str, Any]:
    """Frame-level metrics plus video-level AUC/ACC (``video_ids`` int [N] groups frames into videos)."""
    frame = binary_metrics(labels, scores, what="frames")
    _, vlabels, vscores = video_scores(video_ids, labels, scores)
    video_full = binary_metrics(vlabels, vscores, what="videos")
    video = {k: video_full[k] for k in ("n", "n_fake", "auc", "acc")}
    return {"frame": frame, "video": video}
