"""INT8 (QDQ) quantization of a contract ONNX: same I/O contract, manifest, calibration from crop folders, parity
gate against the FP32 model on face crops and held-out calibration crops, refusal of non-FP32 sources. CPU; needs
onnx + onnxruntime. That the INT8 limits pass a healthy trained model and fail a damaged one:
test_parity_sees_errors.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from lib_deepfake.cli.export import main as export_cli  # noqa: E402
from lib_deepfake.engines import create_engine  # noqa: E402
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError, ParityError  # noqa: E402
from lib_deepfake.export.onnx_export import export_onnx  # noqa: E402
from lib_deepfake.export.quantize import calibration_batches, quantize_int8  # noqa: E402
from lib_deepfake.model.testing import write_test_checkpoint  # noqa: E402
from lib_deepfake.prep.face_crops import crop_files, face_crop_set  # noqa: E402

# A random-weight model quantizes far worse than a trained one: explicit, recorded limits.
RANDOM_WEIGHTS_TOL = "max_dlogit=5,mean_dlogit=2,agreement=0.5"


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("int8")
    ckpt = write_test_checkpoint(root / "m.pth", backbone="resnet34", width_mult=0.125, size=32)
    return export_onnx(ckpt, root / "m.onnx").path


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    import cv2

    root = tmp_path_factory.mktemp("crops")
    for i, face in enumerate(face_crop_set(40, 24)):  # real face crops at another size (resized when read)
        (root / f"v{i % 3}").mkdir(exist_ok=True)
        cv2.imwrite(str(root / f"v{i % 3}" / f"{i:03d}.png"), face[..., ::-1])
    return root


def test_int8_keeps_the_contract_and_runs_in_the_engine(fp32_onnx: Path, crops: Path, tmp_path: Path) -> None:
    result = quantize_int8(fp32_onnx, tmp_path / "m.int8.onnx", calibration=crops, tolerance=RANDOM_WEIGHTS_TOL)
    model = onnx.load(str(result.path))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert (
        model.graph.input[0].name == "faces"
        and model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    )
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    data = json.loads(Path(str(result.path) + ".json").read_text())
    assert data["precision"] == "int8" and data["io"]["inputs"][0]["shape"][1:] == [32, 32, 3]
    calib = data["extra"]["quantization"]["calibration"]
    assert calib["crops"] == 12 and calib["source"] == str(crops)  # the other half is the parity set
    parity = data["extra"]["parity"]
    assert set(parity["sets"]) == {"faces", "held_out"} and parity["sets"]["held_out"]["samples"] == 12
    assert "held out of calibration" in parity["inputs"]["held_out"] and parity["sets"]["faces"]["samples"] == 66
    assert parity["precision"] == "int8" and parity["tolerance_override"] == RANDOM_WEIGHTS_TOL
    for report in (*parity["sets"].values(), parity["overall"]):
        assert 0 <= report["mean_abs_diff"] <= report["max_abs_diff"] <= 1 and 0 <= report["agreement"] <= 1
        assert 0 <= report["mean_abs_dlogit"] <= report["max_abs_dlogit"]
    with create_engine(result.path, device="cpu", threads=1) as engine:
        probs = engine.infer(torch.from_numpy(face_crop_set(32, 3)))
    assert probs.shape == (3,) and engine.precision == "int8"
    assert np.all((probs.numpy() >= 0) & (probs.numpy() <= 1))


def test_calibration_crops_are_resized_and_rgb(crops: Path) -> None:
    batches = list(calibration_batches(crops, 32, batch=8))
    assert [b.shape for b in batches] == [(8, 32, 32, 3)] * 3 and all(b.dtype == np.uint8 for b in batches)
    with pytest.raises(LibDeepfakeError, match="not a folder of face crops"):
        list(calibration_batches(crops.parent / "empty-does-not-exist", 32))


def test_calibration_order_mixes_classes_and_holds_out_parity_crops(tmp_path: Path) -> None:
    import cv2

    for cls in ("fake_000", "fake_001", "real_000", "real_001"):
        (tmp_path / cls).mkdir()
        for i in range(8):
            cv2.imwrite(str(tmp_path / cls / f"{i:03d}.png"), np.full((8, 8, 3), i, np.uint8))
    order = crop_files(tmp_path)
    assert order == crop_files(tmp_path) and len(set(order)) == 32  # deterministic, every file once
    first = {p.parent.name[:4] for p in order[:8]}
    assert first == {"fake", "real"}  # name order would give 8 fakes
    assert sum(len(b) for b in calibration_batches(tmp_path, 8, limit=100, skip=10)) == 22


def test_parity_gate_removes_the_file(fp32_onnx: Path, tmp_path: Path) -> None:
    # INT8 never reproduces FP32 exactly: zero tolerance must fail, on the real comparison.
    with pytest.raises(ParityError, match=r"not written: faces: max \|dlogit\| [0-9.e-]+ > 0"):
        quantize_int8(fp32_onnx, tmp_path / "bad.onnx", tolerance="max_dlogit=0")
    assert not (tmp_path / "bad.onnx").exists() and not list(tmp_path.glob(".*partial"))


def test_refuses_non_fp32_sources(fp32_onnx: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(fp32_onnx.read_bytes())
    with pytest.raises(ArtifactMismatchError, match="no ONNX manifest"):
        quantize_int8(bare, tmp_path / "x.onnx")


def test_quantize_cli(fp32_onnx: Path, crops: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.int8.onnx"
    args = ["quantize", str(fp32_onnx), "-o", str(out), "--calibration", str(crops), "--parity-tol", RANDOM_WEIGHTS_TOL,
            "--crops", str(crops)]  # fmt: skip
    result = CliRunner().invoke(export_cli, args)
    assert result.exit_code == 0, result.output
    assert "int8" in result.output and out.is_file() and "max |dlogit|" in result.output
    parity = json.loads(Path(str(out) + ".json").read_text())["extra"]["parity"]
    assert set(parity["sets"]) == {"crops", "held_out"} and parity["sets"]["crops"]["samples"] == 24
    bad = CliRunner().invoke(export_cli, [*args[:6], "--parity-tol", "0.05"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
