"""FP32 contract ONNX -> INT8 (QDQ) ONNX for CPUs, calibrated on face crops, checked against the FP32 model.

Why: on CPUs the FP32 classifier dominates a scan (4xResNet-34 is ~29 GFLOP per face); INT8 convolutions on AVX-512
VNNI / AVX2 run about 3x faster (measured in `bench/results/`). The uint8 input, the preprocessing inside the
graph and the float32 `prob_fake` output are unchanged, so every engine and the pipeline take the file as is.
Accuracy depends on calibration: give crops like the ones the model will see (``--calibration DIR``); random
crops only make a file for speed measurements, and the manifest says which was used.

Crops are drawn from the folder in a seeded random order (not name order: a ``lib-prep`` folder lists every
``fake_*`` video before any ``real_*`` one), and the first ``parity_crops`` of that order are held out. The INT8
model is compared with the FP32 model (:mod:`lib_deepfake.engines.parity`, INT8 limits) on face crops - the
bundled set or the user's ``--crops`` - and on those held-out crops it was not calibrated on; every set must pass.
Per-face INT8 scores of a trained model move more than video scores do (a video averages its faces), so the INT8
limits are mean-based with a loose max. Measured on a trained demo model:
bench/results/int8-accuracy-cpu-amd-epyc-2c.md.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib_deepfake._optional import require
from lib_deepfake.engines.parity import (
    DECISION_THRESHOLD,
    Tolerance,
    compare_sets,
    raise_for_parity,
    resolve_tolerance,
    run_batched,
)
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError
from lib_deepfake.export.manifest_card import card_extra_from_manifest
from lib_deepfake.export.onnx_export import OnnxExportResult, onnx_runner
from lib_deepfake.manifest import INPUT_NAME, Manifest
from lib_deepfake.prep.face_crops import crop_files, parity_crops, read_crops

logger = logging.getLogger(__name__)

__all__ = ["PARITY_CROPS", "calibration_batches", "crop_files", "quantize_int8"]

PARITY_CROPS = 64  # crops held out of calibration for the parity check


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
    for start in range(0, len(files), batch):
        yield read_crops(files[start : start + batch], size)


def quantize_int8(
    source: Path | str,
    out: Path | str,
    *,
    calibration: Path | None = None,
    calibration_limit: int = 256,
    tolerance: Tolerance | str | None = None,
    check_parity: bool = True,
    held_out_crops: int = PARITY_CROPS,
    crops: Path | str | None = None,
) -> OnnxExportResult:
    """Quantize an FP32 contract ONNX (from ``lib-export to-onnx``) to INT8 QDQ with a manifest.

    Args:
        source: the FP32 ONNX; its manifest gives the crop size and model description.
        out: the INT8 .onnx to write (+ ``out.json``).
        calibration: a folder of face crops (PNG/JPG, searched recursively); None = random crops (speed only).
        calibration_limit: at most this many calibration crops.
        tolerance: limits against the FP32 ONNX (:class:`Tolerance`), or ``KEY=VALUE,...`` overrides of the INT8
            defaults; past them the file is removed.
        check_parity: compare with the FP32 model on face crops and on held-out calibration crops.
        held_out_crops: crops of ``calibration`` held out of it for the parity check (up to half of the folder).
        crops: face crops to check on (folder or .npy/.pt) instead of the bundled face-crop set.

    Raises:
        ArtifactMismatchError: the source is not an FP32 contract model.
        ParityError: the INT8 model disagrees with the FP32 model beyond the tolerance (nothing is written).
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
    card = card_extra_from_manifest(manifest)
    size = manifest.input_size
    files = crop_files(calibration) if calibration is not None else None  # listed once: parity and calibration
    held_out = files[: min(held_out_crops, len(files) // 2)] if files is not None and check_parity else []
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
            parity = _parity(source, tmp, size, held_out, tolerance, crops, card["threshold"]["value"])
            raise_for_parity(parity, f"INT8 model disagrees with the FP32 model; {out.name} was not written")
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
            **card,
        },  # fmt: skip
    )
    result.save(out)
    return OnnxExportResult(out, result, float(parity["overall"]["max_abs_diff"]) if check_parity else float("nan"))


def _parity(fp32: Path, int8: Path, size: int, held_out: list[Path], tolerance: Tolerance | str | None,
            crops: Path | str | None, threshold: float = DECISION_THRESHOLD) -> dict[str, Any]:  # fmt: skip
    return int8_parity(onnx_runner(fp32), onnx_runner(int8), size, held_out, tolerance, crops, threshold)


def int8_parity(reference: Callable[[Any], Any], candidate: Callable[[Any], Any], size: int, held_out: list[Path],
                tolerance: Tolerance | str | None, crops: Path | str | None,
                threshold: float = DECISION_THRESHOLD) -> dict[str, Any]:  # fmt: skip
    """The gate of every INT8 export (ONNX Runtime's QDQ, OpenVINO's NNCF IR): P(fake) of ``candidate`` against
    ``reference`` (callables on uint8 crops) on face crops (the bundled set or ``crops``) and on the ``held_out``
    calibration crops, with the INT8 limits (or ``tolerance``), decisions compared at ``threshold`` (the model
    card's); the :func:`compare_sets` record."""
    name, faces, description = parity_crops(size, crops)
    sets, inputs = {name: faces}, {name: description}
    if held_out:
        sets["held_out"] = read_crops(held_out, size)
        inputs["held_out"] = f"{len(sets['held_out'])} crops of the calibration folder held out of calibration"
    expected = {k: run_batched(reference, v, 16) for k, v in sets.items()}
    actual = {k: run_batched(candidate, v, 16) for k, v in sets.items()}
    limits, override = resolve_tolerance("int8", tolerance)
    result = compare_sets(expected, actual, "int8", tolerance=limits, threshold=threshold, inputs=inputs)
    return {**result, "tolerance_override": override}
