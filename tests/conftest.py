"""Shared pytest configuration: hardware markers that skip with a reason, --runslow, RNG isolation.

Markers (declared in pyproject.toml, --strict-markers):
  gpu  - needs a CUDA device (torch.cuda.is_available())
  trt  - needs a real TensorRT (find_spec("tensorrt") and tensorrt.Builder exists)
  dali - needs NVIDIA DALI (find_spec("nvidia.dali"))
  ray  - needs Ray (find_spec("ray"))
  slow - skipped unless --runslow
"""

from __future__ import annotations

import importlib
import importlib.util
import random

import numpy as np
import pytest
import torch


def _has(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _has_real_tensorrt() -> bool:
    # tensorrt-stubs makes `import tensorrt` succeed as an empty namespace package; require the real API.
    if not _has("tensorrt"):
        return False
    try:
        return hasattr(importlib.import_module("tensorrt"), "Builder")
    except Exception:
        return False


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {}
    if not torch.cuda.is_available():
        reasons["gpu"] = "needs a CUDA device (none here)"
    if not _has_real_tensorrt():
        reasons["trt"] = "needs TensorRT (not installed)"
    if not _has("nvidia.dali"):
        reasons["dali"] = "needs NVIDIA DALI (not installed)"
    if not _has("ray"):
        reasons["ray"] = "needs Ray (pip install 'lib-deepfake[ray]')"
    if not config.getoption("--runslow"):
        reasons["slow"] = "slow test: pass --runslow"
    for item in items:
        for marker, reason in reasons.items():
            # get_closest_marker, not `in item.keywords`: a parametrize id containing "trt" is not a marker
            if item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
                break


@pytest.fixture(autouse=True)
def _prevent_leaking_rng():
    """Restore Python, NumPy and torch RNG state after each test (torchvision's pattern)."""
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)
    torch.set_rng_state(torch_state)


def devices():
    """Parametrisation over CPU and (marked) CUDA, torchvision's cpu_and_cuda()."""
    return ("cpu", pytest.param("cuda", marks=pytest.mark.gpu))
