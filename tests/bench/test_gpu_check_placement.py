"""The GPU check fails a GPU scan that ran any stage off the GPU (issue: the check passed with the detector on the
CPU and PyAV decoding): run.json's ``resolved`` section against what the scan asked for."""

from __future__ import annotations

from lib_deepfake.bench.gpu_check.steps.infer import placement_problems

GPU_DALI = ["--device", "cuda", "--engine", "torch", "--decoder", "dali"]
ON_GPU = {"decoder": "dali", "detector": "centerface", "detector_provider": "CUDAExecutionProvider",
          "device": "cuda", "provider": "torch"}  # fmt: skip


def test_a_scan_on_the_gpu_has_no_problems():
    assert placement_problems(ON_GPU, GPU_DALI) == []
    assert placement_problems({**ON_GPU, "provider": "TensorRT"}, GPU_DALI) == []
    assert placement_problems({**ON_GPU, "provider": "CUDAExecutionProvider"}, GPU_DALI) == []


def test_each_stage_off_the_gpu_is_named():
    assert placement_problems({**ON_GPU, "decoder": "pyav"}, GPU_DALI) == ["decoder pyav (asked dali)"]
    cpu_detector = {**ON_GPU, "detector_provider": "CPUExecutionProvider"}
    assert placement_problems(cpu_detector, GPU_DALI) == [
        "detector on CPUExecutionProvider (asked CUDAExecutionProvider)"
    ]
    cpu_classifier = {**ON_GPU, "provider": "CPUExecutionProvider"}
    assert placement_problems(cpu_classifier, GPU_DALI) == [
        "classifier on CPUExecutionProvider (device cuda; asked CUDA)"
    ]
    everything = {"decoder": "pyav", "detector": "centerface", "detector_provider": "CPUExecutionProvider",
                  "device": "cpu", "provider": "CPUExecutionProvider"}  # fmt: skip
    assert len(placement_problems(everything, GPU_DALI)) == 3


def test_cpu_scans_and_the_box_detector_are_not_judged():
    assert placement_problems({"decoder": "pyav", "device": "cpu"}, ["--device", "cpu", "--decoder", "pyav"]) == []
    box = {**ON_GPU, "detector": "center", "detector_provider": None}
    assert placement_problems(box, GPU_DALI) == []


def test_gpu_runs_never_allow_a_cpu_fallback_and_missing_dali_fails(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import lib_deepfake.bench.gpu_check.steps.infer as step

    monkeypatch.setattr(step, "has", lambda module: True)
    monkeypatch.setattr(step, "find_nvcuvid", lambda: {"ok": True})
    (tmp_path / "artifacts").mkdir()
    for suffix in (".fp16.onnx", ".fp16.plan"):
        (tmp_path / "artifacts" / f"m{suffix}").write_bytes(b"x")
    ctx = {"work": str(tmp_path), "ort_cuda_ok": True, "trt_ok": True}
    runs, skipped = step._comparison_runs(ctx, SimpleNamespace(device="cuda"), tmp_path / "m.pth")
    assert [r[0] for r in runs] == ["cuda-torch-pyav", "cuda-torch-dali", "cuda-onnxrt-fp16", "cuda-trt-fp16"]
    assert not any("--allow-cpu-fallback" in r[2] for r in runs) and skipped == []
    monkeypatch.setattr(step, "find_nvcuvid", lambda: {"ok": False})
    runs, skipped = step._comparison_runs(ctx, SimpleNamespace(device="cuda"), tmp_path / "m.pth")
    assert "cuda-torch-dali" not in [r[0] for r in runs]
    assert [(c["name"], c["status"]) for c in skipped] == [("lib-infer cuda + DALI decoder", "fail")]
