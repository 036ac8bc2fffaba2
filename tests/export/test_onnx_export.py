"""ONNX export: engine contract, single file, BN folded, checker-clean, ORT parity per family on face crops, FP16,
manifest and metadata, official checkpoints, and refusal paths (a broken export step is caught and nothing is
written). Needs onnx + onnxruntime (the [cpu,export] extras). That parity sees real errors on a trained model:
test_parity_sees_errors.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from tests.export._trained import scale_largest_weights  # noqa: E402

from lib_deepfake.engines.parity import DEFAULT_TOLERANCES  # noqa: E402
from lib_deepfake.errors import LibDeepfakeError, ParityError  # noqa: E402
from lib_deepfake.export import onnx_export  # noqa: E402
from lib_deepfake.export.onnx_export import export_onnx  # noqa: E402
from lib_deepfake.manifest import Manifest  # noqa: E402
from lib_deepfake.model import InferenceModel, load_model  # noqa: E402
from lib_deepfake.model.testing import write_test_checkpoint  # noqa: E402
from lib_deepfake.prep.face_crops import face_crop_set  # noqa: E402


def _faces(n: int, size: int = 32) -> torch.Tensor:
    return torch.from_numpy(face_crop_set(size, n))


def _run(path: Path, faces: torch.Tensor) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["prob_fake"], {"faces": faces.numpy()})[0]


@pytest.mark.parametrize(("backbone", "width"), [("mobilenet", 0.25), ("resnet34", 0.125), ("efficientnet-b0", 1.0)])
def test_export_parity_per_family(tmp_path: Path, backbone: str, width: float) -> None:
    ckpt = write_test_checkpoint(tmp_path / "m.pth", backbone=backbone, width_mult=width, size=32)
    result = export_onnx(ckpt, tmp_path / "m.onnx")
    parity = result.manifest.extra["parity"]
    assert result.max_abs_diff <= 1e-4 and parity["passed"] and parity["overall"]["max_abs_dlogit"] <= 1e-3
    assert list(parity["sets"]) == ["faces"] and "face crops" in parity["inputs"]["faces"]
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
    faces = _faces(6)
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
    faces = _faces(6)
    bgr = torch.from_numpy(faces.numpy()[..., ::-1].copy()).float() / 255.0
    x = ((bgr - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])).permute(0, 3, 1, 2)
    with torch.no_grad():
        official = torch.softmax(net(x).fused, dim=1)[:, 1].numpy()
    np.testing.assert_allclose(_run(result.path, faces), official, atol=1e-4, rtol=0)


def test_fp16_export_keeps_io_types(tmp_path: Path) -> None:
    ckpt = write_test_checkpoint(tmp_path / "m.pth", backbone="mobilenet", size=32)
    # A random-weight network amplifies FP16 rounding far more than a trained one (calibrated BN on near-dead
    # channels): it needs explicit, recorded limits; a trained model passes the FP16 defaults
    # (test_parity_sees_errors.py). Checked against the PyTorch FP16 model tightly, against FP32 loosely.
    loose = "max_dlogit=0.5,mean_dlogit=0.2"
    result = export_onnx(ckpt, tmp_path / "m16.onnx", fp16=True, parity_tolerance=loose)
    parity = result.manifest.extra["parity"]
    assert result.manifest.precision == "fp16" and parity["tolerance_override"] == loose
    assert parity["tolerance"]["max_dlogit"] == 0.5 and parity["tolerance"]["mean_dlogit"] == 0.2
    assert parity["tolerance"]["agreement"] == DEFAULT_TOLERANCES[(None, "fp16")].agreement  # defaults kept
    net, loaded = load_model(ckpt)
    faces = _faces(8)
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
    parity = data["extra"]["parity"]
    assert parity["overall"]["max_abs_diff"] <= 1e-4 and data["extra"]["dynamic_batch"] is False
    assert parity["precision"] == "fp32" and parity["passed"] is True and parity["tolerance_override"] is None
    assert parity["tolerance"] == DEFAULT_TOLERANCES[(None, "fp32")].to_dict()
    assert parity["overall"]["samples"] == 66  # the whole face-crop set, through the fixed batch of 4 (padded)
    assert {"max_abs_dlogit", "mean_abs_dlogit", "max_abs_diff", "mean_abs_diff", "agreement"} <= set(parity["overall"])
    assert data["created_by"]
    assert Manifest.load(result.path).input_size == 32
    props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert props["lib_deepfake.input_size"] == "32" and props["lib_deepfake.channel_order"] == "RGB"
    assert props["lib_deepfake.source_checkpoint_sha256"] == data["source_checkpoint_sha256"]
    dim = onnx.load(str(result.path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_value == 4


def test_a_broken_export_step_is_caught_and_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An export step that damages the weights (three large tensors x1.05) must fail the real parity check."""
    ckpt = write_test_checkpoint(tmp_path / "m.pth", backbone="mobilenet", size=32)
    finalise = onnx_export._finalise_graph

    def finalise_then_damage(path: Path, metadata: dict) -> None:
        finalise(path, metadata)
        scale_largest_weights(path, path)

    monkeypatch.setattr(onnx_export, "_finalise_graph", finalise_then_damage)
    with pytest.raises(ParityError, match=r"not written: faces: max \|dlogit\| [0-9.]+ > 0\.001"):
        export_onnx(ckpt, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.onnx.json").exists()
    assert not list(tmp_path.glob(".*partial"))


def test_user_crops_replace_the_bundled_set(tmp_path: Path) -> None:
    ckpt = write_test_checkpoint(tmp_path / "m.pth", backbone="mobilenet", size=32)
    crops = tmp_path / "crops"
    crops.mkdir()
    for i, face in enumerate(face_crop_set(48, 5)):  # another size: resized to the model's
        Image.fromarray(face).save(crops / f"{i}.png")
    result = export_onnx(ckpt, tmp_path / "m.onnx", crops=crops)
    parity = result.manifest.extra["parity"]
    assert list(parity["sets"]) == ["crops"] and parity["sets"]["crops"]["samples"] == 5
    assert str(crops) in parity["inputs"]["crops"]


def test_bad_arguments(tmp_path: Path) -> None:
    ckpt = write_test_checkpoint(tmp_path / "m.pth", backbone="mobilenet", size=32)
    with pytest.raises(LibDeepfakeError, match=r"\.onnx"):
        export_onnx(ckpt, tmp_path / "m.bin")
    with pytest.raises(LibDeepfakeError, match="opset"):
        export_onnx(ckpt, tmp_path / "m.onnx", opset=13)


def test_decisions_are_compared_at_the_model_cards_threshold(tmp_path: Path) -> None:
    from lib_deepfake.export.verify import verify_artifact
    from lib_deepfake.model.card import CARD_KEY, DatasetCounts, ModelCard
    from lib_deepfake.model.checkpoint import save_checkpoint
    from lib_deepfake.model.threshold import ThresholdChoice

    data = DatasetCounts("synth", {"val": {"real": {"videos": 3, "frames": 15}}}, synthetic=True)
    threshold = ThresholdChoice(0.4242, "eer", "video", "val", ["synth"], {"acc": 0.9, "eer": 0.1})
    card = ModelCard.build([data], {"recipe": "default"}, architecture="LIB 2 x mobilenet", threshold=threshold)
    net, loaded = load_model(write_test_checkpoint(tmp_path / "m.pth", backbone="mobilenet", size=32))
    ckpt = save_checkpoint(tmp_path / "m.pth", net, loaded.config, epoch=1, **{CARD_KEY: card.to_dict()})
    result = export_onnx(ckpt, tmp_path / "m.onnx")
    parity = result.manifest.extra["parity"]
    assert parity["threshold"] == 0.4242 == result.manifest.extra["threshold"]["value"]
    assert parity["overall"]["threshold"] == 0.4242
    assert verify_artifact(result.path, ckpt, samples=8).parity["threshold"] == 0.4242  # read from the manifest
