"""What ``lib-bench engines`` needs beyond the FP32/FP16 ONNX and the TensorRT plan: which (engine, precision) rows
this machine can run (and why not, for the ones it cannot), and the artifacts of the other rows - the INT8 models
calibrated on face crops (QDQ ONNX for ONNX Runtime, NNCF IR for OpenVINO) and the AOTInductor package.

Artifacts are kept in the work folder and reused while their manifest still matches (same checkpoint, same
calibration crops, same torch for AOTInductor packages), like the ONNX and TensorRT ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lib_deepfake.errors import LibDeepfakeError

logger = logging.getLogger(__name__)

#: engine -> the precisions it can be benchmarked in (hardware permitting, see :func:`row_skip_reason`)
ENGINE_PRECISIONS = {
    "torch": ("fp32", "fp16", "bf16"),
    "onnxrt": ("fp32", "fp16", "int8"),
    "trt": ("fp16", "fp32"),
    "openvino": ("fp32", "bf16", "int8"),
    "aoti": ("fp16", "fp32"),
}

EnsureOnnx = Callable[[Path, Path, str, "int | None"], "tuple[Path, dict[str, Any]]"]


def row_skip_reason(engine: str, precision: str, device: str) -> str | None:
    """None when ``engine`` can run ``precision`` on ``device`` here; otherwise why not (one line, shown in the
    result's notes - an unsupported row is never dropped silently)."""
    from lib_deepfake.engines.cpu_caps import cpu_caps
    from lib_deepfake.engines.registry import engine_availability

    if precision not in ENGINE_PRECISIONS.get(engine, ()):
        return f"{engine} has no {precision} mode"
    on_cuda = torch.device(device).type == "cuda"
    if engine == "openvino" and on_cuda:
        return "the openvino engine runs on CPUs"
    if engine == "onnxrt" and precision == "int8" and on_cuda:
        return "INT8 QDQ models are the CPU path of ONNX Runtime (use trt on GPUs)"
    if engine == "aoti" and precision == "fp16" and not on_cuda:
        return "AOTInductor fp16 is the GPU mode (fp32 on CPUs)"
    if not on_cuda and precision == "bf16" and not cpu_caps().bf16:
        return f"{cpu_caps().name} has no AVX512_BF16/AMX-BF16 instructions (bf16 would be emulated)"
    if not on_cuda and precision == "fp16" and engine in ("torch", "onnxrt"):
        return "fp16 on a CPU is emulated (no fp16 row on CPUs)"
    avail = engine_availability(engine, device)
    if not avail:
        return f"{engine} is not usable here: {avail.reason}"
    if engine == "openvino" and precision == "bf16":
        from lib_deepfake.engines.openvino_engine import bf16_availability

        bf16 = bf16_availability()
        if not bf16:
            return bf16.reason
    return None


def calibration_folder(calibration: Path | None, work_dir: Path, size: int) -> tuple[Path, str]:
    """The face crops INT8 rows are calibrated on: ``calibration`` when given, else the bundled face-crop set
    (:mod:`lib_deepfake.prep.face_crops`) written once as PNG files under ``work_dir`` (the quantizers read folders).

    Returns:
        (folder, description for the result).
    """
    if calibration is not None:
        return Path(calibration), f"--calibration {calibration}"
    import cv2

    from lib_deepfake.prep.face_crops import load_face_crop_set

    crops = load_face_crop_set(size)
    folder = work_dir / f"face-crops-s{size}-{crops.sha256[:12]}"
    if len(list(folder.glob("*.png"))) != len(crops):
        folder.mkdir(parents=True, exist_ok=True)
        for i, (crop, name) in enumerate(zip(crops.crops, crops.names)):
            cv2.imwrite(str(folder / f"{i:03d}-{name.replace('/', '-')}.png"), crop[..., ::-1])
    return folder, crops.describe()


def _reusable(path: Path, **expect: Any) -> bool:
    from lib_deepfake.manifest import Manifest

    manifest = Manifest.load(path) if path.is_file() else None
    if manifest is None:
        return False
    fields = {"precision": manifest.precision, "sha": manifest.source_checkpoint_sha256, **manifest.extra}
    return all(fields.get(k) == v for k, v in expect.items())


def prepare_artifact(engine: str, precision: str, *, checkpoint: Path, work_dir: Path, device: str,
                     calibration: Path | None, official_input_size: int | None,
                     ensure_onnx: EnsureOnnx) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """The artifact of an openvino, aoti or int8 row, made (or reused) in ``work_dir``.

    Args:
        ensure_onnx: the runner's ``(checkpoint, work_dir, precision, official_input_size) -> (onnx, prep)``, which
            makes the FP32 ONNX these start from.

    Returns:
        (artifact path, prep facts: kind, reused, prep_s and, for INT8, the calibration crops). INT8 models are made
        without their export gate: the benchmark checks every row against the reference on face crops, and a
        failing row is reported as failed (an export gate would end the whole run instead).
    """
    from lib_deepfake.model.checkpoint import file_sha256

    sha = file_sha256(checkpoint)
    if engine == "aoti":
        return _aoti(checkpoint, work_dir, device, precision, sha, official_input_size)
    onnx_path, onnx_prep = ensure_onnx(checkpoint, work_dir, "fp32", official_input_size)
    if precision != "int8":  # openvino fp32/bf16 run the FP32 ONNX itself
        return onnx_path, onnx_prep
    from lib_deepfake.manifest import Manifest

    size = Manifest.load(onnx_path).input_size  # type: ignore[union-attr]
    folder, described = calibration_folder(calibration, work_dir, size)
    source = str(folder)
    start = time.perf_counter()
    if engine == "onnxrt":
        from lib_deepfake.export.quantize import quantize_int8

        out = work_dir / f"{checkpoint.stem}.int8.onnx"
        reused = _reusable(out, precision="int8", sha=sha) and _calibrated_on(out, source)
        if not reused:
            quantize_int8(onnx_path, out, calibration=folder, check_parity=False)
    elif engine == "openvino":
        from lib_deepfake.export.openvino_int8 import quantize_openvino

        out = work_dir / f"{checkpoint.stem}.int8.xml"
        reused = _reusable(out, precision="int8", sha=sha) and _calibrated_on(out, source)
        if not reused:
            quantize_openvino(onnx_path, out, calibration=folder, check_parity=False)
    else:
        raise LibDeepfakeError(f"no int8 artifact for the {engine} engine")
    return out, {"kind": f"{engine} int8 quantization", "reused": reused,
                 "prep_s": onnx_prep["prep_s"] + (0.0 if reused else time.perf_counter() - start),
                 "calibration": described, "gate": "the benchmark's parity check of the row"}  # fmt: skip


def _calibrated_on(path: Path, source: str) -> bool:
    from lib_deepfake.manifest import Manifest

    manifest = Manifest.load(path)
    calib = (manifest.extra.get("quantization") or {}).get("calibration") or {} if manifest else {}
    return calib.get("source") == source


def _aoti(checkpoint: Path, work_dir: Path, device: str, precision: str, sha: str,
          official_input_size: int | None) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    from lib_deepfake.engines.base import parse_device
    from lib_deepfake.export.aoti import device_facts, export_aoti

    dev = parse_device(device)
    out = work_dir / f"{checkpoint.stem}.{precision}.{dev.type}.pt2"
    if _reusable(out, precision=precision, sha=sha, torch=torch.__version__, **device_facts(dev)):
        return out, {"kind": "aoti compile", "reused": True, "prep_s": 0.0}
    result = export_aoti(checkpoint, out, device=device, precision=precision, official_input_size=official_input_size)
    return out, {"kind": "aoti compile", "reused": False, "prep_s": result.compile_s}
