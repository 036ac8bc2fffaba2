"""FP32 contract ONNX -> INT8 OpenVINO IR (``.xml`` + ``.bin``) with NNCF post-training quantization, calibrated on
face crops and gated against the FP32 model on crops held out of calibration.

Why a second INT8 path beside ``lib-export quantize`` (ONNX Runtime's QDQ): OpenVINO also reads that QDQ model,
but NNCF's quantization of the OpenVINO model ran about 1.5x faster on this project's CPU (4xResNet-34 at 224,
batch 16, rough measurement on a loaded 2-core Xeon with AMX: 12-16 vs 8-10 faces/s) at the same parity against
FP32 (mean |dP(fake)| 0.032 vs 0.029 on 33 held-out face crops). The QDQ file stays the INT8 artifact for ONNX
Runtime; this IR is the INT8 artifact of the ``openvino`` engine.

Crops are used as in :mod:`lib_deepfake.export.quantize` (same seeded order, same hold-out rule, the same INT8
limits of :mod:`lib_deepfake.engines.parity` on the face-crop set and the held-out crops), the input and output
contract is unchanged, and the reference of the gate is the FP32 ONNX run by OpenVINO in f32, so the model itself
needs no runtime besides OpenVINO and NNCF.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lib_deepfake._optional import require
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError
from lib_deepfake.export.manifest_card import card_extra_from_manifest
from lib_deepfake.export.onnx_export import OnnxExportResult
from lib_deepfake.export.quantize import PARITY_CROPS, calibration_batches, int8_parity
from lib_deepfake.manifest import Manifest
from lib_deepfake.prep.face_crops import crop_files

if TYPE_CHECKING:
    from lib_deepfake.engines.parity import Tolerance

logger = logging.getLogger(__name__)

PRESETS = ("performance", "mixed")  # NNCF: symmetric activations (fastest) or asymmetric (for signed inputs)


def _compiled(core: Any, model: Any) -> Any:
    # f32 explicitly: on bf16 CPUs OpenVINO would otherwise compute the unquantized ops, and the reference, in bf16
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})


def _runner(compiled: Any) -> Any:
    """A callable on uint8 [N, S, S, 3] torch tensors for :func:`lib_deepfake.engines.parity.run_batched`."""
    request = compiled.create_infer_request()
    return lambda faces: np.array(request.infer({0: faces.numpy()})[0], dtype=np.float32)


def quantize_openvino(
    source: Path | str,
    out: Path | str,
    *,
    calibration: Path | None = None,
    calibration_limit: int = 256,
    tolerance: Tolerance | str | None = None,
    check_parity: bool = True,
    held_out_crops: int = PARITY_CROPS,
    crops: Path | str | None = None,
    preset: str = "performance",
) -> OnnxExportResult:
    """Quantize an FP32 contract ONNX (``lib-export to-onnx``) to an INT8 OpenVINO IR with a manifest.

    Args:
        source: the FP32 ONNX (its manifest gives the crop size and the model).
        out: the ``.xml`` to write (``.bin`` beside it, manifest at ``out.json``).
        calibration: a folder of face crops (PNG/JPG, searched recursively); None = random crops (speed only).
        calibration_limit: at most this many calibration crops.
        tolerance: limits against the FP32 model (a :class:`~lib_deepfake.engines.parity.Tolerance`, or
            ``KEY=VALUE,...`` overrides of the INT8 defaults); past them nothing is written.
        check_parity: compare with the FP32 model on face crops and on held-out calibration crops.
        held_out_crops: crops of ``calibration`` held out for the check (up to half of the folder).
        crops: parity crops (folder or array file) instead of the bundled face-crop set.
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
    card = card_extra_from_manifest(manifest)
    size = manifest.input_size
    files = crop_files(calibration) if calibration is not None else None
    held_out = files[: min(held_out_crops, len(files) // 2)] if files is not None and check_parity else []
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
        from lib_deepfake.engines.parity import raise_for_parity

        parity = _parity(core, model, quantized, size, held_out, tolerance, crops)
        raise_for_parity(parity, f"INT8 OpenVINO model disagrees with the FP32 model; {out.name} was not written")
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
            **card,
        },
    )
    result.save(out)
    return OnnxExportResult(out, result, float(parity["overall"]["max_abs_diff"]) if check_parity else float("nan"))


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


def _parity(core: Any, fp32: Any, int8: Any, size: int, held_out: list[Path], tolerance: Tolerance | str | None,
            crops: Path | str | None) -> dict[str, Any]:  # fmt: skip
    return int8_parity(_runner(_compiled(core, fp32)), _runner(_compiled(core, int8)), size, held_out, tolerance, crops)
