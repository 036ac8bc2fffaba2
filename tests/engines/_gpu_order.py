"""Helpers for the GPU stream-ordering tests: an input written by a slow kernel, and the ONNX Runtime CUDA check.

A race between torch's stream and ONNX Runtime's shows only when the producer is still running when the consumer
starts: ``slow_copy`` queues a spin kernel of about ``SPIN_CYCLES`` clock cycles (tens of milliseconds) before the
copy that writes the input, all on the caller's current stream, and returns without synchronising.
"""

from __future__ import annotations

import pytest
import torch

SPIN_CYCLES = 50_000_000
REPEATS = 50


def slow_copy(src: torch.Tensor) -> torch.Tensor:
    """A new tensor that holds ``src`` once the current stream reaches it: zeros first, a spin, then the copy."""
    dst = torch.zeros_like(src)
    torch.cuda._sleep(SPIN_CYCLES)
    dst.copy_(src)
    return dst


def require_ort_cuda() -> None:
    """Skip (with the reason) unless onnxruntime is the GPU build with the CUDA provider compiled in."""
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider: install onnxruntime-gpu (not onnxruntime) for this test")
