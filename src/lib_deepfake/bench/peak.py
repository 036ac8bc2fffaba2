"""The machine's measured GEMM peak per precision, taken at the start of ``lib-bench engines``: the denominator of
every row's "of peak" column.

One large square matrix product per precision, with torch, on the benchmarked device and torch's thread count:

- ``fp32``: ``torch.matmul`` in float32 (on CUDA with TF32 off, so it is a true FP32 rate);
- ``bf16``: ``torch.matmul`` in bfloat16 - on a CPU only where it has AVX512_BF16 or AMX-BF16 (elsewhere torch
  emulates bf16 and the figure would be no peak);
- ``fp16``: ``torch.matmul`` in float16, CUDA only;
- ``int8``: ``torch._int_mm`` (int8 x int8 -> int32; oneDNN on CPUs, cuBLASLt on GPUs), on a CPU only where it has
  VNNI or AMX-INT8. Reported in GOP/s under the same ``gflops`` key.

A GEMM is the best case of a CPU or GPU (the highest arithmetic intensity), so "of peak" is a fraction of what this
machine demonstrably reaches, not of a datasheet number. The figure is the best of a few timed segments: on a
shared machine the median is recorded too, and a large gap between them says the machine was busy.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

DEFAULT_SIZE = 2048
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
_METHODS = {
    "fp32": "torch.matmul float32",
    "bf16": "torch.matmul bfloat16",
    "fp16": "torch.matmul float16",
    "int8": "torch._int_mm int8 x int8 -> int32",
}


def precision_support(precision: str, device: torch.device) -> str | None:
    """None when a ``precision`` GEMM peak is meaningful on ``device``, else why not (one line)."""
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r}"
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            return f"{torch.cuda.get_device_name(device)} has no bf16 tensor cores"
        return None
    from lib_deepfake.engines.cpu_caps import cpu_caps

    caps = cpu_caps()
    if precision == "fp16":
        return "no fp16 GEMM peak on CPUs (no engine computes in fp16 there)"
    if precision == "bf16" and not caps.bf16:
        return f"{caps.name} has no AVX512_BF16/AMX-BF16 instructions"
    if precision == "int8" and not caps.int8_dot:
        return f"{caps.name} has no VNNI/AMX-INT8 instructions"
    return None


def _operands(precision: str, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, Callable[..., Any]]:
    gen = torch.Generator().manual_seed(0)
    if precision == "int8":
        a = torch.randint(-128, 128, (n, n), generator=gen, dtype=torch.int8)
        b = torch.randint(-128, 128, (n, n), generator=gen, dtype=torch.int8)
        return a.to(device), b.to(device), torch._int_mm
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    a = torch.randn((n, n), generator=gen).to(device=device, dtype=dtype)
    b = torch.randn((n, n), generator=gen).to(device=device, dtype=dtype)
    return a, b, torch.matmul


@contextlib.contextmanager
def _no_tf32(device: torch.device) -> Iterator[None]:
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_rate(precision: str, device: torch.device | str = "cpu", *, size: int = DEFAULT_SIZE, segments: int = 3,
              segment_s: float = 0.15) -> dict[str, Any]:  # fmt: skip
    """Time ``size`` x ``size`` GEMMs in ``precision`` on ``device``.

    Returns:
        ``{"gflops": best segment rate, "median_gflops", "method", "size", "threads", "calls"}``.
    """
    device = torch.device(device)
    a, b, fn = _operands(precision, size, device)
    flop = 2.0 * size**3
    rates, calls = [], 0
    with torch.inference_mode(), _no_tf32(device):
        fn(a, b)  # first call: kernel selection, packing buffers
        _sync(device)
        start = time.perf_counter()
        fn(a, b)
        _sync(device)
        per_call = max(time.perf_counter() - start, 1e-6)
        reps = max(1, int(segment_s / per_call))
        for _ in range(segments):
            start = time.perf_counter()
            for _ in range(reps):
                fn(a, b)
            _sync(device)
            rates.append(flop * reps / (time.perf_counter() - start) / 1e9)
            calls += reps
    rates.sort()
    return {"gflops": rates[-1], "median_gflops": rates[len(rates) // 2], "method": _METHODS[precision],
            "size": size, "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "calls": calls}  # fmt: skip


def measure_peaks(device: torch.device | str = "cpu", precisions: tuple[str, ...] = PRECISIONS, *,
                  size: int = DEFAULT_SIZE) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The GEMM peak of every precision in ``precisions`` that ``device`` has; the others get ``{"skipped": why}``."""
    device = torch.device(device)
    peaks: dict[str, dict[str, Any]] = {}
    for precision in dict.fromkeys(precisions):
        why = precision_support(precision, device)
        peaks[precision] = {"skipped": why} if why else gemm_rate(precision, device, size=size)
    return peaks
