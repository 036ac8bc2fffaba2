"""The engine table: names, artifact suffixes, lazy imports, errors for typos and unknown formats. CPU only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lib_deepfake.engines import create_engine, engine_class, engine_for_artifact, list_engines, suffix_table
from lib_deepfake.engines.registry import _ENGINES, register_engine, unregister_engine
from lib_deepfake.errors import LibDeepfakeError


def test_table_names_and_suffixes():
    assert list_engines() == ["torch", "onnxrt", "trt", "openvino", "aoti"]
    assert suffix_table() == {".pth": "torch", ".pt": "torch", ".onnx": "onnxrt", ".plan": "trt", ".engine": "trt",
                              ".xml": "openvino", ".pt2": "aoti"}  # fmt: skip


# ids avoid the bare word "trt": tests/conftest.py skips items whose keywords include a marker name.
@pytest.mark.parametrize(
    "name",
    ["torch", "onnxrt", "trt", "openvino", "aoti"],
    ids=["engine-torch", "engine-onnxrt", "engine-tensorrt", "engine-openvino", "engine-aoti"],
)
def test_class_agrees_with_table(name):
    cls = engine_class(name)
    assert cls.name == name
    assert cls.artifact_suffixes == _ENGINES[name].suffixes


@pytest.mark.parametrize(("path", "name"), [("m.pth", "torch"), ("a/m.PT", "torch"), ("m.onnx", "onnxrt"),
                                            ("m.plan", "trt"), ("m.engine", "trt"), ("m.xml", "openvino"),
                                            ("m.pt2", "aoti")])  # fmt: skip
def test_engine_for_artifact(path, name):
    assert engine_for_artifact(Path(path)) == name


def test_unknown_suffix_lists_known_ones():
    with pytest.raises(LibDeepfakeError, match=r"\.onnx \(onnxrt\)"):
        engine_for_artifact("model.tflite")


def test_typo_suggests_name(tmp_path):
    with pytest.raises(LibDeepfakeError, match="did you mean 'onnxrt'"):
        create_engine("onnxrn", tmp_path / "m.onnx")


def test_name_without_artifact():
    with pytest.raises(LibDeepfakeError, match="needs an artifact"):
        create_engine("torch")


def test_create_engine_is_cheap_and_drops_none(tmp_path):
    # Construction must not touch the file (it does not exist) nor import onnxruntime.
    engine = create_engine(tmp_path / "missing.onnx", device="cpu", threads=None, provider=None)
    assert engine.name == "onnxrt" and not engine.loaded
    with pytest.raises(LibDeepfakeError, match="artifact not found"):
        engine.load()


def test_register_duplicates_raise():
    with pytest.raises(LibDeepfakeError, match="already registered"):
        register_engine("torch", "x:Y", (".x",))
    with pytest.raises(LibDeepfakeError, match="suffix"):
        register_engine("other", "x:Y", (".onnx",))
    register_engine("fake-test", "x:Y", (".fake",))
    try:
        assert engine_for_artifact("a.fake") == "fake-test"
    finally:
        unregister_engine("fake-test")


def test_trt_unavailable_names_extra():
    status = engine_class("trt").available("cuda")
    if status.ok:
        pytest.skip("TensorRT is usable here")
    assert "trt" in status.reason or "CUDA" in status.reason


def test_cli_engine_names_match_table():
    from lib_deepfake.cli import bench_engines

    assert list(bench_engines.ENGINE_NAMES) == list_engines()


def test_imports_stay_light():
    code = (
        "import sys, lib_deepfake.engines, lib_deepfake.engines.registry, lib_deepfake.cli.bench_engines, "
        "lib_deepfake.cli.export_trt, lib_deepfake.engines.trt_engine, lib_deepfake.engines.ort_engine, "
        "lib_deepfake.export.trt_build, lib_deepfake.export.verify, lib_deepfake.bench.runner\n"
        "heavy = [m for m in ('onnxruntime', 'tensorrt', 'nvidia.dali', 'onnx', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
