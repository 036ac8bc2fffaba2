"""Checkpoint -> AOTInductor package (``.pt2``): the inference graph compiled ahead of time by torch.export +
AOTInductor, with the engine contract (uint8 [N, S, S, 3] RGB in, float32 P(fake) [N] out, preprocessing inside) and
a dynamic batch axis.

Why: TensorRT's builder cannot be installed everywhere, while AOTInductor ships with torch itself: on a CUDA machine
the package holds Triton kernels tuned for that GPU (FP16, ``max_autotune``), on a CPU C++/OpenMP kernels. The
package is tied to the torch version and the device it was compiled for (like a TensorRT plan to its GPU); the
manifest records both and :class:`~lib_deepfake.engines.aoti_engine.AotiEngine` refuses a mismatch.

Contract checks (tested on CPU with a tiny model): the uint8 input stays uint8 (the cast and normalisation are
compiled into the graph), the batch axis is symbolic from 1 to ``max_batch``, and P(fake) is compared with the FP32
PyTorch model on the face-crop set before the package is kept.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.manifest import Manifest, contract_io

logger = logging.getLogger(__name__)

MAX_BATCH = 4096
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}


@dataclass
class AotiExportResult:
    path: Path
    manifest: Manifest
    compile_s: float


def compile_options(device: torch.device) -> dict[str, Any]:
    """Inductor settings of the package: on CUDA, max-autotune (GEMM/convolution templates timed on this GPU); on
    CPU the defaults (the C++ kernels are vectorised for the CPU's ISA without tuning runs)."""
    return {"max_autotune": True} if device.type == "cuda" else {}


def device_facts(device: torch.device) -> dict[str, Any]:
    """What a package is bound to besides the torch version: the device kind, and on CUDA the GPU."""
    facts: dict[str, Any] = {"device": device.type}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts.update(gpu_name=props.name, compute_capability=f"{props.major}.{props.minor}")
    return facts


def export_aoti(
    checkpoint: Path | str,
    out: Path | str,
    *,
    device: str = "cpu",
    precision: str | None = None,
    max_batch: int = MAX_BATCH,
    opt_batch: int | None = None,
    official_input_size: int | None = None,
    check_parity: bool = True,
    inductor_configs: dict[str, Any] | None = None,
) -> AotiExportResult:
    """Compile ``checkpoint`` into an AOTInductor package at ``out`` with a manifest at ``out.json``.

    Args:
        checkpoint: our checkpoint or an official one.
        out: the ``.pt2`` file to write.
        device: ``cpu`` or ``cuda[:N]``: where the package will run (kernels are generated for it).
        precision: ``fp16`` (the GPU mode) or ``fp32``; default fp16 on CUDA, fp32 on CPU. uint8 input,
            normalisation and softmax stay FP32.
        max_batch: the largest batch the package accepts (the batch axis is dynamic from 1).
        opt_batch: the batch size of the example input, which Inductor takes as the size hint when it chooses and
            (on CUDA, max-autotune) times its kernels; default 256 on CUDA, 16 on CPU (within 2..``max_batch``).
        official_input_size: crop size of an official checkpoint.
        check_parity: compare with the FP32 PyTorch model on face crops and keep nothing when it fails.
        inductor_configs: Inductor settings over :func:`compile_options` (e.g.
            ``{"aot_inductor.compile_wrapper_opt_level": "O0"}`` compiles the host wrapper several times faster).

    Raises:
        LibDeepfakeError: bad arguments (fp16 on CPU, wrong suffix); ParityError: the package disagrees.
    """
    from lib_deepfake.engines.base import parse_device, require_cuda
    from lib_deepfake.export.manifest_card import card_extra
    from lib_deepfake.model.card import CARD_KEY
    from lib_deepfake.model.checkpoint import load_model
    from lib_deepfake.model.inference import InferenceModel
    from lib_deepfake.model.testing import random_faces

    out = Path(out)
    if out.suffix != ".pt2":
        raise LibDeepfakeError(f"output must end in .pt2 (an AOTInductor package), got {out.name}")
    dev = parse_device(device)
    require_cuda(dev, "lib-export to-aoti")
    precision = precision or ("fp16" if dev.type == "cuda" else "fp32")
    if precision not in PRECISIONS:
        raise LibDeepfakeError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and dev.type != "cuda":
        raise LibDeepfakeError("fp16 AOTInductor packages are the GPU mode: use --device cuda, or --precision fp32")
    if not 1 <= max_batch <= MAX_BATCH:
        raise LibDeepfakeError(f"max batch must be in 1..{MAX_BATCH}, got {max_batch}")
    net, ckpt = load_model(checkpoint, official_input_size=official_input_size)
    card = card_extra(ckpt.extra.get(CARD_KEY), source=ckpt.source)  # before compiling: a bad card stops it
    size = ckpt.config.input_size
    reference = InferenceModel(net, ckpt.config.preprocessing).eval().to(dev)
    model = InferenceModel(copy.deepcopy(net), ckpt.config.preprocessing, PRECISIONS[precision]).eval().to(dev)
    # A dynamic axis needs an example of at least 2: torch.export specialises dimensions of size 1.
    opt_batch = max(2, min(opt_batch or (256 if dev.type == "cuda" else 16), max_batch)) if max_batch > 1 else 1
    example = random_faces(opt_batch, size).to(dev)
    # One symbolic batch axis from 1 (single faces run through the same kernels; tested at N = 1, 5, 17).
    dynamic = ({0: torch.export.Dim("batch", min=1, max=max_batch)},) if max_batch > 1 else None
    configs = {**compile_options(dev), **(inductor_configs or {})}  # copied at the call: Inductor adds its own keys
    start = time.perf_counter()
    exported = torch.export.export(model, (example,), dynamic_shapes=dynamic)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.pt2")
    try:
        torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp), inductor_configs=dict(configs))
        compile_s = time.perf_counter() - start
        parity: dict[str, Any] = {"skipped": True}
        if check_parity:
            parity = _parity(tmp, reference, dev, precision, size, max_batch)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    manifest = Manifest(
        format="aoti",
        precision=precision,
        io=contract_io(size, 1 if max_batch == 1 else None),
        model=ckpt.config.to_dict(),
        source_checkpoint_sha256=ckpt.sha256,
        source=ckpt.source,
        extra={
            "torch": torch.__version__,
            **device_facts(dev),
            "max_batch": max_batch,
            "opt_batch": opt_batch,
            "inductor_configs": configs,
            "compile_s": round(compile_s, 1),
            "parity": parity,
            "checkpoint": str(checkpoint),
            **card,
        },  # fmt: skip
    )
    manifest.save(out)
    return AotiExportResult(out, manifest, compile_s)


def _parity(package: Path, reference: torch.nn.Module, device: torch.device, precision: str, size: int,
            max_batch: int) -> dict[str, Any]:  # fmt: skip
    from lib_deepfake.engines.parity import compare_sets, raise_for_parity, run_batched
    from lib_deepfake.prep.face_crops import parity_crops

    name, faces, description = parity_crops(size)
    runner = torch._inductor.aoti_load_package(str(package), device_index=device.index if device.index else -1)
    batch = min(16, max_batch)
    expected = run_batched(lambda x: reference(x.to(device)), faces, batch)
    got = run_batched(lambda x: runner(x.to(device)), faces, batch)
    result = compare_sets({name: expected}, {name: got}, precision, engine="aoti", inputs={name: description})
    raise_for_parity(result, f"AOTInductor {precision} package disagrees with PyTorch FP32; nothing was written")
    return {**result, "reference": "torch fp32 eager"}
