"""TensorRT engine logic on CPU: plan/machine compatibility, batch splitting and padding, I/O binding through a fake
``tensorrt`` whose execution context really reads and writes the bound memory. No TensorRT or GPU needed."""

from __future__ import annotations

import pytest
import torch
from tests.engines._fake_trt import FakeCudaEngine, expected_output, make_fake_trt

from lib_deepfake.engines import _trt_api
from lib_deepfake.engines.trt_engine import PlanRunner, TrtEngine, check_plan_compat, split_batch, trt_major
from lib_deepfake.errors import ArtifactMismatchError, ContractError, LibDeepfakeError, MissingDependencyError
from lib_deepfake.manifest import Manifest, contract_io


@pytest.fixture
def fake_trt(monkeypatch):
    def install(**kwargs):
        module = make_fake_trt(**kwargs)
        monkeypatch.setattr(_trt_api, "trt", module)
        return module

    return install


def test_trt_major():
    assert trt_major("10.13.0.35") == 10 and trt_major("11.4.0.106") == 11
    with pytest.raises(LibDeepfakeError):
        trt_major("ten")


def test_split_batch():
    assert split_batch(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert split_batch(3, 3) == [(0, 3)]
    assert split_batch(1, 256) == [(0, 1)]
    with pytest.raises(ValueError):
        split_batch(0, 3)


BUILT = {"tensorrt": "10.13.0.35", "compute_capability": "9.0", "gpu_name": "NVIDIA H100 80GB HBM3"}


def test_compat_accepts_same_major_and_gpu(caplog):
    check_plan_compat(BUILT, {**BUILT, "gpu_name": "NVIDIA H200"}, "m.plan")  # H100 and H200 are both sm_90
    check_plan_compat(BUILT, {**BUILT, "tensorrt": "10.14.1"}, "m.plan")
    assert "exact version" in caplog.text


def test_compat_refuses_other_major():
    with pytest.raises(ArtifactMismatchError, match=r"built with TensorRT 10\.13\.0\.35, this machine has TensorRT 11"):
        check_plan_compat(BUILT, {**BUILT, "tensorrt": "11.4.0.106"}, "m.plan")


def test_compat_refuses_other_gpu():
    present = {"tensorrt": "10.13.0.35", "compute_capability": "8.9", "gpu_name": "NVIDIA L4"}
    with pytest.raises(ArtifactMismatchError, match=r"compute capability 9\.0 .*this GPU is 8\.9 \(NVIDIA L4\)"):
        check_plan_compat(BUILT, present, "m.plan")


def _faces(n, size=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), generator=gen, dtype=torch.uint8)


def test_runner_splits_large_batches(fake_trt):
    fake_trt()
    engine = FakeCudaEngine(profile=(1, 2, 3))
    runner = PlanRunner(engine, engine.create_execution_context(), torch.device("cpu"))
    assert (runner.min_batch, runner.opt_batch, runner.max_batch, runner.input_size) == (1, 2, 3, 8)
    faces = _faces(7)
    out = runner.run(faces, stream_handle=0)
    assert out.dtype == torch.float32 and out.shape == (7,)
    assert torch.allclose(out, torch.from_numpy(expected_output(faces.numpy())), atol=1e-6)
    assert [s[0] for s in engine.contexts[0].executed] == [3, 3, 1]


def test_runner_pads_below_profile_min(fake_trt):
    fake_trt()
    engine = FakeCudaEngine(profile=(4, 4, 8))
    runner = PlanRunner(engine, engine.create_execution_context(), torch.device("cpu"))
    faces = _faces(2, seed=1)
    out = runner.run(faces, stream_handle=0)
    assert out.shape == (2,)
    assert torch.allclose(out, torch.from_numpy(expected_output(faces.numpy())), atol=1e-6)
    assert engine.contexts[0].executed == [(4, 8, 8, 3)]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"in_dtype": "FLOAT"}, "FLOAT"),
    ({"out_dtype": "HALF"}, "HALF"),
    ({"n_outputs": 2}, "one input"),
])  # fmt: skip
def test_runner_refuses_non_contract_plans(fake_trt, kwargs, match):
    fake_trt()
    engine = FakeCudaEngine(**kwargs)
    with pytest.raises(ArtifactMismatchError, match=match):
        PlanRunner(engine, engine.create_execution_context(), torch.device("cpu"))


def test_rejected_shape_is_a_contract_error(fake_trt):
    fake_trt()
    engine = FakeCudaEngine(profile=(1, 2, 3))
    runner = PlanRunner(engine, engine.create_execution_context(), torch.device("cpu"))
    runner.max_batch = 5  # pretend the profile allowed more than the context does
    with pytest.raises(ContractError, match="rejected input shape"):
        runner.run(_faces(5), 0)


def test_engine_refuses_cpu_device(tmp_path):
    with pytest.raises(LibDeepfakeError, match="CUDA only"):
        TrtEngine(tmp_path / "m.plan", device="cpu")


def _plan_with_manifest(tmp_path, built):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"FAKE-PLAN")
    Manifest(format="tensorrt", precision="fp16", io=contract_io(8), model={"preprocessing": {"input_size": 8}},
             extra=built).save(plan)  # fmt: skip
    return plan


def _patch_gpu(monkeypatch, present):
    monkeypatch.setattr("lib_deepfake.engines.trt_engine.require_cuda", lambda device, what: None)
    monkeypatch.setattr(TrtEngine, "_present_machine", lambda self: present)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)


def test_engine_refuses_mismatch_before_deserializing(tmp_path, monkeypatch, fake_trt):
    trt = fake_trt(version="11.4.0.106", engine=FakeCudaEngine())
    _patch_gpu(monkeypatch, {"tensorrt": "11.4.0.106", "compute_capability": "9.0", "gpu_name": "H200"})
    plan = _plan_with_manifest(tmp_path, BUILT)
    with pytest.raises(ArtifactMismatchError, match="Rebuild it on this machine"):
        TrtEngine(plan).load()
    assert not any(c[0] == "deserialize_cuda_engine" for c in trt.calls)


def test_engine_reports_failed_deserialization(tmp_path, monkeypatch, fake_trt):
    fake_trt(engine=None)
    _patch_gpu(monkeypatch, dict(BUILT))
    with pytest.raises(ArtifactMismatchError, match="could not deserialize"):
        TrtEngine(_plan_with_manifest(tmp_path, BUILT)).load()


def test_engine_checks_manifest_size(tmp_path, monkeypatch, fake_trt):
    fake_trt(engine=FakeCudaEngine(size=16))
    _patch_gpu(monkeypatch, dict(BUILT))
    with pytest.raises(ArtifactMismatchError, match="16px crops but its manifest says 8"):
        TrtEngine(_plan_with_manifest(tmp_path, BUILT)).load()


def test_missing_tensorrt_names_extra(tmp_path, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    monkeypatch.setattr(_trt_api, "trt", None)
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    with pytest.raises(MissingDependencyError, match=r"lib-deepfake\[trt\]"):
        TrtEngine(plan).load()
