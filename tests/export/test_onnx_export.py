"""ONNX export: engine contract, single file, BN folded, checker-clean, ORT parity per family, FP16, manifest and
metadata, official checkpoints, and refusal paths. Needs onnx + onnxruntime (the [cpu,export] extras)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from lib_deepfake.errors import LibDeepfakeError, ParityError  # noqa: E402
from lib_deepfake.export import onnx_export  # noqa: E402
from lib_deepfake.export.onnx_export import export_onnx  # noqa: E402
from lib_deepfake.manifest import Manifest  # noqa: E402
from lib_deepfake.model import InferenceModel, load_model  # noqa: E402
from lib_deepfake.model.testing import random_faces, write_test_checkpoint  # noqa: E402


def _run(path: Path, faces: torch.Tensor) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["prob_fake"], {"faces": faces.numpy()})[0]


@pytest.mark.parametrize(("backbone", "width"), [("mobilenet", 0.25), ("resnet34", 0.125), ("efficientnet-b0", 1.0)])
def test_export_parity_per_family(tmp_path: Path, backbone: str, width: float) -> None:
    ckpt = write_test_checkpoint(tmp_path / "m.pth", backbone=backbone, width_mult=width, size=32)
    result = export_onnx(ckpt, tmp_path / "m.onnx")
    assert result.max_abs_diff <= 1e-4
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert "BatchNormalization" not in ops
    assert not list(tmp_path.glob("*.data")), "expected a single self-contained file"
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "faces" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim][1:] == [32, 32, 3]
    assert inp.type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert out.name == "prob_fake" and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    net, loaded = load_model(ckpt)
    faces = random_faces(5, 32, seed=7)
    expected = InferenceModel(net, loaded.config.preprocessing)(faces).detach().numpy()
    assert expected.std() > 1e-3, "test model must give input-dependent outputs"
    np.testing.assert_allclose(_run(result.path, faces), expected, atol=1e-4, rtol=0)


def test_official_checkpoint_matches_official_model(tmp_path: Path) -> None:
    """The done-when of the foundation issue: ONNX prob_fake == softmax(p_y_given_z)[:, 1] of the official model
    fed BGR crops normalised as the official dataset code does."""
    ckpt = write_test_checkpoint(tmp_path / "official.pth", official=True, backbone="resnet34", width_mult=0.125,
                                 size=32)  # fmt: skip
    result = export_onnx(ckpt, tmp_path / "official.onnx", official_input_size=32)
    assert result.manifest.model["preprocessing"]["channel_order"] == "BGR"
    net, _ = load_model(ckpt, official_input_size=32)
    faces = random_faces(6, 32, seed=3)
    bgr = torch.from_numpy(faces.numpy()[..., ::-1].copy()).float() / 255.0
    x = ((bgr - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])).permute(0, 3, 1, 2)
    with torch.no_grad():
        official = torch.softmax(net(x).fused, dim=1)[:, 1].numpy()
    np.testing.assert_allclose(_run(result.path, faces), official, atol=1e-4, rtol=0)


def test_fp16_export_keeps_io_types(tmp_path: Path) -> None:
    ckpt = write_test_checkpoint(tmp_path / "m.pth", backbone="mobilenet", size=32)
    # A random-weight network amplifies FP16 rounding far more than a trained one (calibrated BN on near-dead
    # channels), so this graph is checked against the PyTorch FP16 model tightly and against FP32 loosely.
    result = export_onnx(ckpt, tmp_path / "m16.onnx", fp16=True, parity_tolerance=0.05)
    assert result.manifest.precision == "fp16" and result.manifest.extra["parity"]["tolerance"] == 0.05
    net, loaded = load_model(ckpt)
    faces = random_faces(4, 32, seed=5)
    half = InferenceModel(net, loaded.config.preprocessing, torch.float16)
    with torch.no_grad():
        np.testing.assert_allclose(_run(result.path, faces), half(faces).numpy(), atol=2e-2, rtol=0)
    model = onnx.load(str(result.path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    softmax_inputs = [n.input[0] for n in model.graph.node if n.op_type == "Softmax"]
    assert softmax_inputs, "softmax must be in the graph"


def test_manifest_and_metadata(tmp_path: Path) -> None:
    ckpt = write_test_checkpoint(tmp_path / "m.pth", backbone="mobilenet", size=32)
    result = export_onnx(ckpt, tmp_path / "out" / "m.onnx", batch=4)
    data = json.loads((tmp_path / "out" / "m.onnx.json").read_text())
    assert data["format"] == "onnx" and data["precision"] == "fp32"
    assert data["io"]["inputs"][0] == {"name": "faces", "dtype": "uint8", "shape": [4, 32, 32, 3], "layout": "NHWC",
                                       "color": "RGB"}  # fmt: skip
    assert data["io"]["outputs"][0]["name"] == "prob_fake"
    assert data["model"]["backbone"] == "mobilenet" and data["model"]["num_libs"] == 2
    assert len(data["source_checkpoint_sha256"]) == 64
    assert data["versions"]["torch"] and data["versions"]["onnx"]
    assert data["extra"]["parity"]["max_abs_diff"] <= 1e-4 and data["extra"]["dynamic_batch"] is False
    assert data["created_by"]
    assert Manifest.load(result.path).input_size == 32
    props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert props["lib_deepfake.input_size"] == "32" and props["lib_deepfake.channel_order"] == "RGB"
    assert props["lib_deepfake.source_checkpoint_sha256"] == data["source_checkpoint_sha256"]
    dim = onnx.load(str(result.path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_value == 4


def test_parity_failure_removes_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = write_test_checkpoint(tmp_path / "m.pth", backbone="mobilenet", size=32)
    real = onnx_export.ort_parity

    def broken(*args, **kwargs):
        stats = real(*args, **kwargs)
        return {**stats, "max_abs_diff": 0.5}

    monkeypatch.setattr(onnx_export, "ort_parity", broken)
    with pytest.raises(ParityError, match="not written"):
        export_onnx(ckpt, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.onnx.json").exists()
    assert not list(tmp_path.glob(".*partial"))


def test_bad_arguments(tmp_path: Path) -> None:
    ckpt = write_test_checkpoint(tmp_path / "m.pth", backbone="mobilenet", size=32)
    with pytest.raises(LibDeepfakeError, match=r"\.onnx"):
        export_onnx(ckpt, tmp_path / "m.bin")
    with pytest.raises(LibDeepfakeError, match="opset"):
        export_onnx(ckpt, tmp_path / "m.onnx", opset=13)
