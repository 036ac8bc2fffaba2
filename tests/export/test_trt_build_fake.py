"""TensorRT build logic with a fake ``tensorrt``: the per-major precision decision, builder calls, profile, timing
cache (and a cache TensorRT refuses), version-compatible plans, manifest, and refusals. The fake's enums are
NVIDIA's (lean bindings) and its builder objects answer only to the documented API (typings/tensorrt.pyi). The real
build is tests/engines/test_engine_contract.py's trt case (markers gpu, trt).
"""

from __future__ import annotations

import json

import pytest
import torch
from tests.engines._artifacts import contract_onnx, tiny_checkpoint
from tests.engines._fake_trt import make_fake_trt

from lib_deepfake.engines import _trt_api
from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.export.precision import check_onnx_precision, plan_precision
from lib_deepfake.export.trt_build import TrtBuildConfig, build_engine, build_serialized_plan, compatibility_flags


def test_precision_trt10():
    fp16 = plan_precision(10, "fp16")
    assert fp16.onnx_precision == "fp32" and fp16.builder_flags == ("FP16",) and not fp16.strongly_typed
    assert fp16.accepts("fp16") and fp16.accepts("fp32")
    fp32 = plan_precision(10, "fp32")
    assert fp32.builder_flags == () and not fp32.accepts("fp16")


def test_precision_trt11_is_strongly_typed():
    fp16 = plan_precision(11, "fp16")
    assert fp16.onnx_precision == "fp16" and fp16.builder_flags == () and fp16.strongly_typed
    assert fp16.network_flags == ()  # STRONGLY_TYPED is deprecated (always on) in 11
    assert not fp16.accepts("fp32")


@pytest.mark.parametrize("major", [8, 9, 12])
def test_unknown_majors_are_refused(major):
    with pytest.raises(LibDeepfakeError, match=f"TensorRT {major}.x is not supported"):
        plan_precision(major, "fp16")


def test_bad_precision():
    with pytest.raises(LibDeepfakeError, match="precision"):
        plan_precision(10, "int8")


def test_onnx_precision_mismatch_names_the_export():
    with pytest.raises(LibDeepfakeError, match="lib-export to-onnx --fp16"):
        check_onnx_precision(plan_precision(11, "fp16"), "fp32", "m.onnx")
    check_onnx_precision(plan_precision(11, "fp16"), None, "m.onnx")  # unknown: allowed (warned by the caller)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"min_batch": 8, "opt_batch": 4}, "min <= opt <= max"),
    ({"builder_opt_level": 6}, "0..5"),
    ({"workspace_gib": 0}, "positive"),
])  # fmt: skip
def test_build_config_validation(kwargs, match):
    with pytest.raises(LibDeepfakeError, match=match):
        TrtBuildConfig(**kwargs)


def test_profile_shapes():
    assert TrtBuildConfig(1, 64, 256).profile(224) == ((1, 224, 224, 3), (64, 224, 224, 3), (256, 224, 224, 3))


@pytest.fixture
def fake(monkeypatch):
    def install(**kwargs):
        module = make_fake_trt(**kwargs)
        monkeypatch.setattr(_trt_api, "trt", module)
        return module

    return install


def test_builder_calls_trt10_fp16(fake, tmp_path):
    trt = fake(version="10.13.0.35")
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"old")
    cfg = TrtBuildConfig(2, 16, 32, workspace_gib=0.5, timing_cache=cache, builder_opt_level=5)
    data, facts = build_serialized_plan(tmp_path / "m.onnx", plan_precision(10, "fp16"), cfg, 64)
    assert data == b"FAKE-PLAN" and facts["builder_flags"] == ["FP16"]
    calls = trt.calls
    assert ("create_network", 0) in calls  # weakly typed: the FP16 flag means something
    assert ("parse_from_file", str(tmp_path / "m.onnx")) in calls
    assert ("set_memory_pool_limit", "WORKSPACE", 1 << 29) in calls
    assert ("builder_optimization_level", 5) in calls
    assert ("set_flag", "FP16") in calls
    assert ("set_shape", "faces", (2, 64, 64, 3), (16, 64, 64, 3), (32, 64, 64, 3)) in calls
    assert ("create_timing_cache", b"old") in calls and ("set_timing_cache", False) in calls
    assert cache.read_bytes() == b"old+timings"
    assert facts["timing_cache"] == {"path": str(cache), "status": "reused", "bytes_in": 3, "bytes_out": 11}
    assert facts["version_compatible"] is False


@pytest.mark.parametrize("how", ["refuse_cache", "cache_unreadable"])
def test_refused_timing_cache_builds_with_a_fresh_one(fake, tmp_path, caplog, how):
    """A cache from another GPU/TensorRT: set_timing_cache returns False (or create_timing_cache None). The build
    goes on with an empty cache, says so, keeps the old file aside and writes the new cache."""
    trt = fake(version="11.4.0.106", **{how: True})
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"other-gpu")
    data, facts = build_serialized_plan(
        tmp_path / "m.onnx", plan_precision(11, "fp16"), TrtBuildConfig(timing_cache=cache), 32
    )
    assert data == b"FAKE-PLAN"
    assert facts["timing_cache"]["status"] == "rejected" and facts["timing_cache"]["bytes_in"] == 9
    assert "refused the timing cache" in caplog.text and "fresh cache" in caplog.text
    assert ("create_timing_cache", b"") in trt.calls  # the fresh one
    assert trt.calls.index(("create_timing_cache", b"")) < trt.calls.index(("build_serialized_network",))
    assert (tmp_path / "timing.cache.rejected").read_bytes() == b"other-gpu"
    assert cache.read_bytes() == b"+timings"


def test_no_timing_cache_path_uses_one_in_memory(fake, tmp_path):
    trt = fake(version="11.4.0.106")
    _, facts = build_serialized_plan(tmp_path / "m.onnx", plan_precision(11, "fp16"), TrtBuildConfig(), 32)
    assert facts["timing_cache"] == {"path": None, "status": "memory", "bytes_in": 0}
    assert ("set_timing_cache", False) in trt.calls and not list(tmp_path.iterdir())


def test_version_compatible_flags(fake, tmp_path):
    trt = fake(version="11.4.0.106")
    cfg = TrtBuildConfig(version_compatible=True)
    assert compatibility_flags(cfg) == ("VERSION_COMPATIBLE",)
    _, facts = build_serialized_plan(tmp_path / "m.onnx", plan_precision(11, "fp16"), cfg, 32)
    assert ("set_flag", "VERSION_COMPATIBLE") in trt.calls and facts["version_compatible"] is True
    cfg = TrtBuildConfig(version_compatible=True, exclude_lean_runtime=True)
    _, facts = build_serialized_plan(tmp_path / "m.onnx", plan_precision(11, "fp16"), cfg, 32)
    assert facts["builder_flags"] == ["VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"] and facts["exclude_lean_runtime"]
    with pytest.raises(LibDeepfakeError, match="add --version-compatible"):
        TrtBuildConfig(exclude_lean_runtime=True)


def test_trt10_fp16_and_version_compatible(fake, tmp_path):
    trt = fake(version="10.13.0.35")
    _, facts = build_serialized_plan(tmp_path / "m.onnx", plan_precision(10, "fp16"),
                                     TrtBuildConfig(version_compatible=True), 32)  # fmt: skip
    assert facts["builder_flags"] == ["FP16", "VERSION_COMPATIBLE"]
    assert [c[1] for c in trt.calls if c[0] == "set_flag"] == ["FP16", "VERSION_COMPATIBLE"]


def test_fake_builder_follows_the_documented_api():
    """Every method of the fake builder objects has the documented parameter names (typings/tensorrt.pyi)."""
    import inspect

    from tests.engines._trt_reference import stub_classes

    stub = stub_classes()
    for name, cls in make_fake_trt("11.4.0.106").fakes.items():
        for member, value in vars(cls).items():
            private = member.startswith("_") and not (member == "__init__" and member in stub[name])
            if private or not callable(value) or member == "api":  # api(): the fake engine's test handle
                continue
            assert member in stub[name], f"{name}.{member} is not in the documented API"
            documented = list(stub[name][member].parameters)
            assert list(inspect.signature(value).parameters) == documented, f"{name}.{member}"


def test_builder_calls_trt11_fp16(fake, tmp_path):
    trt = fake(version="11.4.0.106")
    assert not hasattr(trt.BuilderFlag, "FP16")
    build_serialized_plan(tmp_path / "m.onnx", plan_precision(11, "fp16"), TrtBuildConfig(), 32)
    assert not [c for c in trt.calls if c[0] == "set_flag"]
    assert ("create_network", 0) in trt.calls


def test_parser_errors_are_reported(fake, tmp_path):
    fake(parse_ok=False)
    with pytest.raises(LibDeepfakeError, match="parser rejected m.onnx: Unsupported ONNX data type"):
        build_serialized_plan(tmp_path / "m.onnx", plan_precision(10, "fp16"), TrtBuildConfig(), 32)


def test_build_failure_is_reported(fake, tmp_path):
    fake(build_ok=False)
    with pytest.raises(LibDeepfakeError, match="failed to build"):
        build_serialized_plan(tmp_path / "m.onnx", plan_precision(10, "fp16"), TrtBuildConfig(), 32)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("trtbuild")
    return contract_onnx(tiny_checkpoint(root / "tiny.pth"), root / "tiny.onnx")


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    gpu = {"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    monkeypatch.setattr("lib_deepfake.engines.trt_engine.present_gpu", lambda device: gpu)


def test_build_engine_writes_plan_and_manifest(fake, fake_gpu, onnx_model, tmp_path):
    fake(version="10.13.0.35")
    out = tmp_path / "m.plan"
    result = build_engine(onnx_model, out, TrtBuildConfig(1, 8, 16))
    assert out.read_bytes() == b"FAKE-PLAN"
    manifest = json.loads((tmp_path / "m.plan.json").read_text())
    assert manifest["format"] == "tensorrt" and manifest["precision"] == "fp16"
    extra = manifest["extra"]
    assert extra["tensorrt"] == "10.13.0.35" and extra["compute_capability"] == "9.0"
    assert extra["gpu_name"] == "NVIDIA H100 80GB HBM3" and extra["profile"] == {"min": 1, "opt": 8, "max": 16}
    assert extra["onnx_precision"] == "fp32" and extra["builder_flags"] == ["FP16"]
    assert manifest["io"]["inputs"][0]["dtype"] == "uint8"
    assert result.manifest.input_size == 32
    assert extra["version_compatible"] is False and extra["timing_cache"]["status"] == "memory"


def test_build_engine_carries_the_model_card(fake, fake_gpu, onnx_model, tmp_path):
    """The plan's manifest copies the ONNX manifest's model card and default threshold; without one it says 0.5."""
    import shutil

    from lib_deepfake.manifest import Manifest
    from lib_deepfake.model.card import CARD_KEY, ModelCard, load_card
    from lib_deepfake.model.threshold import ThresholdChoice

    fake(version="10.13.0.35")
    card = ModelCard.build([], {"recipe": "default"}, threshold=ThresholdChoice(0.37, "youden", datasets=["d"]))
    onnx = tmp_path / "carded.onnx"
    shutil.copy(onnx_model, onnx)
    manifest = Manifest.load(onnx_model)
    manifest.extra[CARD_KEY] = card.to_dict()
    manifest.save(onnx)
    extra = build_engine(onnx, tmp_path / "m.plan", TrtBuildConfig(1, 8, 16)).manifest.extra
    assert extra[CARD_KEY] == card.to_dict() and extra["threshold"]["value"] == 0.37
    assert load_card(tmp_path / "m.plan") == card
    extra = build_engine(onnx_model, tmp_path / "bare.plan", TrtBuildConfig(1, 8, 16)).manifest.extra
    assert extra[CARD_KEY] is None and extra["threshold"]["value"] == 0.5
    assert extra["model_card_note"].startswith("no model card")


def test_build_engine_records_version_compatibility(fake, fake_gpu, onnx_model, tmp_path):
    fake(version="10.13.0.35")
    cache = tmp_path / "t.cache"
    result = build_engine(onnx_model, tmp_path / "m.plan", TrtBuildConfig(1, 8, 16, version_compatible=True,
                                                                          timing_cache=cache))  # fmt: skip
    extra = json.loads((tmp_path / "m.plan.json").read_text())["extra"]
    assert extra["version_compatible"] is True and extra["exclude_lean_runtime"] is False
    assert extra["build_config"]["version_compatible"] is True
    assert extra["timing_cache"]["status"] == "new" and cache.is_file()
    assert result.manifest.extra["builder_flags"] == ["FP16", "VERSION_COMPATIBLE"]


def test_build_engine_trt11_wants_fp16_onnx(fake, fake_gpu, onnx_model, tmp_path):
    fake(version="11.4.0.106")
    with pytest.raises(LibDeepfakeError, match="--fp16"):
        build_engine(onnx_model, tmp_path / "m.plan")
    assert not (tmp_path / "m.plan").exists()


def test_build_engine_unknown_major(fake, fake_gpu, onnx_model, tmp_path):
    fake(version="12.0.0")
    with pytest.raises(LibDeepfakeError, match="TensorRT 12.x is not supported"):
        build_engine(onnx_model, tmp_path / "m.plan")


def test_build_engine_needs_plan_suffix(tmp_path):
    with pytest.raises(LibDeepfakeError, match=r"\.plan or \.engine"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.trt")


def test_build_engine_needs_cuda(fake, onnx_model, tmp_path, monkeypatch):
    fake()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LibDeepfakeError, match="needs a CUDA device"):
        build_engine(onnx_model, tmp_path / "m.plan")


def test_cast_input_first_is_exact(onnx_model, tmp_path):
    import onnx
    import onnxruntime as ort

    from lib_deepfake.export.trt_build import cast_input_first
    from lib_deepfake.model.testing import random_faces

    model = onnx.load(str(onnx_model))
    first = [n.op_type for n in model.graph.node if "faces" in n.input]
    assert cast_input_first(model) is (first == ["Transpose"])
    consumer = [n for n in model.graph.node if "faces" in n.input]
    assert [n.op_type for n in consumer] == ["Cast"]
    assert cast_input_first(model) is False  # already cast first
    onnx.checker.check_model(model)
    fixed = tmp_path / "fixed.onnx"
    fixed.write_bytes(model.SerializeToString())
    faces = random_faces(3, 32).numpy()
    runs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"faces": faces})[0]
            for p in (onnx_model, fixed)]  # fmt: skip
    assert (runs[0] == runs[1]).all()


def _transpose_first(src, dst):
    """A contract graph whose uint8 input is transposed before the cast, as exports before the cast-first
    normaliser were (and as other exporters may write): undo what cast_input_first does."""
    import onnx

    model = onnx.load(str(src))
    graph = model.graph
    name = graph.input[0].name
    cast = next(n for n in graph.node if name in n.input)
    transpose = next(n for n in graph.node if cast.output[0] in n.input)
    assert (cast.op_type, transpose.op_type) == ("Cast", "Transpose")
    cast_out, transposed = cast.output[0], transpose.output[0]
    transpose.input[0], transpose.output[0] = name, cast_out
    cast.input[0], cast.output[0] = cast_out, transposed
    nodes = list(graph.node)
    ci, ti = nodes.index(cast), nodes.index(transpose)
    nodes[ci], nodes[ti] = nodes[ti], nodes[ci]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    dst.write_bytes(model.SerializeToString())
    return dst


def test_current_exports_need_no_rewrite(fake, fake_gpu, onnx_model, tmp_path):
    trt = fake(version="10.13.0.35")
    result = build_engine(onnx_model, tmp_path / "m.plan", TrtBuildConfig(1, 2, 4))
    parsed = [c[1] for c in trt.calls if c[0] == "parse_from_file"][0]
    assert parsed == str(onnx_model) and result.manifest.extra.get("parsed_onnx") in (None, parsed)


def test_build_engine_parses_the_cast_first_graph(fake, fake_gpu, onnx_model, tmp_path):
    import shutil

    legacy = _transpose_first(onnx_model, tmp_path / "legacy.onnx")
    shutil.copy(str(onnx_model) + ".json", str(legacy) + ".json")
    trt = fake(version="10.13.0.35")
    result = build_engine(legacy, tmp_path / "sub" / "m.plan", TrtBuildConfig(1, 2, 4))
    parsed = [c[1] for c in trt.calls if c[0] == "parse_from_file"][0]
    assert parsed.endswith("legacy.trt-input.onnx") and result.manifest.extra["parsed_onnx"] == parsed
