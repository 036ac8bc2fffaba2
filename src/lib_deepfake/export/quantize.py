"""FP32 contract ONNX -> INT8 (QDQ) ONNX for CPUs, calibrated on face crops, checked against the FP32 model.

Why: on CPUs the FP32 classifier dominates a scan (4xResNet-34 is ~29 GFLOP per face); INT8 convolutions on AVX-512
VNNI / AVX2 run about 3x faster (measured in `bench/results/`). The uint8 input, the preprocessing inside the
graph and the float32 `prob_fake` output are unchanged, so every engine and the pipeline take the file as is.
Accuracy depends on calibration: give crops like the ones the model will see (``--calibration DIR``); random
crops only make a file for speed measurements, and the manifest says which was used.

Crops are drawn from the folder in a seeded random order (not name order: a ``lib-prep`` folder lists every
``fake_*`` video before any ``real_*`` one), and the first ``parity_crops`` of that order are held out: the INT8
model is compared with the FP32 model on those real crops it was not calibrated on. Per-face INT8 scores of a
trained model move more than video scores do (a video averages its faces), so the gate is on the *mean*
|dP(fake)|; max, 95th percentile and decision agreement are recorded beside it. Measured on a trained demo model:
bench/results/int8-accuracy-cpu-amd-epyc-2c.md.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib_deepfake._optional import require
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError, ParityError
from lib_deepfake.export.onnx_export import OnnxExportResult, cpu_session
from lib_deepfake.manifest import INPUT_NAME, OUTPUT_NAME, Manifest

logger = logging.getLogger(__name__)

INT8_TOLERANCE = 0.05  # mean |dprob_fake| against the FP32 model on held-out crops, accepted by default
PARITY_CROPS = 64  # crops held out of calibration for the parity check
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def crop_files(folder: Path, *, seed: int = 0) -> list[Path]:
    """Every image under ``folder`` in a seeded random order (classes mixed whatever the folder names).

    Raises:
        LibDeepfakeError: no image there.
    """
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise LibDeepfakeError(f"no calibration images (.png/.jpg) under {folder}")
    order = np.random.default_rng(seed).permutation(len(files))
    return [files[i] for i in order]


def calibration_batches(source: Path | Sequence[Path] | None, size: int, *, batch: int = 8, limit: int = 256,
                        skip: int = 0) -> Iterator[np.ndarray]:  # fmt: skip
    """uint8 [B, S, S, 3] RGB batches: up to ``limit`` crops (resized to S) after the first ``skip`` (held out for
    parity) of ``source`` - a folder, read in :func:`crop_files` order, or that list already made - or random
    crops when ``source`` is None."""
    if source is None:
        from lib_deepfake.model.testing import random_faces

        for i in range(max(1, limit // batch)):
            yield random_faces(batch, size, seed=100 + i).numpy()
        return
    files = crop_files(source) if isinstance(source, (str, Path)) else list(source)
    yield from _read_batches(files[skip : skip + limit], size, batch)


def _read_batches(files: list[Path], size: int, batch: int) -> Iterator[np.ndarray]:
    cv2 = require("cv2", purpose="reading calibration crops")
    chunk: list[np.ndarray] = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            logger.warning("skipping unreadable calibration image %s", path)
            continue
        if bgr.shape[:2] != (size, size):
            bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_LINEAR)
        chunk.append(bgr[..., ::-1])  # crops on disk hold true colours; the contract is RGB
        if len(chunk) == batch:
            yield np.ascontiguousarray(np.stack(chunk))
            chunk = []
    if chunk:
        yield np.ascontiguousarray(np.stack(chunk))


def quantize_int8(
    source: Path | str,
    out: Path | str,
    *,
    calibration: Path | None = None,
    calibration_limit: int = 256,
    tolerance: float = INT8_TOLERANCE,
    check_parity: bool = True,
    parity_crops: int = PARITY_CROPS,
) -> OnnxExportResult:
    """Quantize an FP32 contract ONNX (from ``lib-export to-onnx``) to INT8 QDQ with a manifest.

    Args:
        source: the FP32 ONNX; its manifest gives the crop size and model description.
        out: the INT8 .onnx to write (+ ``out.json``).
        calibration: a folder of face crops (PNG/JPG, searched recursively); None = random crops (speed only).
        calibration_limit: at most this many calibration crops.
        tolerance: mean |dprob_fake| against the FP32 ONNX on the parity crops; past it the file is removed.
        check_parity: compare with the FP32 model on held-out crops (calibration crops are not reused).
        parity_crops: crops of ``calibration`` held out for the parity check (up to half of the folder); without a
            folder the check runs on synthetic random faces, and says so.

    Raises:
        ArtifactMismatchError: the source is not an FP32 contract model.
        ParityError: the INT8 model disagrees with the FP32 model beyond ``tolerance``.
    """
    quantization = require("onnxruntime.quantization", purpose="INT8 quantization", extra="cpu")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, out = Path(source), Path(out)
    if out.suffix != ".onnx":
        raise LibDeepfakeError(f"output must end in .onnx, got {out.name}")
    manifest = Manifest.load(source)
    if manifest is None or manifest.format != "onnx":
        raise ArtifactMismatchError(f"{source.name} has no ONNX manifest ({source.name}.json): export it with "
                                    "lib-export to-onnx first")  # fmt: skip
    if manifest.precision != "fp32":
        raise ArtifactMismatchError(f"{source.name} is {manifest.precision}; INT8 quantization starts from FP32")
    size = manifest.input_size
    files = crop_files(calibration) if calibration is not None else None  # listed once: parity and calibration
    held_out = files[: min(parity_crops, len(files) // 2)] if files is not None and check_parity else []
    batches = list(calibration_batches(files, size, limit=calibration_limit, skip=len(held_out)))

    class _Reader(quantization.CalibrationDataReader):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._it, None)
            return None if batch is None else {INPUT_NAME: batch}

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with tempfile.TemporaryDirectory() as work:
            pre = Path(work) / "pre.onnx"
            quant_pre_process(str(source), str(pre), skip_optimization=False)
            quantization.quantize_static(
                str(pre), str(tmp), _Reader(), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
                op_types_to_quantize=["Conv", "Gemm", "MatMul"],
            )  # fmt: skip
        parity: dict[str, Any] = {"skipped": True}
        if check_parity:
            parity = _parity(source, tmp, size, held_out)
            parity["tolerance"] = tolerance
            if parity["mean_abs_diff"] > tolerance:
                raise ParityError(
                    f"INT8 model disagrees with the FP32 model on {parity['inputs']}: mean |dprob_fake| = "
                    f"{parity['mean_abs_diff']:.3g} > {tolerance:g} (max {parity['max_abs_diff']:.3g}, decision "
                    f"agreement {parity['agreement']:.3f}); {out.name} was not written"
                )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    calib = {"source": str(calibration) if calibration else "random crops (speed measurements only)",
             "crops": int(sum(len(b) for b in batches))}  # fmt: skip
    result = Manifest(
        format="onnx",
        precision="int8",
        io=manifest.io,
        model=manifest.model,
        source_checkpoint_sha256=manifest.source_checkpoint_sha256,
        source=str(source),
        extra={
            "quantization": {
                "format": "QDQ",
                "weights": "int8 per channel",
                "activations": "uint8",
                "ops": ["Conv", "Gemm", "MatMul"],
                "calibration": calib,
            },
            "parity": {**parity, "reference": "the FP32 ONNX (onnxruntime CPU)"},
        },  # fmt: skip
    )
    result.save(out)
    return OnnxExportResult(out, result, float(parity.get("max_abs_diff", float("nan"))))


def _parity(fp32: Path, int8: Path, size: int, held_out: list[Path]) -> dict[str, Any]:
    from lib_deepfake.model.testing import random_faces

    ref, got = cpu_session(fp32), cpu_session(int8)
    if held_out:
        batches = list(_read_batches(held_out, size, 16))
        inputs = f"{sum(len(b) for b in batches)} held-out crops of the calibration folder"
    else:
        batches = [random_faces(16, size, seed=7).numpy()]
        inputs = "16 synthetic random faces (no calibration folder)"
    a = np.concatenate([ref.run([OUTPUT_NAME], {INPUT_NAME: x})[0] for x in batches]).astype(np.float64)
    b = np.concatenate([got.run([OUTPUT_NAME], {INPUT_NAME: x})[0] for x in batches]).astype(np.float64)
    diff = np.abs(a - b)
    return {"inputs": inputs, "samples": int(diff.size), "mean_abs_diff": float(diff.mean()),
            "p95_abs_diff": float(np.percentile(diff, 95)), "max_abs_diff": float(diff.max()),
            "agreement": float(np.mean((a >= 0.5) == (b >= 0.5)))}  # fmt: skip
