"""Checkpoint -> ONNX with the engine contract, checked and compared against PyTorch before it is kept.

Only the inference sub-graph is exported (backbones -> concat -> bottleneck -> linear -> softmax[:, 1]); the
auxiliary training heads are not part of the graph. Preprocessing (RGB->BGR for official weights, /255,
mean/std) is inside the graph, so every engine takes uint8 [N, S, S, 3] RGB.

The parity check (:mod:`lib_deepfake.engines.parity`) runs ONNX Runtime (CPU) and the PyTorch FP32 model on face
crops - the bundled set, or the user's ``crops`` - and removes the file when logits or probabilities differ beyond
the precision's tolerance; the manifest records the figures, the inputs and the limits applied.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib_deepfake._optional import require
from lib_deepfake.engines.parity import (
    DECISION_THRESHOLD,
    Tolerance,
    compare_sets,
    raise_for_parity,
    resolve_tolerance,
    run_batched,
)
from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.export.manifest_card import card_extra
from lib_deepfake.manifest import INPUT_NAME, OUTPUT_NAME, Manifest, contract_io
from lib_deepfake.model.card import CARD_KEY
from lib_deepfake.model.checkpoint import LoadedCheckpoint, load_model
from lib_deepfake.model.inference import InferenceModel
from lib_deepfake.model.testing import random_faces
from lib_deepfake.prep.face_crops import parity_crops

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18  # the dynamo exporter's minimum; TensorRT 10/11 parse it
MAX_DYNAMIC_BATCH = 4096


@dataclass
class OnnxExportResult:
    path: Path
    manifest: Manifest
    max_abs_diff: float  # max |dprob_fake| of the parity check (NaN when skipped); the manifest has every figure


def _with_size(ckpt: LoadedCheckpoint, size: int | None):
    if size is None or size == ckpt.config.input_size:
        return ckpt.config
    if size < 16:
        raise LibDeepfakeError(f"--size must be at least 16, got {size}")
    return replace(ckpt.config, preprocessing=replace(ckpt.config.preprocessing, input_size=size))


def _torch_export(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, batch: int | None) -> None:
    dynamic_shapes = None
    if batch is None:
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)},)
    # The dynamo exporter prints progress lines to stdout even with verbose=False in some versions; keep stdout
    # clean for commands that emit JSON there.
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            external_data=False,  # one self-contained file (TensorRT's parse(bytes) cannot find side files)
            optimize=True,  # folds BatchNorm into Conv/Gemm
            verbose=False,
        )


def _finalise_graph(path: Path, metadata: dict[str, str]) -> None:
    onnx = require("onnx", purpose="ONNX export", extra="export")
    model = onnx.load(str(path))
    ops = {node.op_type for node in model.graph.node}
    if "BatchNormalization" in ops:
        logger.warning("BatchNormalization survived export in %s (not folded)", path.name)
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def cpu_session(path: Path, threads: int = 2) -> Any:
    """A quiet ONNX Runtime CPU session with explicit threads: what every export-time check runs on."""
    ort = require("onnxruntime", purpose="checking exported models", extra="cpu")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_runner(path: Path, *, fixed_batch: int | None = None, threads: int = 2) -> Callable[[torch.Tensor], Any]:
    """``faces uint8 [n, S, S, 3] -> prob_fake [n]`` through ONNX Runtime (CPU); a graph exported for a fixed batch
    gets its last, short chunk padded with copies of the first crop."""
    session = cpu_session(path, threads)

    def infer(faces: torch.Tensor) -> Any:
        x = faces.cpu().numpy()
        n = len(x)
        if fixed_batch is not None and n < fixed_batch:
            x = np.concatenate([x, np.repeat(x[:1], fixed_batch - n, axis=0)])
        return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0][:n]

    return infer


def check_onnx_parity(path: Path, reference: torch.nn.Module, size: int, precision: str, *,
                      tolerance: Tolerance | str | None = None, crops: Path | str | None = None,
                      fixed_batch: int | None = None,
                      threshold: float = DECISION_THRESHOLD) -> dict[str, Any]:  # fmt: skip
    """ONNX Runtime (CPU) against the PyTorch FP32 ``reference`` on face crops; the :func:`compare_sets` record.

    Args:
        tolerance: limits, or ``KEY=VALUE,...`` overrides of the precision's defaults (recorded as such).
        crops: the user's crops (folder or array file) instead of the bundled face-crop set.
        fixed_batch: the graph's fixed batch size, if it has one.
        threshold: where decisions are compared (the model card's threshold; 0.5 without one).
    """
    ort = require("onnxruntime", purpose="checking the exported model against PyTorch", extra="cpu")
    name, faces, description = parity_crops(size, crops)
    batch = fixed_batch or 16
    expected = run_batched(reference, faces, batch)
    got = run_batched(onnx_runner(path, fixed_batch=fixed_batch), faces, batch)
    limits, override = resolve_tolerance(precision, tolerance)
    result = compare_sets({name: expected}, {name: got}, precision, tolerance=limits, threshold=threshold,
                          inputs={name: description})  # fmt: skip
    return {**result, "tolerance_override": override, "reference": "torch fp32 eager",
            "runtime": f"onnxruntime {ort.__version__} CPU"}  # fmt: skip


def export_onnx(
    checkpoint: Path | str,
    out: Path | str,
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    size: int | None = None,
    official_input_size: int | None = None,
    check_parity: bool = True,
    parity_tolerance: Tolerance | str | None = None,
    crops: Path | str | None = None,
) -> OnnxExportResult:
    """Export a checkpoint (ours or official) to a single-file ONNX model with a manifest.

    Args:
        checkpoint: path of the checkpoint.
        out: the .onnx file to write; ``out + '.json'`` receives the manifest.
        fp16: compute the network in FP16 (uint8 input and float32 output are kept; softmax in FP32).
        opset: ONNX opset (>= 18 with the dynamo exporter).
        batch: fixed batch size, or None for a dynamic batch axis.
        size: crop size S to export for (default: the checkpoint's).
        official_input_size: crop size assumed for official checkpoints, which do not record it.
        check_parity: compare with PyTorch FP32 on ONNX Runtime CPU and delete the file when it disagrees.
        parity_tolerance: limits (:class:`Tolerance`), or ``KEY=VALUE,...`` overrides of the precision's defaults
            (:data:`~lib_deepfake.engines.parity.DEFAULT_TOLERANCES`); recorded in the manifest.
        crops: face crops to check on (a folder of images or a uint8 [N, S, S, 3] .npy/.pt) instead of the bundled
            face-crop set.

    Raises:
        ParityError: the exported model disagrees with PyTorch beyond the tolerance (nothing is written).
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise LibDeepfakeError(f"output must end in .onnx, got {out.name}")
    if opset < 18:
        raise LibDeepfakeError(f"--opset {opset}: the dynamo exporter supports opset 18 and newer")
    if batch is not None and batch < 1:
        raise LibDeepfakeError(f"--batch must be 'dynamic' or a positive integer, got {batch}")
    net, ckpt = load_model(checkpoint, official_input_size=official_input_size)
    card = card_extra(ckpt.extra.get(CARD_KEY), source=ckpt.source)  # before the export: a bad card stops it
    config = _with_size(ckpt, size)
    precision = "fp16" if fp16 else "fp32"
    reference = InferenceModel(net, config.preprocessing).eval()
    exported = InferenceModel(copy.deepcopy(net), config.preprocessing, torch.float16 if fp16 else torch.float32)
    example = random_faces(batch or 2, config.input_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        _torch_export(exported.eval(), example, tmp, opset, batch)
        metadata = {
            "lib_deepfake.contract": "faces uint8 [N,S,S,3] RGB -> prob_fake float32 [N]",
            "lib_deepfake.input_size": str(config.input_size),
            "lib_deepfake.channel_order": config.preprocessing.channel_order,
            "lib_deepfake.backbone": config.backbone,
            "lib_deepfake.num_libs": str(config.num_libs),
            "lib_deepfake.precision": precision,
            "lib_deepfake.source_checkpoint_sha256": ckpt.sha256,
        }
        _finalise_graph(tmp, metadata)
        parity: dict[str, Any] = {"skipped": True}
        if check_parity:
            parity = check_onnx_parity(tmp, reference, config.input_size, precision, tolerance=parity_tolerance,
                                       crops=crops, fixed_batch=batch,
                                       threshold=card["threshold"]["value"])  # fmt: skip
            logger.info("ONNX parity vs PyTorch FP32: %s", parity["overall"])
            raise_for_parity(parity, f"exported {precision} ONNX disagrees with PyTorch FP32; {out.name} was not "
                             "written")  # fmt: skip
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    onnx = require("onnx", purpose="ONNX export", extra="export")
    manifest = Manifest(
        format="onnx",
        precision=precision,
        io=contract_io(config.input_size, batch),
        model=config.to_dict(),
        source_checkpoint_sha256=ckpt.sha256,
        source=ckpt.source,
        extra={
            "opset": opset,
            "exporter": "torch.onnx (dynamo)",
            "onnx": onnx.__version__,
            "parity": parity,
            "dynamic_batch": batch is None,
            "checkpoint": str(checkpoint),
            **card,
        },  # fmt: skip
    )
    manifest.save(out)
    return OnnxExportResult(out, manifest, float(parity["overall"]["max_abs_diff"]) if check_parity else float("nan"))
