"""ONNX Runtime provider selection, the no-silent-fallback rule and the CUDA stream ordering, against the
installed (CPU) onnxruntime; the ordering on a real GPU is tests/engines/test_ort_stream_order_gpu.py (marked gpu)."""

from __future__ import annotations

import sys

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
# The CPU build of onnxruntime warns when asked for GPU providers; these tests ask on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Specified provider")


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


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from tests.engines._artifacts import contract_onnx, tiny_checkpoint

    root = tmp_path_factory.mktemp("ort")
    return contract_onnx(tiny_checkpoint(root / "tiny.pth"), root / "tiny.onnx")


class _FakeCudaStream:
    """Stands in for torch.cuda.Stream on a machine without CUDA (our side of the seam, not ONNX Runtime's)."""

    def __init__(self, device=None):
        self.device = device
        self.cuda_stream = 0x5EED


@pytest.fixture
def real_ort(monkeypatch):
    """The installed onnxruntime (the CPU build here), with its InferenceSession wrapped to record what the engine
    asked for. Only the CUDA checks on our side are bypassed: ONNX Runtime itself decides which providers it uses."""
    import onnxruntime

    requested = {}

    class RecordingSession(onnxruntime.InferenceSession):
        def __init__(self, path, sess_options=None, providers=None, **kwargs):
            requested["providers"] = providers
            super().__init__(path, sess_options, providers=providers, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", RecordingSession)
    monkeypatch.setattr(ort_engine, "require_cuda", lambda device, what: None)
    monkeypatch.setattr(torch.cuda, "Stream", _FakeCudaStream)
    return requested


def test_gpu_session_gets_a_dedicated_stream(real_ort, model_file):
    with OrtEngine(model_file, device="cuda:1", provider="cuda", allow_cpu_fallback=True):
        pass
    name, opts = real_ort["providers"][0]
    assert name == "CUDAExecutionProvider" and opts["device_id"] == 1
    assert opts["user_compute_stream"] == str(0x5EED) and opts["has_user_compute_stream"] == "1"


def test_missing_gpu_provider_is_an_error(real_ort, model_file):
    # The CPU build of onnxruntime drops the TensorRT and CUDA providers with only a warning; the engine must see it.
    engine = OrtEngine(model_file, device="cuda:0", provider="tensorrt")
    with pytest.raises(ArtifactMismatchError, match="requested TensorrtExecutionProvider but ONNX Runtime uses"):
        engine.load()
    assert real_ort["providers"][0][0] == "TensorrtExecutionProvider"


def test_fallback_is_recorded(real_ort, model_file):
    engine = OrtEngine(model_file, device="cuda:0", provider="tensorrt", allow_cpu_fallback=True)
    engine.load()
    info = engine.info()
    assert info.runtime["providers"] == ["CPUExecutionProvider"]
    assert "requested TensorrtExecutionProvider" in info.runtime["fallback"]
    assert engine.options()["allow_cpu_fallback"] is True
    engine.close()


def test_cpu_threads_are_explicit(model_file):
    with OrtEngine(model_file, threads=3) as engine:
        assert engine.precision == "fp32" and engine.input_size == 32
        assert engine._session.get_session_options().intra_op_num_threads == 3


def test_missing_onnxruntime_names_extra(monkeypatch, model_file):
    # None in sys.modules makes `import onnxruntime` fail as if it were not installed; the message is the real one.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"onnxruntime is needed .* pip install 'lib-deepfake\[cpu\]'"):
        OrtEngine(model_file).load()


def test_cpu_provider_with_cuda_device_rejected(model_file):
    with pytest.raises(LibDeepfakeError, match="use --device cpu"):
        OrtEngine(model_file, device="cuda:0", provider="cpu")
