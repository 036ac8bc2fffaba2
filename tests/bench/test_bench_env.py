"""lib-bench env report and the shared machine description (CPU)."""

from __future__ import annotations

from lib_deepfake.bench.env import env_report, format_env
from lib_deepfake.bench.machine import device_slug, machine_info, slug


def test_env_report_covers_everything():
    report = env_report("cpu")
    assert set(report) >= {"machine", "engines", "onnxruntime", "tensorrt", "decoders", "face_detector", "crop_backend"}
    assert report["engines"]["torch"]["ok"] and report["engines"]["onnxrt"]["ok"]
    assert set(report["decoders"]) == {"pyav", "dali"}
    for entry in [*report["engines"].values(), *report["decoders"].values(), report["tensorrt"]]:
        assert entry["ok"] or entry["reason"], entry  # never "not available" without a reason
    text = format_env(report)
    assert "engines (for device cpu):" in text and "crop backend:" in text and "face detector:" in text


def test_machine_and_slug():
    info = machine_info("cpu")
    assert info["cpu_cores"] >= 1 and info["versions"]["python"]
    assert slug("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz") == "intel-xeon-platinum-8481c"
    assert device_slug({"cpu": "AMD EPYC", "cpu_cores": 2, "gpu": None}, "cpu") == "cpu-amd-epyc-2c"
    assert device_slug({"cpu": "x", "cpu_cores": 2, "gpu": {"name": "NVIDIA H100 80GB HBM3"}}, "cuda:0") == (
        "gpu-nvidia-h100-80gb-hbm3")  # fmt: skip
