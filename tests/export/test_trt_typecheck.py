"""mypy checks the TensorRT modules against typings/tensorrt.pyi (the subset of the TensorRT 11 API we call), so
a misspelt TensorRT name or a call removed in 11 (e.g. BuilderFlag.FP16 used directly) fails here. About 2 s."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = [
    "src/lib_deepfake/engines/_trt_api.py",
    "src/lib_deepfake/engines/trt_engine.py",
    "src/lib_deepfake/export/trt_build.py",
    "src/lib_deepfake/export/precision.py",
]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed (pip install '.[dev]')")
def test_trt_modules_typecheck_against_stub():
    # follow-imports=skip keeps it to ~2 s (torch is not analysed); the stub is passed explicitly so TensorRT
    # names are still checked.
    cmd = [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=skip", "typings/tensorrt.pyi", *MODULES]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_stub_has_no_fp16_flag():
    stub = (ROOT / "typings" / "tensorrt.pyi").read_text()
    assert "class BuilderFlag" in stub and "FP16 =" not in stub
