"""The one handle on the ``tensorrt`` module used by the TensorRT engine and builder.

For the type checker ``trt`` *is* the module (``typings/tensorrt.pyi``, the subset of the 10/11 API we call), so
mypy checks every ``_trt_api.trt.X`` attribute and call; at run time it stays None until :func:`bind` imports
TensorRT. Tests install a fake module with ``monkeypatch.setattr(_trt_api, "trt", fake)``.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from lib_deepfake._optional import require
from lib_deepfake.errors import LibDeepfakeError

if TYPE_CHECKING:
    import tensorrt as trt
else:
    trt = None


def bind(purpose: str) -> ModuleType:
    """Import TensorRT once (``MissingDependencyError`` naming the ``trt`` extra when it cannot) and return it."""
    global trt
    if trt is None:
        module = require("tensorrt", purpose=purpose, extra="trt")
        if not hasattr(module, "Builder"):
            # tensorrt-stubs alone makes `import tensorrt` succeed as an empty namespace package.
            raise LibDeepfakeError(
                "the installed 'tensorrt' has no Builder/Runtime (stubs only?): pip install 'lib-deepfake[trt]'"
            )
        trt = module
    return trt
