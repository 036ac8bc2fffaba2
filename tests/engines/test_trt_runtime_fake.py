"""TensorRT engine logic on CPU: plan/machine compatibility (versions, GPUs, version-compatible plans and the lean
runtime), batch splitting and padding, I/O binding through a fake whose execution context really reads and writes
the bound memory and whose every call is checked against NVIDIA's lean bindings (tests/engines/_trt_reference.py).
No GPU needed."""

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
    runner = PlanRunner(engine.api(), engine.create_execution_context(), torch.device("cpu"))
    assert (runner.min_batch, runner.opt_batch, runner.max_batch, runner.input_size) == (1, 2, 3, 8)
    faces = _faces(7)
    out = runner.run(faces, stream_handle=0)
    assert out.dtype == torch.float32 and out.shape == (7,)
    assert torch.allclose(out, torch.from_numpy(expected_output(faces.numpy())), atol=1e-6)
    assert [s[0] for s in engine.contexts[0].executed] == [3, 3, 1]


def test_runner_pads_below_profile_min(fake_trt):
    fake_trt()
    engine = FakeCudaEngine(profile=(4, 4, 8))
    runner = PlanRunner(engine.api(), engine.create_execution_context(), torch.device("cpu"))
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
        PlanRunner(engine.api(), engine.create_execution_context(), torch.device("cpu"))


def test_rejected_shape_is_a_contract_error(fake_trt):
    fake_trt()
    engine = FakeCudaEngine(profile=(1, 2, 3))
    runner = PlanRunner(engine.api(), engine.create_execution_context(), torch.device("cpu"))
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
    monkeypatch.setattr(TrtEngine, "_present_machine", lambda self: {"runtime": "full", **present})
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: None)


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


def _hide_tensorrt(monkeypatch, *, lean: bool):
    """Pretend the full bindings are missing (and the lean runtime too unless ``lean``)."""

    def require(name, **kw):
        raise MissingDependencyError(f"{name} is needed for {kw['purpose']}: pip install 'lib-deepfake[trt]'")

    monkeypatch.setattr(_trt_api, "trt", None)
    monkeypatch.setattr(_trt_api, "require", require if not lean else (lambda name, **kw: (
        require(name, **kw) if name == "tensorrt" else make_fake_trt("11.4.0.106", lean=True))))  # fmt: skip
    monkeypatch.setattr(_trt_api, "is_installed", lambda name: lean and name == "tensorrt_lean_bindings")


def test_missing_tensorrt_names_both_extras(tmp_path, monkeypatch):
    _hide_tensorrt(monkeypatch, lean=False)
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    with pytest.raises(MissingDependencyError, match=r"lib-deepfake\[trt\].*lib-deepfake\[trt-lean\]"):
        TrtEngine(plan).load()
    assert not TrtEngine.available("cuda:0")


def test_runtime_falls_back_to_the_lean_bindings_but_the_builder_does_not(monkeypatch):
    _hide_tensorrt(monkeypatch, lean=True)
    with pytest.raises(MissingDependencyError, match=r"lib-deepfake\[trt\]"):
        _trt_api.bind("building TensorRT plans")
    module = _trt_api.bind("running TensorRT plans", builder=False)
    assert module.__name__ == "tensorrt_lean_bindings" and _trt_api.runtime_kind(module) == "lean"
    # Bound once: later runtime binds reuse it, a builder bind still asks for the full bindings.
    assert _trt_api.bind("again", builder=False) is module
    with pytest.raises(MissingDependencyError):
        _trt_api.bind("building TensorRT plans")


# ---- version-compatible plans and the lean runtime ----------------------------------------------------------

VC = {**BUILT, "tensorrt": "11.2.0.5", "version_compatible": True}
LEAN_PRESENT = {"tensorrt": "11.4.0.106", "runtime": "lean", "compute_capability": "9.0", "gpu_name": "H200"}


def test_lean_runtime_refuses_plans_not_built_version_compatible():
    with pytest.raises(ArtifactMismatchError, match="not built version-compatible.*--version-compatible"):
        check_plan_compat({**BUILT, "tensorrt": "11.4.0.106"}, LEAN_PRESENT, "m.plan")
    check_plan_compat(VC, LEAN_PRESENT, "m.plan")


@pytest.mark.parametrize(("built", "present", "match"), [
    ({**VC, "tensorrt": "11.5.0.1"}, "11.4.0.106", "newer than this machine's 11.4.0.106"),
    ({**VC, "tensorrt": "10.13.0.35"}, "11.4.0.106", None),  # 10.x version-compatible plans run on 11.x
    ({**VC, "tensorrt": "11.4.0.106"}, "10.13.0.35", "newer"),
    ({**VC, "exclude_lean_runtime": True}, "11.4.0.106", "exactly that version"),
    ({**VC, "exclude_lean_runtime": True, "tensorrt": "11.4.0.106"}, "11.4.0.106", None),
    ({**VC, "compute_capability": "8.9"}, "11.4.0.106", "compute capability 8.9"),  # not hardware-compatible
])  # fmt: skip
def test_version_compatible_rules(built, present, match, caplog):
    where = {**LEAN_PRESENT, "tensorrt": present, "runtime": "full"}
    if match is None:
        check_plan_compat(built, where, "m.plan")
        assert "exact version" not in caplog.text
    else:
        with pytest.raises(ArtifactMismatchError, match=match):
            check_plan_compat(built, where, "m.plan")


def _install_lean(monkeypatch, engine):
    trt = make_fake_trt("11.4.0.106", lean=True, engine=engine)
    monkeypatch.setattr(_trt_api, "trt", trt)
    _patch_gpu(monkeypatch, LEAN_PRESENT)
    return trt


def test_lean_engine_loads_a_version_compatible_plan(tmp_path, monkeypatch):
    trt = _install_lean(monkeypatch, FakeCudaEngine())
    engine = TrtEngine(_plan_with_manifest(tmp_path, VC))
    engine.load()
    assert engine.input_size == 8 and engine.info().runtime["runtime"] == "lean"
    # The plan carries its own lean runtime (host code): allowed because our manifest says we built it so.
    assert ("deserialize_cuda_engine", len(b"FAKE-PLAN"), True) in trt.calls
    engine._close()


def test_lean_engine_refuses_a_plain_plan_before_deserializing(tmp_path, monkeypatch):
    trt = _install_lean(monkeypatch, FakeCudaEngine())
    with pytest.raises(ArtifactMismatchError, match="lean runtime.*--version-compatible"):
        TrtEngine(_plan_with_manifest(tmp_path, {**BUILT, "tensorrt": "11.4.0.106"})).load()
    assert not any(c[0] == "deserialize_cuda_engine" for c in trt.calls)


def test_lean_engine_without_manifest_says_what_to_rebuild(tmp_path, monkeypatch, caplog):
    trt = _install_lean(monkeypatch, None)
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"FAKE-PLAN")
    with pytest.raises(ArtifactMismatchError, match="lean runtime.*not version-compatible.*--version-compatible"):
        TrtEngine(plan).load()
    assert "no manifest" in caplog.text
    assert ("deserialize_cuda_engine", len(b"FAKE-PLAN"), False) in trt.calls


def test_excluded_lean_runtime_needs_no_host_code(tmp_path, monkeypatch):
    trt = _install_lean(monkeypatch, FakeCudaEngine())
    built = {**VC, "tensorrt": "11.4.0.106", "exclude_lean_runtime": True}
    with TrtEngine(_plan_with_manifest(tmp_path, built)):
        pass
    assert ("deserialize_cuda_engine", len(b"FAKE-PLAN"), False) in trt.calls


def test_graph_step_uses_one_context_per_batch_size(tmp_path, monkeypatch, fake_trt):
    """The CUDA-graph path's TensorRT calls (new context per captured batch size), run on CPU buffers."""
    import types

    fake_trt()
    raw = FakeCudaEngine(profile=(1, 2, 4))
    engine = TrtEngine(tmp_path / "m.plan")
    engine._engine = raw.api()
    engine.device = torch.device("cpu")  # buffers in host memory, which the fake context reads and writes
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: types.SimpleNamespace(cuda_stream=7))
    for n in (2, 3, 2):
        faces = _faces(n, seed=n)
        out = engine._graph_step(faces)
        assert torch.allclose(out, torch.from_numpy(expected_output(faces.numpy())), atol=1e-6)
    assert sorted(engine._graph_runners) == [2, 3] and len(raw.contexts) == 2
