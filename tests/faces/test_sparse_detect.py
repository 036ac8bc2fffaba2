"""Sparse detection: schedule, one-to-one agreement, interpolation, and which gaps go back to the detector."""

from __future__ import annotations

import numpy as np
import pytest

from lib_deepfake.errors import ContractError
from lib_deepfake.faces.base import Detections
from lib_deepfake.faces.sparse_detect import fill_gaps, first_pass_positions, interpolate, match_faces


def _dets(*boxes, score=0.9) -> Detections:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    lm = np.repeat(b[:, None, :2], 5, axis=1)  # landmarks at the top-left corner: easy to check interpolation
    return Detections(b, np.full(len(b), score, np.float32), lm)


def test_first_pass_positions_keep_the_last_frame():
    assert first_pass_positions(7, 1) == list(range(7))
    assert first_pass_positions(7, 2) == [0, 2, 4, 6]
    assert first_pass_positions(8, 3) == [0, 3, 6, 7]
    assert first_pass_positions(1, 4) == [0] and first_pass_positions(0, 2) == []
    with pytest.raises(ContractError):
        first_pass_positions(5, 0)


def test_match_faces_is_one_to_one_and_refuses_disagreement():
    a = _dets([0, 0, 10, 10], [100, 0, 110, 10])
    b = _dets([101, 1, 111, 11], [1, 0, 11, 10])  # same two faces, listed the other way round
    assert match_faces(a, b, 0.5).tolist() == [1, 0]
    assert match_faces(a, _dets([0, 0, 10, 10]), 0.5) is None  # a face left
    assert match_faces(a, _dets([0, 0, 10, 10], [200, 0, 210, 10]), 0.5) is None  # a face jumped (cut)
    assert match_faces(_dets([0, 0, 10, 10]), _dets([6, 0, 16, 10]), 0.5) is None  # IoU 0.25: moved too far
    assert match_faces(_dets(), _dets(), 0.5).tolist() == []


def test_interpolate_boxes_landmarks_and_scores():
    a, b = _dets([0, 0, 10, 10], score=0.9), _dets([4, 2, 14, 12], score=0.7)
    mid = interpolate(a, b, np.array([0]), 0.5)
    np.testing.assert_allclose(mid.boxes, [[2, 1, 12, 11]])
    np.testing.assert_allclose(mid.landmarks[0, 0], [2, 1])
    assert mid.scores[0] == pytest.approx(0.7)


def test_fill_gaps_interpolates_agreeing_gaps_and_refines_the_others():
    n = 9
    dets: list = [None] * n
    # Face drifts 1 px per frame up to position 4, then a scene cut moves it across the frame.
    for p in (0, 2, 4, 6, 8):
        x = p if p <= 4 else 200 + p
        dets[p] = _dets([x, 0, x + 20, 20])
    filled, refine = fill_gaps(dets, [0, 2, 4, 6, 8], 0.5)
    assert sorted(filled) == [1, 3, 7] and refine == [5]
    np.testing.assert_allclose(filled[3].boxes, [[3, 0, 23, 20]])
    # Gaps without any face on both ends are "no face" in between.
    empty: list = [_dets(), None, _dets()]
    filled, refine = fill_gaps(empty, [0, 2])
    assert len(filled[1]) == 0 and refine == []
    with pytest.raises(ContractError):
        fill_gaps([None, None, _dets()], [0, 2])
