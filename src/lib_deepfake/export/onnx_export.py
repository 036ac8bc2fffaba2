"""Checkpoint -> ONNX with the engine contract, checked and compared against PyTorch before it is kept.

Only the inference sub-graph is exported (backbones -> concat -> bottleneck -> linear -> softmax[:, 1]); the
auxiliary training heads are not part of the graph. Preprocessing (RGB->BGR for official weights, /255,
mean/std) is inside the graph, so every engine takes uint8 [N, S, S, 3] RGB.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lib_deepfake._optional import require
from lib_deepfake.errors import LibDeepfakeError, ParityError
from lib_deepfake.manifest import INPUT_NAME, OUTPUT_NAME, Manifest, contract_io
from lib_deepfake.model.checkpoint import LoadedCheckpoint, load_model
from lib_deepfake.model.inference import InferenceModel
from lib_deepfake.model.testing import random_faces

logger = logging.getLogger(__name__)

# max |prob_fake(ORT) - prob_fake(torch FP32)| allowed before the artifact is rejected
PARITY_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-3}
DEFAULT_OPSET = 18  # the dynamo exporter's minimum; TensorRT 10/11 parse it
MAX_DYNAMIC_BATCH = 4096


@dataclass
class OnnxExportResult:
    path: Path
    manifest: Manifest
    max_abs_diff: float


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


def ort_parity(path: Path, reference: torch.nn.Module, size: int, *, batches: tuple[int, ...] = (1, 3)) -> dict:
    """Run ONNX Runtime (CPU) and the PyTorch FP32 reference on identical random crops."""
    ort = require("onnxruntime", purpose="checking the exported model against PyTorch", extra="cpu")
    session = cpu_session(path)
    diffs = []
    for i, b in enumerate(batches):
        faces = random_faces(b, size, seed=i)
        with torch.inference_mode():
            expected = reference(faces).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: faces.numpy()})[0]
        if got.shape != expected.shape:
            raise ParityError(f"ONNX output shape {got.shape} != PyTorch {expected.shape}")
        diffs.append(abs(got.astype("float64") - expected.astype("float64")))
    import numpy as np

    flat = np.concatenate([d.ravel() for d in diffs])
    return {"max_abs_diff": float(flat.max()), "mean_abs_diff": float(flat.mean()), "samples": int(flat.size),
            "reference": "torch fp32 eager", "runtime": f"onnxruntime {ort.__version__} CPU"}  # fmt: skip


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
    parity_tolerance: float | None = None,
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
        parity_tolerance: max |dprob_fake| accepted; default ``PARITY_TOLERANCE[precision]`` (1e-4 / 2e-3).

    Raises:
        ParityError: the exported model disagrees with PyTorch beyond ``PARITY_TOLERANCE``.
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise LibDeepfakeError(f"output must end in .onnx, got {out.name}")
    if opset < 18:
        raise LibDeepfakeError(f"--opset {opset}: the dynamo exporter supports opset 18 and newer")
    if batch is not None and batch < 1:
        raise LibDeepfakeError(f"--batch must be 'dynamic' or a positive integer, got {batch}")
    net, ckpt = load_model(checkpoint, official_input_size=official_input_size)
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
            parity = ort_parity(tmp, reference, config.input_size, batches=(batch,) if batch else (1, 3))
            tolerance = PARITY_TOLERANCE[precision] if parity_tolerance is None else parity_tolerance
            parity["tolerance"] = tolerance
            logger.info("ONNX parity vs PyTorch FP32: max |dprob| = %.3g", parity["max_abs_diff"])
            if parity["max_abs_diff"] > tolerance:
                raise ParityError(
                    f"exported {precision} ONNX disagrees with PyTorch: max |dprob_fake| = "
                    f"{parity['max_abs_diff']:.3g} > {tolerance:g}; {out.name} was not written"
                )
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
        },  # fmt: skip
    )
    manifest.save(out)
    return OnnxExportResult(out, manifest, float(parity.get("max_abs_diff", float("nan"))))
