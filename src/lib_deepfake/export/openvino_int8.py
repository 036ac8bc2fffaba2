"""FP32 contract ONNX -> INT8 OpenVINO IR (``.xml`` + ``.bin``) with NNCF post-training quantization, calibrated on
face crops and gated against the FP32 model on crops held out of calibration.

Why a second INT8 path beside ``lib-export quantize`` (ONNX Runtime's QDQ): OpenVINO also reads that QDQ model,
but NNCF's quantization of the OpenVINO model ran about 1.5x faster on this project's CPU (4xResNet-34 at 224,
batch 16, rough measurement on a loaded 2-core Xeon with AMX: 12-16 vs 8-10 faces/s) at the same parity against
FP32 (mean |dP(fake)| 0.032 vs 0.029 on 33 held-out face crops). The QDQ file stays the INT8 artifact for ONNX
Runtime; this IR is the INT8 artifact of the ``openvino`` engine.

Crops are used as in :mod:`lib_deepfake.export.quantize` (same seeded order, same hold-out rule, same mean |dprob|
gate), the input and output contract is unchanged, and the reference of the gate is the FP32 ONNX run by OpenVINO
in f32, so this step needs no runtime besides OpenVINO and NNCF.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from lib_deepfake._optional import require
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError, ParityError
from lib_deepfake.export.onnx_export import OnnxExportResult
from lib_deepfake.export.quantize import INT8_TOLERANCE, PARITY_CROPS, _read_batches, calibration_batches, crop_files
from lib_deepfake.manifest import Manifest

logger = logging.getLogger(__name__)

PRESETS = ("performance", "mixed")  # NNCF: symmetric activations (fastest) or asymmetric (for signed inputs)


def _compiled(core: Any, model: Any) -> Any:
    # f32 explicitly: on bf16 CPUs OpenVINO would otherwise compute the unquantized ops, and the reference, in bf16
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})


def _run(compiled: Any, batches: list[np.ndarray]) -> np.ndarray:
    request = compiled.create_infer_request()
    return np.concatenate([np.array(request.infer({0: b})[0], dtype=np.float64) for b in batches])


def quantize_openvino(
    source: Path | str,
    out: Path | str,
    *,
    calibration: Path | None = None,
    calibration_limit: int = 256,
    tolerance: float = INT8_TOLERANCE,
    check_parity: bool = True,
    parity_crops: int = PARITY_CROPS,
    preset: str = "performance",
) -> OnnxExportResult:
    """Quantize an FP32 contract ONNX (``lib-export to-onnx``) to an INT8 OpenVINO IR with a manifest.

    Args:
        source: the FP32 ONNX (its manifest gives the crop size and the model).
        out: the ``.xml`` to write (``.bin`` beside it, manifest at ``out.json``).
        calibration: a folder of face crops (PNG/JPG, searched recursively); None = random crops (speed only).
        calibration_limit: at most this many calibration crops.
        tolerance: mean |dprob_fake| against the FP32 model on the held-out crops; past it nothing is written.
        check_parity: compare with the FP32 model on held-out crops.
        parity_crops: crops of ``calibration`` held out for the check (up to half of the folder).
        preset: ``performance`` (symmetric int8 activations) or ``mixed`` (asymmetric activations).

    Raises:
        ArtifactMismatchError: the source is not an FP32 contract model with a manifest.
        ParityError: the INT8 model disagrees with the FP32 model beyond ``tolerance``.
    """
    ov = require("openvino", purpose="INT8 quantization for OpenVINO", extra="openvino")
    nncf = require("nncf", purpose="INT8 quantization for OpenVINO (NNCF post-training quantization)",
                   extra="openvino-int8")  # fmt: skip
    source, out = Path(source), Path(out)
    if out.suffix != ".xml":
        raise LibDeepfakeError(f"output must end in .xml (an OpenVINO IR), got {out.name}")
    if preset not in PRESETS:
        raise LibDeepfakeError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    manifest = Manifest.load(source)
    if manifest is None or manifest.format != "onnx" or manifest.precision != "fp32":
        raise ArtifactMismatchError(f"{source.name} is not an FP32 contract ONNX with a manifest: export it with "
                                    "lib-export to-onnx first")  # fmt: skip
    size = manifest.input_size
    files = crop_files(calibration) if calibration is not None else None
    held_out = files[: min(parity_crops, len(files) // 2)] if files is not None and check_parity else []
    batches = list(calibration_batches(files, size, limit=calibration_limit, skip=len(held_out)))
    core = ov.Core()
    model = core.read_model(str(source))
    quantized = nncf.quantize(
        model,
        nncf.Dataset(batches),
        subset_size=len(batches),  # NNCF counts dataset items, and ours are batches
        preset=nncf.QuantizationPreset.PERFORMANCE if preset == "performance" else nncf.QuantizationPreset.MIXED,
    )
    parity: dict[str, Any] = {"skipped": True}
    if check_parity:
        parity = _parity(core, model, quantized, size, held_out)
        parity["tolerance"] = tolerance
        if parity["mean_abs_diff"] > tolerance:
            raise ParityError(
                f"INT8 OpenVINO model disagrees with the FP32 model on {parity['inputs']}: mean |dprob_fake| = "
                f"{parity['mean_abs_diff']:.3g} > {tolerance:g} (max {parity['max_abs_diff']:.3g}, decision "
                f"agreement {parity['agreement']:.3f}); {out.name} was not written"
            )
    _save_ir(ov, quantized, out)
    calib = {"source": str(calibration) if calibration else "random crops (speed measurements only)",
             "crops": int(sum(len(b) for b in batches))}  # fmt: skip
    result = Manifest(
        format="openvino",
        precision="int8",
        io=manifest.io,
        model=manifest.model,
        source_checkpoint_sha256=manifest.source_checkpoint_sha256,
        source=str(source),
        extra={
            "quantization": {"tool": f"nncf {nncf.__version__}", "preset": preset, "calibration": calib},
            "openvino": str(ov.get_version()),
            "parity": {**parity, "reference": "the FP32 ONNX (OpenVINO CPU, f32)"},
        },
    )
    result.save(out)
    return OnnxExportResult(out, result, float(parity.get("max_abs_diff", float("nan"))))


def _save_ir(ov: Any, model: Any, out: Path) -> None:
    """Write ``out`` (.xml) and its .bin so that a reader never sees one without the other: both go to temporary
    names first, the .bin is renamed into place before the .xml."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.xml")
    try:
        ov.save_model(model, str(tmp), compress_to_fp16=False)  # keep the unquantized weights in FP32
        tmp.with_suffix(".bin").replace(out.with_suffix(".bin"))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)


def _parity(core: Any, fp32: Any, int8: Any, size: int, held_out: list[Path]) -> dict[str, Any]:
    from lib_deepfake.model.testing import random_faces

    if held_out:
        batches = list(_read_batches(held_out, size, 16))
        inputs = f"{sum(len(b) for b in batches)} held-out crops of the calibration folder"
    else:
        batches = [random_faces(16, size, seed=7).numpy()]
        inputs = "16 synthetic random faces (no calibration folder)"
    a, b = _run(_compiled(core, fp32), batches), _run(_compiled(core, int8), batches)
    diff = np.abs(a - b)
    return {"inputs": inputs, "samples": int(diff.size), "mean_abs_diff": float(diff.mean()),
            "p95_abs_diff": float(np.percentile(diff, 95)), "max_abs_diff": float(diff.max()),
            "agreement": float(np.mean((a >= 0.5) == (b >= 0.5)))}  # fmt: skip
