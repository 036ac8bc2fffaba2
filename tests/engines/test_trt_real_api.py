"""The TensorRT engine's runtime calls, checked against NVIDIA's own classes (``tensorrt_lean_bindings``, TensorRT
11.x), which import on a CPU machine: a misspelt call or an API removed in TensorRT 11 fails here, in CI.

Three checks: (1) every TensorRT name used in engines/trt_engine.py (and engines/_cuda_graphs.py, which uses none)
exists on the real module/classes, found by reading the source; (2) the hand-written stub's runtime half
(typings/tensorrt.pyi, what mypy checks the code against) matches the real classes: members, parameter names and
enum values; (3) the engine's loading path with the real module, up to deserialising (which needs a GPU).

The builder classes exist only in the full bindings, which need TensorRT's libraries and cannot be installed
here; they are held to the documented API instead (tests/export/test_trt_build_fake.py).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch
from tests.engines._fake_trt import FakeCudaEngine
from tests.engines._trt_reference import LEAN, Checked, requires_lean, signatures, stub_classes

from lib_deepfake.engines import _trt_api
from lib_deepfake.engines.trt_engine import TrtEngine
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError
from lib_deepfake.manifest import Manifest, contract_io

pytestmark = requires_lean

ROOT = Path(__file__).resolve().parents[2]
ENGINE_SOURCES = ["src/lib_deepfake/engines/trt_engine.py", "src/lib_deepfake/engines/_cuda_graphs.py"]
# Variables in the engine's source that hold TensorRT objects, and their classes.
HOLDERS = {"engine": "ICudaEngine", "_engine": "ICudaEngine", "context": "IExecutionContext",
           "ctx": "IExecutionContext", "runtime": "Runtime", "_runtime": "Runtime"}  # fmt: skip
RUNTIME_CLASSES = ("Logger", "Runtime", "ICudaEngine", "IExecutionContext", "Dims", "ITimingCache")
ENUMS = ("DataType", "TensorIOMode", "BuilderFlag", "MemoryPoolType")


def _holder(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def engine_uses() -> dict[str, set[str]]:
    """``{"module": {"Logger.WARNING", ...}, "ICudaEngine": {...}, ...}``: the TensorRT names the source uses."""
    uses: dict[str, set[str]] = {}
    for rel in ENGINE_SOURCES:
        tree = ast.parse((ROOT / rel).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            if isinstance(node.value, ast.Name) and node.value.id == "trt":
                uses.setdefault("module", set()).add(node.attr)
            elif (isinstance(node.value, ast.Attribute) and isinstance(node.value.value, ast.Name)
                  and node.value.value.id == "trt"):  # fmt: skip
                uses.setdefault("module", set()).add(f"{node.value.attr}.{node.attr}")
            else:
                holder = _holder(node.value)
                if holder in HOLDERS:
                    uses.setdefault(HOLDERS[holder], set()).add(node.attr)
    return uses


def test_every_tensorrt_name_the_engine_uses_exists():
    uses = engine_uses()
    # The reading itself must see the engine's calls, or this test checks nothing.
    assert {"execute_async_v3", "set_tensor_address", "set_input_shape"} <= uses["IExecutionContext"]
    assert {"get_tensor_profile_shape", "create_execution_context", "num_io_tensors"} <= uses["ICudaEngine"]
    assert {"deserialize_cuda_engine", "engine_host_code_allowed"} <= uses["Runtime"]
    assert {"Logger", "Runtime", "TensorIOMode.INPUT", "Logger.WARNING"} <= uses["module"]
    missing = []
    for name in sorted(uses["module"]):
        obj = LEAN
        for part in name.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append(f"tensorrt.{name}")
    for cls, members in uses.items():
        if cls != "module":
            missing += [f"{cls}.{m}" for m in sorted(members) if inspect.getattr_static(getattr(LEAN, cls), m, None)
                        is None and m not in ("api", "fake")]  # fmt: skip
    assert not missing, f"not in TensorRT {LEAN.__version__}: {missing}"


def test_dtype_names_the_engine_maps_exist():
    from lib_deepfake.engines.trt_engine import TRT_TO_TORCH

    assert set(TRT_TO_TORCH) <= set(LEAN.DataType.__members__)


@pytest.mark.parametrize("cls", RUNTIME_CLASSES)
def test_stub_runtime_classes_match_the_real_ones(cls):
    real = getattr(LEAN, cls)
    for member, documented in stub_classes()[cls].items():
        if member == "__iter__":  # spelt out for mypy; TensorRT iterates via the sequence protocol
            assert hasattr(real, "__getitem__") and hasattr(real, "__len__"), cls
            continue
        found = inspect.getattr_static(real, member, None)
        assert found is not None, f"typings/tensorrt.pyi has {cls}.{member}; TensorRT {LEAN.__version__} does not"
        if documented == "attribute":
            assert not callable(found) or isinstance(found, property), f"{cls}.{member} is a method in TensorRT"
            continue
        names = list(documented.parameters)
        overloads = [list(sig.parameters) for sig, _ in signatures(getattr(real, member))]
        if member.startswith("__"):  # operators are called positionally: only the arity matters
            names, overloads = [len(names)], [[len(o)] for o in overloads]
        # The stub may leave out trailing optional parameters (e.g. create_execution_context's strategy).
        assert any(o[: len(names)] == names for o in overloads), f"{cls}.{member}{names} vs TensorRT {overloads}"


@pytest.mark.parametrize("enum", ENUMS)
def test_stub_enums_have_the_real_values(enum):
    tree = ast.parse(Path(ROOT / "typings" / "tensorrt.pyi").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == enum)
    values = {t.targets[0].id: t.value.value for t in node.body if isinstance(t, ast.Assign)}
    real = {k: int(v) for k, v in getattr(LEAN, enum).__members__.items()}
    assert values and {k: real.get(k) for k in values} == values


def test_stub_logger_severities_are_real():
    assert int(LEAN.Logger.WARNING) == 2 and {"ERROR", "WARNING", "INFO"} <= set(LEAN.ILogger.Severity.__members__)


def test_version_compatibility_flags_exist():
    assert {"VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"} <= set(LEAN.BuilderFlag.__members__)
    assert "FP16" not in LEAN.BuilderFlag.__members__  # removed in 11: precision.py reaches it only on 10


# ---- the checker itself can fail --------------------------------------------------------------------------------


def test_checker_catches_removed_and_misspelt_calls():
    engine = FakeCudaEngine().api()
    assert isinstance(engine, Checked)
    with pytest.raises(AssertionError, match="get_binding_index does not exist"):
        engine.get_binding_index("faces")  # TensorRT 8 API, removed in 10
    with pytest.raises(AssertionError, match="does not exist"):
        engine.create_execution_context_without_device_memory()  # removed in 11
    ctx = engine.create_execution_context()
    with pytest.raises(AssertionError, match="matches no TensorRT overload"):
        ctx.set_tensor_address("faces", 3.5)  # an address must be an integer (data_ptr(), not a tensor or float)
    with pytest.raises(AssertionError, match="matches no TensorRT overload"):
        ctx.execute_async_v3()
    with pytest.raises(AssertionError, match="matches no TensorRT overload"):
        engine.get_tensor_profile_shape("faces")


# ---- the loading path with the real module (deserialising needs a GPU) --------------------------------------


@pytest.fixture
def real_binding(monkeypatch):
    """_trt_api bound from scratch: only the lean bindings are installed here, so that is what it must pick."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("the full tensorrt is installed here: the engine would (rightly) use it")
    monkeypatch.setattr(_trt_api, "trt", None)


def _plan(tmp_path, **extra):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"NOT-A-REAL-PLAN")
    built = {"tensorrt": LEAN.__version__, "compute_capability": "9.0", "gpu_name": "H200", **extra}
    Manifest(format="tensorrt", precision="fp16", io=contract_io(8), model={"preprocessing": {"input_size": 8}},
             extra=built).save(plan)  # fmt: skip
    return plan


def test_engine_binds_the_lean_runtime(real_binding, tmp_path):
    assert _trt_api.installed_runtime() == "tensorrt_lean_bindings"
    assert TrtEngine.available("cuda:0").reason.startswith(("tensorrt_lean_bindings", "torch sees"))
    with pytest.raises(LibDeepfakeError, match="torch sees no CUDA device"):
        TrtEngine(_plan(tmp_path, version_compatible=True)).load()  # stops before TensorRT's Runtime (no driver)
    assert _trt_api.trt is LEAN and _trt_api.runtime_kind(_trt_api.trt) == "lean"


def _pretend_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: None)
    monkeypatch.setattr("lib_deepfake.engines.trt_engine.present_gpu",
                        lambda device: {"gpu_name": "H200", "compute_capability": "9.0"})  # fmt: skip


def test_real_lean_runtime_refuses_a_plain_plan(real_binding, tmp_path, monkeypatch):
    _pretend_gpu(monkeypatch)
    with pytest.raises(ArtifactMismatchError, match=f"tensorrt_lean_bindings {LEAN.__version__}.*--version-compat"):
        TrtEngine(_plan(tmp_path)).load()


def test_real_lean_module_loads_a_version_compatible_plan_up_to_deserialising(real_binding, tmp_path, monkeypatch):
    """Everything but deserialising runs on the real module: its Logger and enums; the Runtime (which needs a
    driver) is a fake checked against the real Runtime class."""
    from tests.engines._fake_trt import make_fake_trt

    _pretend_gpu(monkeypatch)
    fake = make_fake_trt(LEAN.__version__, lean=True, engine=FakeCudaEngine())
    monkeypatch.setattr(LEAN, "Runtime", fake.Runtime)
    with TrtEngine(_plan(tmp_path, version_compatible=True)) as engine:
        info = engine.info().runtime
        assert info["runtime"] == "lean" and info["tensorrt"] == LEAN.__version__ and info["profile"] == [1, 2, 3]
    assert fake.calls == [("deserialize_cuda_engine", len(b"NOT-A-REAL-PLAN"), True)]


# ---- on a GPU with both TensorRTs: the lean runtime runs a version-compatible plan ----------------------------


@pytest.mark.gpu
@pytest.mark.trt
def test_lean_runtime_runs_a_version_compatible_plan_on_gpu(tmp_path):
    """Build a version-compatible FP32 plan with the full TensorRT, run it in a process where only the lean runtime
    can be imported, and compare with the full runtime. Needs tensorrt and tensorrt_lean_bindings on a GPU."""
    import json
    import subprocess
    import sys

    from tests.engines._artifacts import contract_onnx, tiny_checkpoint

    from lib_deepfake.export.trt_build import TrtBuildConfig, build_engine
    from lib_deepfake.model.testing import random_faces

    onnx = contract_onnx(tiny_checkpoint(tmp_path / "t.pth"), tmp_path / "t.onnx")
    plan = build_engine(onnx, tmp_path / "t.plan", TrtBuildConfig(1, 4, 8, precision="fp32", version_compatible=True))
    assert plan.manifest.extra["version_compatible"] is True
    faces = random_faces(6, 32)
    torch.save(faces, tmp_path / "faces.pt")
    with TrtEngine(plan.path) as full:
        want = full.infer(faces.cuda()).cpu()
    script = (
        "import sys, json, torch; sys.modules['tensorrt'] = None\n"  # the full bindings cannot be imported
        "from lib_deepfake.engines.trt_engine import TrtEngine\n"
        f"faces = torch.load({str(tmp_path / 'faces.pt')!r}, weights_only=True).cuda()\n"
        f"with TrtEngine({str(plan.path)!r}) as e:\n"
        "    out = e.infer(faces).cpu().tolist(); kind = e.info().runtime['runtime']\n"
        "print(json.dumps({'runtime': kind, 'out': out}))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["runtime"] == "lean"
    torch.testing.assert_close(torch.tensor(result["out"]), want, atol=1e-3, rtol=0)
