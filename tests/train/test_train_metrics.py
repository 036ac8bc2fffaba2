"""Frame- and video-level metrics (AUC, ACC, LogLoss, AP, EER; video = mean frame score). CPU only."""

from __future__ import annotations

import numpy as np
import pytest

from lib_deepfake.train.metrics import binary_metrics, equal_error_rate, evaluate_scores, video_scores


def test_frame_metrics_by_hand():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.6, 0.4, 0.9])
    m = binary_metrics(labels, scores)
    assert m["auc"] == pytest.approx(0.75)  # 3 of 4 (fake, real) pairs ranked right
    assert m["acc"] == pytest.approx(0.5)
    expected_ll = -np.mean(np.log([0.9, 0.4, 0.4, 0.9]))
    assert m["logloss"] == pytest.approx(expected_ll)
    assert m["ap"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert m["eer"] == pytest.approx(0.5)


def test_eer_perfect_and_inverted():
    labels = np.array([0, 0, 1, 1])
    assert equal_error_rate(labels, np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(0.0)
    assert equal_error_rate(labels, np.array([0.9, 0.8, 0.2, 0.1])) == pytest.approx(1.0)


def test_video_level_is_mean_of_frame_scores():
    vids = np.array([3, 3, 7, 7, 7, 9])
    labels = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.2, 0.4, 0.9, 0.5, 0.7, 0.8])
    ids, vl, vs = video_scores(vids, labels, scores)
    assert ids.tolist() == [3, 7, 9] and vl.tolist() == [0, 1, 0]
    assert vs == pytest.approx([0.3, 0.7, 0.8])
    m = evaluate_scores(labels, scores, vids)
    assert m["video"]["n"] == 3 and m["video"]["auc"] == pytest.approx(0.5)
    assert m["frame"]["n"] == 6


def test_single_class_gives_none_not_crash():
    m = binary_metrics(np.array([1, 1, 1]), np.array([0.2, 0.7, 0.9]))
    assert m["auc"] is None and m["ap"] is None and m["eer"] is None
    assert m["acc"] == pytest.approx(2 / 3)
