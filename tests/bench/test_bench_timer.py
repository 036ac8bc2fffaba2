"""Timing helpers: percentiles, summaries, CPU timing (no assertions on actual speed)."""

from __future__ import annotations

import math

import pytest
import torch

from lib_deepfake.bench.timer import percentile, summarize, time_calls, warm_up


def test_percentile_interpolates():
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_summarize():
    s = summarize([10.0, 20.0, 30.0, 40.0], batch=8, wall_s=0.1)
    assert s["calls"] == 4 and s["faces_per_s"] == pytest.approx(320.0)
    assert s["latency_ms"]["p50"] == pytest.approx(25.0) and s["latency_ms"]["min"] == 10.0
    assert s["latency_ms"]["p99"] <= 40.0


def test_time_calls_cpu_counts_every_call():
    calls = []
    seg = time_calls(lambda: calls.append(1), torch.device("cpu"), 5)
    assert len(calls) == 5 and len(seg.latencies_ms) == 5
    assert seg.wall_s >= sum(seg.latencies_ms) / 1000.0 * 0.5
    assert warm_up(lambda: calls.append(1), torch.device("cpu"), 2) >= 0 and len(calls) == 7
    with pytest.raises(ValueError):
        time_calls(lambda: None, torch.device("cpu"), 0)
