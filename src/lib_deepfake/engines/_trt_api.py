"""The one handle on TensorRT's Python module, used by the TensorRT engine and builder.

For the type checker ``trt`` *is* the module (``typings/tensorrt.pyi``, the subset of the 10/11 API we call), so
mypy checks every ``_trt_api.trt.X`` attribute and call; at run time it stays None until :func:`bind` imports
TensorRT. Tests install a fake module with ``monkeypatch.setattr(_trt_api, "trt", fake)``.

Two modules can serve: the full bindings (``tensorrt``: builder and runtime) and NVIDIA's lean runtime
(``tensorrt_lean_bindings`` from the ``tensorrt-lean-cu13-*`` wheels, 44 MB instead of the full libraries), which
has the same ``Runtime``/``ICudaEngine``/``IExecutionContext`` API but no builder and runs only plans built
version-compatible. Building always needs the full module; running prefers it and falls back to the lean one.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from lib_deepfake._optional import is_installed, require
from lib_deepfake.errors import LibDeepfakeError, MissingDependencyError

if TYPE_CHECKING:
    import tensorrt as trt
else:
    trt = None

FULL_MODULE = "tensorrt"
#: The lean runtime's import names: the TensorRT 11 wheels install ``tensorrt_lean_bindings``; older lean packages
#: were imported as ``tensorrt_lean``.
LEAN_MODULES = ("tensorrt_lean_bindings", "tensorrt_lean")


def runtime_kind(module: object) -> str:
    """``"full"`` for the full bindings (they have a ``Builder``), ``"lean"`` for the lean runtime."""
    return "full" if hasattr(module, "Builder") else "lean"


def installed_runtime() -> str | None:
    """The module :func:`bind` would use for running plans, found without importing it (None: neither)."""
    for name in (FULL_MODULE, *LEAN_MODULES):
        if is_installed(name):
            return name
    return None


def _import_full(purpose: str) -> ModuleType:
    module = require(FULL_MODULE, purpose=purpose, extra="trt")
    if not hasattr(module, "Builder"):
        # tensorrt-stubs alone makes `import tensorrt` succeed as an empty namespace package.
        raise MissingDependencyError(
            "the installed 'tensorrt' has no Builder/Runtime (stubs only?): pip install 'lib-deepfake[trt]'"
        )
    return module


def bind(purpose: str, *, builder: bool = True) -> ModuleType:
    """Import TensorRT once and return it.

    Args:
        purpose: what it is for, shown in errors.
        builder: the full bindings are required (building plans); False also accepts the lean runtime when the
            full bindings are not installed.

    Raises:
        MissingDependencyError: nothing usable is installed; the message names the extras.
    """
    global trt
    if trt is not None and (not builder or runtime_kind(trt) == "full"):
        return trt
    try:
        trt = _import_full(purpose)
        return trt
    except MissingDependencyError as full_error:
        if builder:
            raise
        for name in LEAN_MODULES:
            if is_installed(name):
                trt = require(name, purpose=purpose, extra="trt-lean")
                return trt
        raise MissingDependencyError(
            f"{purpose} needs TensorRT: neither the full bindings ({full_error}) nor the lean runtime "
            "(tensorrt_lean_bindings) is installed; pip install 'lib-deepfake[trt]' (builder and runtime) or "
            "'lib-deepfake[trt-lean]' (runtime for plans built with --version-compatible)"
        ) from None


def version_tuple(version: str) -> tuple[int, ...]:
    """``"11.4.0.106"`` -> (11, 4, 0, 106)."""
    try:
        return tuple(int(part) for part in str(version).split("."))
    except ValueError:
        raise LibDeepfakeError(f"cannot read a TensorRT version from {version!r}") from None
