"""lib-deepfake: train LIB deepfake detectors and scan videos for face forgeries.

Importing this package imports nothing heavy (no onnxruntime, TensorRT, DALI, CUDA); see
``tests/test_import_hygiene.py``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lib-deepfake")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
