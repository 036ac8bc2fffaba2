"""ONNX Runtime provider selection, the no-silent-fallback rule and the CUDA stream ordering, with a fake
onnxruntime on CPU; the ordering on a real GPU is tests/engines/test_ort_stream_order_gpu.py (marked gpu)."""

from __future__ import annotations

import types

import pytest
import torch

from lib_deepfake.engines import ort_engine
from lib_deepfake.engines.ort_engine import (
    OrtEngine,
    check_providers,
    default_threads,
    gpu_stream_options,
    provider_list,
    run_ordered,
    with_user_stream,
)
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError, MissingDependencyError

CUDA0 = torch.device("cuda", 0)


def test_provider_list_cpu():
    assert provider_list("cpu", torch.device("cpu")) == ["CPUExecutionProvider"]


def test_provider_list_cuda_and_tensorrt(tmp_path):
    assert provider_list("cuda", torch.device("cuda", 1)) == [("CUDAExecutionProvider", {"device_id": 1}),
                                                              "CPUExecutionProvider"]  # fmt: skip
    chain = provider_list("tensorrt", CUDA0, fp16=True, trt_cache_dir=tmp_path)
    assert [p[0] if isinstance(p, tuple) else p for p in chain] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]  # fmt: skip
    assert chain[0][1]["trt_fp16_enable"] is True and chain[0][1]["trt_engine_cache_path"] == str(tmp_path)


def test_gpu_stream_options_refuse_the_default_stream():
    assert gpu_stream_options(0x7F00) == {"has_user_compute_stream": "1", "user_compute_stream": str(0x7F00)}
    with pytest.raises(LibDeepfakeError, match="'no stream'"):
        gpu_stream_options(0)


def test_user_stream_goes_to_every_gpu_provider(tmp_path):
    chain = with_user_stream(provider_list("tensorrt", torch.device("cuda", 2), trt_cache_dir=tmp_path), 99)
    assert [p[0] if isinstance(p, tuple) else p for p in chain] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]  # fmt: skip
    for name, opts in chain[:2]:
        assert opts["user_compute_stream"] == "99" and opts["has_user_compute_stream"] == "1", name
        assert opts["device_id"] == 2, name
    assert chain[0][1]["trt_engine_cache_path"] == str(tmp_path)
    assert with_user_stream(["CPUExecutionProvider"], 99) == ["CPUExecutionProvider"]


class _Log:
    def __init__(self):
        self.events = []


class _Stream:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def wait_stream(self, other):
        self.log.events.append(f"{self.name} waits {other.name}")


class _Tensor:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def record_stream(self, stream):
        self.log.events.append(f"{self.name} recorded on {stream.name}")


def test_run_ordered_waits_in_both_directions():
    log = _Log()
    ort, caller = _Stream("ort", log), _Stream("caller", log)
    result = run_ordered(ort, caller, lambda: log.events.append("run") or 7, consumed=[_Tensor("faces", log)],
                         produced=[_Tensor("out", log)])  # fmt: skip
    assert result == 7
    assert log.events == ["ort waits caller", "run", "caller waits ort", "faces recorded on ort",
                          "out recorded on caller"]  # fmt: skip


def test_provider_list_needs_cuda_device():
    with pytest.raises(LibDeepfakeError, match="needs --device cuda"):
        provider_list("cuda", torch.device("cpu"))


def test_check_providers():
    assert check_providers("cpu", ["CPUExecutionProvider"], False) is None
    assert check_providers("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], False) is None
    with pytest.raises(ArtifactMismatchError, match="--allow-cpu-fallback"):
        check_providers("cuda", ["CPUExecutionProvider"], False)
    note = check_providers("tensorrt", ["CUDAExecutionProvider", "CPUExecutionProvider"], True)
    assert "TensorrtExecutionProvider" in note and "CUDAExecutionProvider" in note


def test_default_threads_positive():
    assert default_threads() >= 1


class _Arg:
    def __init__(self, name, type_, shape):
        self.name, self.type, self.shape = name, type_, shape


def _fake_ort(actual):
    created = {}

    class Session:
        def __init__(self, path, options, providers):
            created["providers"] = providers
            created["threads"] = options.intra_op_num_threads

        def get_providers(self):
            return actual

        def get_inputs(self):
            return [_Arg("faces", "tensor(uint8)", ["batch", 32, 32, 3])]

        def get_outputs(self):
            return [_Arg("prob_fake", "tensor(float)", ["batch"])]

        def get_modelmeta(self):
            return types.SimpleNamespace(custom_metadata_map={"lib_deepfake.precision": "fp32"})

    module = types.SimpleNamespace(
        __version__="1.31.1-fake",
        SessionOptions=lambda: types.SimpleNamespace(),
        ExecutionMode=types.SimpleNamespace(ORT_SEQUENTIAL=0),
        GraphOptimizationLevel=types.SimpleNamespace(ORT_ENABLE_ALL=99),
        InferenceSession=Session,
    )
    return module, created


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"fake")
    return path


class _FakeCudaStream:
    def __init__(self, device=None):
        self.device = device
        self.cuda_stream = 0x5EED


def _install(monkeypatch, actual):
    module, created = _fake_ort(actual)
    monkeypatch.setattr(ort_engine, "require", lambda name, **kw: module)
    monkeypatch.setattr(ort_engine, "require_cuda", lambda device, what: None)
    monkeypatch.setattr(torch.cuda, "Stream", _FakeCudaStream)
    return created


def test_gpu_session_gets_a_dedicated_stream(monkeypatch, model_file):
    created = _install(monkeypatch, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with OrtEngine(model_file, device="cuda:1", provider="cuda"):
        pass
    name, opts = created["providers"][0]
    assert name == "CUDAExecutionProvider" and opts["device_id"] == 1
    assert opts["user_compute_stream"] == str(0x5EED) and opts["has_user_compute_stream"] == "1"


def test_missing_gpu_provider_is_an_error(monkeypatch, model_file):
    created = _install(monkeypatch, ["CPUExecutionProvider"])
    engine = OrtEngine(model_file, device="cuda:0", provider="tensorrt")
    with pytest.raises(ArtifactMismatchError, match="requested TensorrtExecutionProvider"):
        engine.load()
    assert created["providers"][0][0] == "TensorrtExecutionProvider"


def test_fallback_is_recorded(monkeypatch, model_file):
    _install(monkeypatch, ["CPUExecutionProvider"])
    engine = OrtEngine(model_file, device="cuda:0", provider="tensorrt", allow_cpu_fallback=True)
    engine.load()
    info = engine.info()
    assert info.runtime["providers"] == ["CPUExecutionProvider"]
    assert "requested TensorrtExecutionProvider" in info.runtime["fallback"]
    assert engine.options()["allow_cpu_fallback"] is True
    engine.close()


def test_cpu_threads_are_explicit(monkeypatch, model_file):
    created = _install(monkeypatch, ["CPUExecutionProvider"])
    with OrtEngine(model_file, threads=3) as engine:
        assert engine.precision == "fp32" and engine.input_size == 32
    assert created["threads"] == 3


def test_missing_onnxruntime_names_extra(monkeypatch, model_file):
    def missing(name, **kw):
        raise MissingDependencyError(f"{name} is needed ... install it with: pip install 'lib-deepfake[cpu]'")

    monkeypatch.setattr(ort_engine, "require", missing)
    with pytest.raises(MissingDependencyError, match=r"lib-deepfake\[cpu\]"):
        OrtEngine(model_file).load()


def test_cpu_provider_with_cuda_device_rejected(model_file):
    with pytest.raises(LibDeepfakeError, match="use --device cpu"):
        OrtEngine(model_file, device="cuda:0", provider="cpu")
