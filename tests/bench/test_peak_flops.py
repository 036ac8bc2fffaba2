"""MAC counting (against hand-computed small models), the GEMM peaks, and the GFLOP/s columns of lib-bench engines."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lib_deepfake.bench.flops import achieved_gflops, annotate_results, count_macs, model_work
from lib_deepfake.bench.peak import gemm_rate, measure_peaks, precision_support
from lib_deepfake.engines.cpu_caps import CpuCaps
from lib_deepfake.model.config import LIBConfig, Preprocessing


def test_count_macs_matches_hand_count():
    # conv 3->8, 3x3, pad 1, on 16x16: 8 * 16*16 * 3*3*3 = 55,296 MACs per image; stride-2 conv 8->4, 1x1, on the
    # 16x16 map -> 8x8 output: 4 * 8*8 * 8 = 2,048; linear 4*8*8 -> 5: 1,280. Element-wise ops are not counted.
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1, stride=2), nn.Flatten(), nn.Linear(256, 5)
    )
    per_image = 55_296 + 2_048 + 1_280
    assert count_macs(model, torch.zeros(1, 3, 16, 16)) == per_image
    assert count_macs(model, torch.zeros(3, 3, 16, 16)) == 3 * per_image


def test_count_macs_grouped_convolution():
    # groups divide the input channels each output sees: 16 * 10*10 * (8/4) * 3*3
    conv = nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False)
    assert count_macs(conv, torch.zeros(1, 8, 10, 10)) == 16 * 100 * 2 * 9


def test_model_work_of_a_lib_model_on_the_meta_device():
    config = LIBConfig("resnet34", num_libs=2, width_mult=0.25, preprocessing=Preprocessing(input_size=32))
    work = model_work(config)
    # counted again on real weights: the meta-device count is the same number
    from lib_deepfake.model.inference import InferenceModel
    from lib_deepfake.model.lib import LIBNet

    real = InferenceModel(LIBNet(config), config.preprocessing).eval()
    assert work["macs_per_face"] == count_macs(real, torch.zeros(1, 32, 32, 3, dtype=torch.uint8))
    assert work["gflop_per_face"] == pytest.approx(2 * work["macs_per_face"] / 1e9)
    assert work["input_size"] == 32 and "FlopCounterMode" in work["method"]


def test_annotate_results_against_the_row_precision():
    work = {"macs_per_face": 5_000_000_000}  # 10 GFLOP per face
    peaks = {"fp32": {"gflops": 200.0}, "bf16": {"gflops": 1000.0}, "int8": {"skipped": "no VNNI"}}
    rows = [{"precision": "fp32", "faces_per_s": 10.0}, {"precision": "bf16", "faces_per_s": 40.0},
            {"precision": "int8", "faces_per_s": 50.0}]  # fmt: skip
    annotate_results(rows, work, peaks)
    assert rows[0]["gflops"] == pytest.approx(100.0) and rows[0]["peak_fraction"] == pytest.approx(0.5)
    assert rows[1]["gflops"] == pytest.approx(400.0) and rows[1]["peak_fraction"] == pytest.approx(0.4)
    assert rows[2]["gflops"] == pytest.approx(500.0) and rows[2]["peak_fraction"] is None
    assert achieved_gflops(1, None) is None


def test_gemm_rate_is_a_plausible_fp32_rate():
    rate = gemm_rate("fp32", "cpu", size=256, segments=2, segment_s=0.02)
    assert rate["gflops"] >= rate["median_gflops"] > 0.1
    assert rate["method"] == "torch.matmul float32" and rate["size"] == 256 and rate["calls"] >= 2


def test_precision_support_follows_the_cpu_flags(monkeypatch):
    from lib_deepfake.engines import cpu_caps as module

    bare = CpuCaps("Old CPU", frozenset({"avx2", "fma"}))
    monkeypatch.setattr(module, "cpu_caps", lambda: bare)
    cpu = torch.device("cpu")
    assert precision_support("fp32", cpu) is None
    assert "AVX512_BF16" in precision_support("bf16", cpu)
    assert "VNNI" in precision_support("int8", cpu)
    assert "CPU" in precision_support("fp16", cpu)
    peaks = measure_peaks(cpu, ("bf16", "int8", "fp16"))
    assert all("skipped" in p for p in peaks.values())


def test_measure_peaks_on_this_cpu_runs_what_it_has():
    from lib_deepfake.engines.cpu_caps import cpu_caps

    peaks = measure_peaks("cpu", ("fp32", "bf16", "int8"), size=256)
    assert peaks["fp32"]["gflops"] > 0
    assert ("gflops" in peaks["bf16"]) == cpu_caps().bf16
    assert ("gflops" in peaks["int8"]) == cpu_caps().int8_dot
