"""Inference engines behind one interface (PyTorch reference, ONNX Runtime, TensorRT, OpenVINO, AOTInductor).

Nothing heavy is imported here: engine modules are imported by :func:`create_engine` / :func:`engine_class` when an
engine is asked for, and their runtimes (onnxruntime, tensorrt) only when an engine is loaded::

    from lib_deepfake.engines import create_engine
    with create_engine("model.onnx", device="cpu") as engine:      # or create_engine("trt", "model.plan", ...)
        prob_fake = engine.infer(faces)                              # uint8 [N,S,S,3] RGB -> float32 [N]
"""

from __future__ import annotations

from typing import Any

from lib_deepfake.engines.registry import (
    create_engine,
    engine_availability,
    engine_class,
    engine_for_artifact,
    list_engines,
    register_engine,
    suffix_table,
)

__all__ = [
    "CONTRACT",
    "Availability",
    "Engine",
    "EngineInfo",
    "IOSpec",
    "TensorSpec",
    "check_faces",
    "create_engine",
    "engine_availability",
    "engine_class",
    "engine_for_artifact",
    "list_engines",
    "register_engine",
    "suffix_table",
]

_BASE_NAMES = {"CONTRACT", "Availability", "Engine", "EngineInfo", "IOSpec", "TensorSpec", "check_faces"}


def __getattr__(name: str) -> Any:
    # engines.base imports torch; keep `import lib_deepfake.engines` itself torch-free for the CLIs' --help.
    if name in _BASE_NAMES:
        from lib_deepfake.engines import base

        return getattr(base, name)
    raise AttributeError(f"module 'lib_deepfake.engines' has no attribute {name!r}")
