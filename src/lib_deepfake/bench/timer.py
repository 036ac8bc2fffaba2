"""Timing engine calls: synchronised, with warm-up kept apart, per-call latencies for percentiles.

On CUDA each call is bracketed by ``torch.cuda.Event(enable_timing=True)`` pairs recorded on the current stream
(engines enqueue asynchronously) and the stream is synchronised once at the end of the segment; throughput comes
from the first start to the last end event. On CPU every call is synchronous and timed with ``perf_counter``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Segment:
    """One timed run of ``calls`` consecutive calls."""

    latencies_ms: list[float]
    wall_s: float  # first call start -> last call end


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(fn: Callable[[], object], device: torch.device, calls: int) -> float:
    """Run ``calls`` untimed calls (compilation, autotuning, allocator growth); returns their wall time in s."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return time.perf_counter() - start


def time_calls(fn: Callable[[], object], device: torch.device, calls: int) -> Segment:
    """Time ``calls`` consecutive calls of ``fn`` on ``device``."""
    if calls < 1:
        raise ValueError("calls must be >= 1")
    if device.type == "cuda":
        stream = torch.cuda.current_stream(device)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(calls)]
        synchronize(device)
        for start, end in events:
            start.record(stream)
            fn()
            end.record(stream)
        stream.synchronize()
        latencies = [start.elapsed_time(end) for start, end in events]
        wall_s = events[0][0].elapsed_time(events[-1][1]) / 1000.0
        return Segment(latencies, wall_s)
    latencies = []
    begin = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return Segment(latencies, time.perf_counter() - begin)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of a non-empty sequence."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(latencies_ms: Sequence[float], batch: int, wall_s: float) -> dict[str, Any]:
    """Throughput (faces/s over the timed wall time) and latency statistics in ms."""
    calls = len(latencies_ms)
    return {
        "calls": calls,
        "faces_per_s": batch * calls / wall_s if wall_s > 0 else math.nan,
        "latency_ms": {
            "p50": percentile(latencies_ms, 50),
            "p90": percentile(latencies_ms, 90),
            "p99": percentile(latencies_ms, 99),
            "mean": sum(latencies_ms) / calls if calls else math.nan,
            "min": min(latencies_ms) if calls else math.nan,
        },
        "wall_s": wall_s,
    }
