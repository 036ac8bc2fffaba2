"""lib-export verify: an artifact against the PyTorch FP32 reference on random and real crops; exit status past the
tolerance. CPU (ONNX Runtime); TensorRT plans take the same path on a GPU."""

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
from lib_deepfake.export.verify import load_crops, verify_artifact


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    ckpt = tiny_checkpoint(root / "tiny.pth")
    other = tiny_checkpoint(root / "other.pth", seed=5)
    onnx_path = contract_onnx(ckpt, root / "tiny.onnx")
    crops = root / "crops"
    crops.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(crops / f"{i}.png")
    return {"ckpt": ckpt, "other": other, "onnx": onnx_path, "crops": crops, "root": root}


def test_verify_passes_for_its_checkpoint(files):
    report = verify_artifact(files["onnx"], files["ckpt"], samples=12, batch=5, crops=files["crops"])
    assert report.passed
    assert report.sets["random"]["samples"] == 12 and report.sets["real"]["samples"] == 3
    assert report.overall["max_abs_diff"] < 1e-4 and report.overall["agreement"] == 1.0
    assert report.tolerance == 1e-4 and report.engine["engine"] == "onnxrt"
    assert report.engine["runtime"]["providers"] == ["CPUExecutionProvider"]


def test_verify_fails_against_another_model(files):
    report = verify_artifact(files["onnx"], files["other"], samples=16)
    assert not report.passed and report.overall["max_abs_diff"] > 1e-3


def test_cli_exit_codes_and_json(files):
    runner = CliRunner()
    out = files["root"] / "verify.json"
    ok = runner.invoke(export_main, ["verify", str(files["onnx"]), "--reference", str(files["ckpt"]), "--samples", "8",
                                     "--json", str(out)])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "PASS" in ok.output and json.loads(out.read_text())["passed"] is True
    bad = runner.invoke(export_main, ["verify", str(files["onnx"]), "--reference", str(files["other"]),
                                      "--samples", "8"])  # fmt: skip
    assert bad.exit_code == 1
    assert "FAIL" in bad.output and "disagrees with the PyTorch FP32 reference" in bad.output


def test_size_mismatch_is_explained(files, tmp_path):
    from lib_deepfake.model.testing import write_test_checkpoint

    big = write_test_checkpoint(tmp_path / "big.pth", size=48, num_libs=2, width_mult=0.25)
    with pytest.raises(ArtifactMismatchError, match="32px crops but the reference"):
        verify_artifact(files["onnx"], big, samples=2)


def test_load_crops_formats(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "c.npy", arr)
    torch.save(torch.from_numpy(arr), tmp_path / "c.pt")
    assert torch.equal(load_crops(tmp_path / "c.npy", 16), torch.from_numpy(arr))
    assert load_crops(tmp_path / "c.pt", 16, limit=2).shape == (2, 16, 16, 3)
    with pytest.raises(LibDeepfakeError, match=r"uint8 \[N, 32, 32, 3\]"):
        load_crops(tmp_path / "c.npy", 32)
    with pytest.raises(LibDeepfakeError, match="folder of images"):
        load_crops(tmp_path / "c.txt", 16)
