"""Parity checks see real errors, on a trained model and face crops.

A trained tiny LIB (tests/export/_trained.py) is exported as the user would: FP32 and FP16 through
``export_onnx`` and INT8 through ``quantize_int8``, each passing its built-in check with the default limits.
Then each artifact gets three large weight tensors scaled by 1.05 - the kind of defect parity exists to catch -
and the very checks lib-export runs must fail it: to-onnx's check (``check_onnx_parity``), quantize's gate, and
``lib-export verify``'s exit status.

Why face crops: the check used to run on noise (``random_faces``). A detector's outputs on noise sit at or near
P(fake) = 0 or 1, where every artifact agrees: on this model noise understates the damage several times, and the
old INT8 gate (mean |dprob| <= 0.05 on noise) passes the damaged INT8 model outright.

Slow: training (about a minute on 2 cores) and two dynamo exports; CI runs it (make test passes --runslow).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tests.export._trained import SIZE, scale_largest_weights, train_tiny, training_crops

from lib_deepfake.cli.export import main as export_main
from lib_deepfake.engines.parity import DEFAULT_TOLERANCES, compare_outputs, raise_for_parity
from lib_deepfake.errors import ParityError
from lib_deepfake.export.onnx_export import check_onnx_parity, export_onnx, onnx_runner
from lib_deepfake.export.quantize import _parity as int8_parity
from lib_deepfake.export.quantize import quantize_int8
from lib_deepfake.model.checkpoint import load_model
from lib_deepfake.model.inference import InferenceModel
from lib_deepfake.model.testing import random_faces
from lib_deepfake.prep.face_crops import face_crop_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("trained")
    ckpt = train_tiny(root / "trained.pth")
    calibration = root / "calibration"
    calibration.mkdir()
    for i, crop in enumerate(training_crops(320, seed=7)[0].numpy()):  # 64 held out, 256 to calibrate on
        cv2.imwrite(str(calibration / f"{i:03d}.png"), crop[..., ::-1])
    healthy = {
        "fp32": export_onnx(ckpt, root / "m.fp32.onnx").path,  # each raises ParityError if the defaults reject it
        "fp16": export_onnx(ckpt, root / "m.fp16.onnx", fp16=True).path,
    }
    healthy["int8"] = quantize_int8(healthy["fp32"], root / "m.int8.onnx", calibration=calibration).path
    damaged = {}
    for precision, path in healthy.items():
        damaged[precision] = root / f"damaged.{precision}.onnx"
        scale_largest_weights(path, damaged[precision])
        shutil.copy(f"{path}.json", f"{damaged[precision]}.json")  # same claims, wrong weights
    net, loaded = load_model(ckpt)
    return {"ckpt": ckpt, "healthy": healthy, "damaged": damaged, "root": root,
            "reference": InferenceModel(net, loaded.config.preprocessing).eval()}  # fmt: skip


def _manifest_parity(path: Path) -> dict:
    return json.loads(Path(f"{path}.json").read_text())["extra"]["parity"]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_healthy_exports_pass_the_default_limits_on_informative_crops(models, precision):
    parity = _manifest_parity(models["healthy"][precision])
    assert parity["passed"] is True and parity["tolerance_override"] is None
    assert parity["tolerance"] == DEFAULT_TOLERANCES[(None, precision)].to_dict()
    faces = parity["sets"]["faces"]
    assert faces["samples"] == 66 and faces["saturated"] < 0.5  # outputs vary on the crops: errors can show
    if precision == "int8":
        assert parity["sets"]["held_out"]["samples"] == 64 and parity["sets"]["held_out"]["passed"] is True


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_to_onnx_check_fails_a_damaged_export(models, precision):
    result = check_onnx_parity(models["damaged"][precision], models["reference"], SIZE, precision)
    assert result["passed"] is False and result["failures"]
    with pytest.raises(ParityError, match=r"faces: mean \|dlogit\||faces: max \|dlogit\|"):
        raise_for_parity(result, f"damaged {precision}")


def test_quantize_gate_fails_a_damaged_int8_model(models):
    result = int8_parity(models["healthy"]["fp32"], models["damaged"]["int8"], SIZE, [], None, None)
    assert result["passed"] is False and any("mean |dlogit|" in line for line in result["failures"])


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_verify_passes_healthy_and_fails_damaged(models, precision):
    runner = CliRunner()
    base = ["verify", "--reference", str(models["ckpt"]), "--batch", "33"]
    ok = runner.invoke(export_main, [*base, str(models["healthy"][precision])])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(export_main, [*base, str(models["damaged"][precision])])
    assert bad.exit_code == 1 and "disagrees with the PyTorch FP32 reference" in bad.output, bad.output


def test_noise_hides_the_damage(models):
    """What the old check saw: on noise the damage looks several times smaller than on face crops, and the old
    INT8 gate (mean |dprob| <= 0.05 on random crops) passes the damaged INT8 model."""
    faces, noise = torch.from_numpy(face_crop_set(SIZE)), random_faces(64, SIZE, seed=7)
    fp32 = onnx_runner(models["healthy"]["fp32"])
    for precision in ("fp32", "fp16", "int8"):
        damaged = onnx_runner(models["damaged"][precision])
        reference = models["reference"] if precision != "int8" else fp32
        with torch.inference_mode():
            on_faces = compare_outputs(np.asarray(reference(faces)), damaged(faces), precision)
            on_noise = compare_outputs(np.asarray(reference(noise)), damaged(noise), precision)
        healthy = _manifest_parity(models["healthy"][precision])["sets"]["faces"]
        # The figures behind the default limits (pytest -rP shows them).
        print(
            f"{precision}: faces healthy max/mean |dlogit| {healthy['max_abs_dlogit']:.3g}/"
            f"{healthy['mean_abs_dlogit']:.3g} max |dprob| {healthy['max_abs_diff']:.3g}; damaged "
            f"{on_faces.summary()}; damaged on noise {on_noise.summary()} saturated {on_noise.saturated:.2f}"
        )
        assert on_faces.passed is False
        assert on_noise.mean_abs_dlogit < on_faces.mean_abs_dlogit / 2, (precision, on_noise, on_faces)
        if precision == "int8":
            assert on_noise.mean_abs_diff <= 0.05  # the old gate would have written this file
