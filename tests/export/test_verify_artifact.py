"""lib-export verify: an artifact against the PyTorch FP32 reference on face crops (the bundled set or the user's);
exit status past the limits. CPU (ONNX Runtime); TensorRT plans take the same path on a GPU. That the limits see
a damaged artifact of a trained model: test_parity_sees_errors.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from tests.engines._artifacts import contract_onnx, tiny_checkpoint

from lib_deepfake.cli.export import main as export_main
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError
from lib_deepfake.export.verify import verify_artifact
from lib_deepfake.prep.face_crops import face_crop_set, load_crops


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    ckpt = tiny_checkpoint(root / "tiny.pth")
    other = tiny_checkpoint(root / "other.pth", seed=5)
    onnx_path = contract_onnx(ckpt, root / "tiny.onnx")
    crops = root / "crops"
    (crops / "video0").mkdir(parents=True)
    for i, face in enumerate(face_crop_set(48, 3)):  # 48 px on disk, resized to the model's 32
        Image.fromarray(face).save(crops / "video0" / f"{i}.png")
    return {"ckpt": ckpt, "other": other, "onnx": onnx_path, "crops": crops, "root": root}


def test_verify_passes_for_its_checkpoint_on_face_crops(files):
    report = verify_artifact(files["onnx"], files["ckpt"], batch=5)
    parity = report.parity
    assert report.passed and list(parity["sets"]) == ["faces"] and parity["sets"]["faces"]["samples"] == 66
    assert parity["overall"]["max_abs_diff"] < 1e-4 and parity["overall"]["max_abs_dlogit"] < 1e-3
    assert parity["overall"]["saturated"] < 0.5  # the crops are informative for this model
    assert parity["tolerance"]["max_dlogit"] == 1e-3 and report.engine["engine"] == "onnxrt"
    assert report.engine["runtime"]["providers"] == ["CPUExecutionProvider"]


def test_user_crops_replace_the_bundled_set(files):
    report = verify_artifact(files["onnx"], files["ckpt"], crops=files["crops"])
    assert report.passed and list(report.parity["sets"]) == ["crops"]
    assert report.parity["sets"]["crops"]["samples"] == 3 and str(files["crops"]) in report.parity["inputs"]["crops"]


def test_verify_fails_against_another_model(files):
    report = verify_artifact(files["onnx"], files["other"], samples=16)
    assert not report.passed and report.parity["overall"]["max_abs_dlogit"] > 1e-2
    assert any("max |dlogit|" in line for line in report.parity["failures"])


def test_cli_exit_codes_and_json(files):
    runner = CliRunner()
    out = files["root"] / "verify.json"
    ok = runner.invoke(export_main, ["verify", str(files["onnx"]), "--reference", str(files["ckpt"]), "--samples", "8",
                                     "--json", str(out)])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "PASS" in ok.output and "max |dlogit|" in ok.output
    saved = json.loads(out.read_text())
    assert saved["passed"] is True and saved["parity"]["sets"]["faces"]["samples"] == 8
    bad = runner.invoke(export_main, ["verify", str(files["onnx"]), "--reference", str(files["other"]),
                                      "--samples", "8"])  # fmt: skip
    assert bad.exit_code == 1
    assert "FAIL" in bad.output and "disagrees with the PyTorch FP32 reference" in bad.output
    loose = runner.invoke(export_main, ["verify", str(files["onnx"]), "--reference", str(files["other"]),
                                        "--samples", "8", "--parity-tol", "max_dlogit=none,max_dprob=none,"
                                        "mean_dlogit=none,agreement=none,mean_dprob=1"])  # fmt: skip
    assert loose.exit_code == 0, loose.output


def test_size_mismatch_is_explained(files, tmp_path):
    from lib_deepfake.model.testing import write_test_checkpoint

    big = write_test_checkpoint(tmp_path / "big.pth", size=48, num_libs=2, width_mult=0.25)
    with pytest.raises(ArtifactMismatchError, match="32px crops but the reference"):
        verify_artifact(files["onnx"], big, samples=2)


def test_load_crops_formats(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "c.npy", arr)
    torch.save(torch.from_numpy(arr), tmp_path / "c.pt")
    assert np.array_equal(load_crops(tmp_path / "c.npy", 16), arr)
    assert load_crops(tmp_path / "c.pt", 16, limit=2).shape == (2, 16, 16, 3)
    with pytest.raises(LibDeepfakeError, match=r"uint8 \[N, 32, 32, 3\]"):
        load_crops(tmp_path / "c.npy", 32)
    with pytest.raises(LibDeepfakeError, match="folder of images"):
        load_crops(tmp_path / "c.txt", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LibDeepfakeError, match="no images"):
        load_crops(tmp_path / "empty", 16)
