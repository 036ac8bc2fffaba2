"""lib-export quantize-openvino: FP32 contract ONNX -> INT8 OpenVINO IR with NNCF, calibrated on face crops, gated
against the FP32 model (nothing written past the limits), run by the openvino engine as int8."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from tests.engines._artifacts import contract_onnx, tiny_checkpoint

from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError, ParityError
from lib_deepfake.manifest import Manifest

pytest.importorskip("nncf", reason="needs the openvino-int8 extra")
pytest.importorskip("openvino", reason="needs the openvino extra")

SIZE = 32
LOOSE = "max_dlogit=100,mean_dlogit=100,agreement=0"  # a random-weight net: the gate's verdict is not the point


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from lib_deepfake.bench.engine_artifacts import calibration_folder

    root = tmp_path_factory.mktemp("ov-int8")
    ckpt = tiny_checkpoint(root / "tiny.pth")
    onnx = contract_onnx(ckpt, root / "tiny.onnx")
    folder, _ = calibration_folder(None, root, SIZE)  # the bundled face crops as PNG files
    return {"root": root, "ckpt": ckpt, "onnx": onnx, "crops": folder}


def test_quantize_writes_ir_manifest_and_runs_as_int8(setup):
    import torch

    from lib_deepfake.engines import create_engine
    from lib_deepfake.engines.torch_engine import TorchEngine
    from lib_deepfake.export.openvino_int8 import quantize_openvino
    from lib_deepfake.model.testing import random_faces

    out = setup["root"] / "tiny.int8.xml"
    result = quantize_openvino(setup["onnx"], out, calibration=setup["crops"], tolerance=LOOSE)
    manifest = Manifest.load(out)
    assert out.is_file() and out.with_suffix(".bin").is_file() and manifest is not None
    assert manifest.format == "openvino" and manifest.precision == "int8"
    assert manifest.extra["quantization"]["tool"].startswith("nncf ")
    calib = manifest.extra["quantization"]["calibration"]
    assert calib["source"] == str(setup["crops"]) and calib["crops"] > 0
    parity = manifest.extra["parity"]
    assert parity["passed"] is True and set(parity["sets"]) == {"faces", "held_out"}
    assert parity["tolerance_override"] == LOOSE and result.max_abs_diff == parity["overall"]["max_abs_diff"]
    assert not list(setup["root"].glob(".*partial*"))
    faces = random_faces(4, SIZE, seed=9)
    with TorchEngine(setup["ckpt"]) as ref:
        expected = ref.infer(faces).clone()
    with create_engine(out, cache_dir=setup["root"] / "cache") as engine:  # .xml -> openvino
        assert engine.name == "openvino" and engine.precision == "int8"
        out_probs = engine.infer(faces)
    assert out_probs.shape == (4,) and torch.isfinite(out_probs).all()
    assert (out_probs - expected).abs().mean() < 0.2


def test_gate_failure_writes_nothing(setup):
    from lib_deepfake.export.openvino_int8 import quantize_openvino

    out = setup["root"] / "strict.int8.xml"
    with pytest.raises(ParityError, match="strict.int8.xml was not written"):
        quantize_openvino(setup["onnx"], out, calibration=setup["crops"], tolerance="max_dlogit=1e-9")
    assert not out.exists() and not out.with_suffix(".bin").exists() and not Manifest.load(out)


def test_refuses_bad_inputs(setup, tmp_path):
    from lib_deepfake.export.openvino_int8 import quantize_openvino

    with pytest.raises(LibDeepfakeError, match=r"\.xml"):
        quantize_openvino(setup["onnx"], tmp_path / "x.onnx")
    with pytest.raises(LibDeepfakeError, match="preset"):
        quantize_openvino(setup["onnx"], tmp_path / "x.xml", preset="fast")
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(setup["onnx"].read_bytes())
    with pytest.raises(ArtifactMismatchError, match="FP32 contract ONNX with a manifest"):
        quantize_openvino(bare, tmp_path / "x.xml")


def test_cli(setup):
    from lib_deepfake.cli.export import main

    out = setup["root"] / "cli.int8.xml"
    res = CliRunner().invoke(main, ["quantize-openvino", str(setup["onnx"]), "-o", str(out), "--calibration",
                                    str(setup["crops"]), "--parity-tol", LOOSE])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"wrote {out} (int8, nncf" in res.output and out.is_file()
