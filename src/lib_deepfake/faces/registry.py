"""Detector registry: a name -> factory table, so CLIs and pipelines never switch on detector names.

Built-ins: ``centerface`` (default, ONNX Runtime), ``center`` (a fixed centre box; tests, pre-cropped footage).
Another detector (e.g. a user's RetinaFace/SCRFD ONNX with its decoder) plugs in with :func:`register_detector`
as long as it implements :class:`~lib_deepfake.faces.base.FaceDetector`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lib_deepfake.errors import ContractError
from lib_deepfake.faces.base import CenterCropDetector, DetectorConfig, FaceDetector

__all__ = ["create_detector", "list_detectors", "register_detector"]

DetectorFactory = Callable[[DetectorConfig, "Path | None"], FaceDetector]
_REGISTRY: dict[str, DetectorFactory] = {}


def register_detector(name: str, factory: DetectorFactory) -> None:
    """Register ``factory(config, model_path) -> FaceDetector`` under ``name`` (duplicates raise)."""
    if name in _REGISTRY:
        raise ContractError(f"a face detector named {name!r} is already registered")
    _REGISTRY[name] = factory


def list_detectors() -> list[str]:
    return sorted(_REGISTRY)


def create_detector(
    name: str = "centerface", config: DetectorConfig | None = None, model_path: Path | str | None = None
) -> FaceDetector:
    """Build a registered detector. Cheap: models load on the first ``detect`` call.

    Raises:
        ContractError: unknown name.
    """
    if name not in _REGISTRY:
        raise ContractError(f"unknown face detector {name!r}; choose from {', '.join(list_detectors())}")
    return _REGISTRY[name](config or DetectorConfig(), Path(model_path) if model_path is not None else None)


def _centerface(config: DetectorConfig, model_path: Path | None) -> FaceDetector:
    from lib_deepfake.faces.centerface import CenterFaceDetector  # onnx/onnxruntime load lazily inside

    return CenterFaceDetector(config, model_path)


def _center(config: DetectorConfig, model_path: Path | None) -> FaceDetector:
    if model_path is not None:
        raise ContractError("the 'center' detector takes no model file")
    return CenterCropDetector()


register_detector("centerface", _centerface)
register_detector("center", _center)
