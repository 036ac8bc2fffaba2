"""Pure parts of lib_deepfake.faces: Detections, the downscaling policy, IoU/NMS, CenterFace decoding on
hand-made output maps, the box-only detectors and the registry. CPU, no model files.
"""

from __future__ import annotations

import numpy as np
import pytest

from lib_deepfake.errors import ContractError
from lib_deepfake.faces import (
    CenterCropDetector,
    Detections,
    DetectorConfig,
    FaceDetector,
    FixedBoxDetector,
    create_detector,
    list_detectors,
)
from lib_deepfake.faces.base import MODEL_MIN_FACE_PX, box_iou, canonical_landmarks, nms, plan_input_size


def test_plan_input_size_policy():
    # 640x360 at max_side 640: unchanged, padded to a multiple of 32.
    assert plan_input_size(360, 640, 640, None) == (1.0, 360, 640, 384, 640)
    # 1280x720: halved.
    s, rh, rw, ph, pw = plan_input_size(720, 1280, 640, None)
    assert (s, rh, rw, ph, pw) == (0.5, 360, 640, 384, 640)
    # min_face_size 24 needs s >= 20/24: the max_side limit gives way.
    s, rh, rw, *_ = plan_input_size(720, 1280, 640, 24)
    assert s == pytest.approx(MODEL_MIN_FACE_PX / 24) and rw == round(1280 * s)
    # never upscale, never downscale without max_side
    assert plan_input_size(100, 50, 640, 5)[0] == 1.0
    assert plan_input_size(2000, 3000, None, None)[:3] == (1.0, 2000, 3000)
    with pytest.raises(ContractError):
        plan_input_size(0, 10, 640, None)


def test_detector_config_validates():
    with pytest.raises(ContractError):
        DetectorConfig(score_threshold=1.5)
    with pytest.raises(ContractError):
        DetectorConfig(device="tpu")
    with pytest.raises(ContractError):
        DetectorConfig(max_side=8)


def test_box_iou_and_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    iou = box_iou(boxes, boxes)
    assert iou[0, 0] == pytest.approx(1.0) and iou[0, 2] == 0 and iou[0, 1] == pytest.approx(81 / 119)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    assert nms(boxes, scores, 0.3).tolist() == [3, 2]
    # Different groups (frames) never suppress each other.
    assert sorted(nms(boxes, scores, 0.3, groups=np.array([0, 1, 0, 1])).tolist()) == [0, 2, 3]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3).shape == (0,)


def test_decode_centerface_on_handmade_maps():
    from lib_deepfake.faces.centerface import decode_centerface

    b, h, w = 2, 8, 12
    heat = np.zeros((b, 1, h, w), np.float32)
    scale = np.zeros((b, 2, h, w), np.float32)
    offset = np.zeros((b, 2, h, w), np.float32)
    lms = np.zeros((b, 10, h, w), np.float32)
    # frame 0: a 16x8 (h x w) box centred on cell (y=3, x=5) -> centre ((5+0.5)*4, (3+0.5)*4) = (22, 14)
    heat[0, 0, 3, 5] = 0.9
    heat[0, 0, 3, 6] = 0.7  # neighbour, same face: suppressed by NMS
    scale[0, :, 3, 5] = [np.log(16 / 4), np.log(8 / 4)]
    scale[0, :, 3, 6] = [np.log(16 / 4), np.log(8 / 4)]
    lms[0, :, 3, 5] = [0.5, 0.25] * 5  # (y, x) relative -> x = x1 + 0.25*8, y = y1 + 0.5*16
    dets = decode_centerface(heat, scale, offset, lms, 0.5, 0.3, (h * 4, w * 4))
    assert len(dets) == 2 and len(dets[1]) == 0 and len(dets[0]) == 1
    np.testing.assert_allclose(dets[0].boxes[0], [18, 6, 26, 22], atol=1e-5)
    np.testing.assert_allclose(dets[0].landmarks[0], [[20, 14]] * 5, atol=1e-5)
    assert dets[0].scores[0] == pytest.approx(0.9)


def test_detections_contract():
    d = Detections(np.zeros((2, 4)), np.ones(2), np.zeros((2, 5, 2)))
    assert len(d) == 2 and d.boxes.dtype == np.float32 and len(d.select([1])) == 1
    with pytest.raises(ContractError):
        Detections(np.zeros((2, 4)), np.ones(1), np.zeros((2, 5, 2)))
    assert len(Detections()) == 0


def test_box_only_detectors_and_registry():
    frames = np.zeros((3, 100, 200, 3), np.uint8)
    center = create_detector("center")
    assert isinstance(center, FaceDetector) and isinstance(center, CenterCropDetector)
    dets = center.detect(frames)
    assert len(dets) == 3
    np.testing.assert_allclose(dets[0].boxes[0], [75, 25, 125, 75])
    fixed = FixedBoxDetector([[10, 10, 50, 60]]).detect(frames)
    assert len(fixed) == 3 and fixed[2].landmarks.shape == (1, 5, 2)
    lm = canonical_landmarks(np.array([[0, 0, 100, 100]]))[0]
    assert lm[0, 0] < lm[1, 0] and lm[2, 1] < lm[3, 1]
    assert {"center", "centerface"} <= set(list_detectors())
    with pytest.raises(ContractError, match="unknown face detector"):
        create_detector("nope")
