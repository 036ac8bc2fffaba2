"""``lib-export verify``: run an artifact and the PyTorch FP32 reference on the same crops and compare P(fake).

Inputs are deterministic random crops (:func:`lib_deepfake.model.testing.random_faces`) and, when given, real
face crops (a folder of images, or a ``.npy``/``.pt`` uint8 [N, S, S, 3] array). Reported per set and overall:
max |dprob|, mean |dprob| and decision agreement at 0.5; the verdict uses a tolerance per engine and precision
(:data:`lib_deepfake.engines.parity.DEFAULT_TOLERANCES`) unless one is given.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class VerifyReport:
    artifact: str
    reference: str
    engine: dict[str, Any]
    device: str
    tolerance: float
    min_agreement: float
    overall: dict[str, Any]
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.overall.get("passed"))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def load_crops(path: Path | str, size: int, limit: int | None = None) -> torch.Tensor:
    """Real face crops as uint8 [N, size, size, 3] RGB (CPU).

    Args:
        path: a folder of images (resized to ``size`` with bilinear filtering when needed), or a ``.npy``/``.pt``
            file holding uint8 [N, S, S, 3].
        size: the model's crop size.
        limit: keep at most this many.
    """
    path = Path(path)
    if path.is_dir():
        import numpy as np
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
        if not files:
            raise LibDeepfakeError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
        crops = []
        for file in files:
            with Image.open(file) as img:
                rgb = img.convert("RGB")
                if rgb.size != (size, size):
                    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
                crops.append(torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()))
        return torch.stack(crops)
    if path.suffix == ".npy":
        import numpy as np

        data = torch.from_numpy(np.load(path, allow_pickle=False))
    elif path.suffix in (".pt", ".pth"):
        data = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise LibDeepfakeError(f"--crops must be a folder of images, a .npy or a .pt file, got {path.name}")
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8 or tuple(data.shape[1:]) != (size, size, 3):
        shape = list(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise LibDeepfakeError(f"{path.name}: expected uint8 [N, {size}, {size}, 3] crops, got {shape}")
    return data[:limit] if limit else data


def verify_artifact(
    artifact: Path | str,
    reference: Path | str,
    *,
    device: str = "cpu",
    samples: int = 64,
    batch: int = 16,
    crops: Path | str | None = None,
    tolerance: float | None = None,
    min_agreement: float = 0.99,
    seed: int = 1234,
    official_input_size: int | None = None,
    engine: str | None = None,
    **engine_options: Any,
) -> VerifyReport:
    """Compare ``artifact`` (any engine's artifact) with the FP32 PyTorch reference of ``reference``.

    Args:
        artifact: .onnx, .plan/.engine or a checkpoint (then torch with ``engine_options`` is compared with FP32
            eager torch).
        reference: the checkpoint the artifact was made from.
        device: where both run (``cuda`` for TensorRT).
        samples: number of random crops.
        batch: batch size for both.
        crops: optional real crops (see :func:`load_crops`).
        tolerance: max |dprob| allowed (default: by engine and precision).
        min_agreement: minimal decision agreement at 0.5.
        seed: seed of the random crops.
        official_input_size: crop size of an official reference checkpoint.
        engine: run ``artifact`` with this engine (e.g. ``openvino`` for a .onnx); default: from its suffix.
        **engine_options: passed to the engine (``provider=``, ``allow_cpu_fallback=``, ...).
    """
    from lib_deepfake.engines.parity import compare_probs, default_tolerance, run_batched
    from lib_deepfake.engines.registry import create_engine
    from lib_deepfake.engines.torch_engine import TorchEngine
    from lib_deepfake.model.testing import random_faces

    if samples < 1 and crops is None:
        raise LibDeepfakeError("nothing to compare: --samples is 0 and no --crops given")
    with (
        TorchEngine(reference, device=device, official_input_size=official_input_size) as ref_engine,
        create_engine(engine or artifact, artifact if engine else None, device=device, **engine_options) as engine,
    ):
        size = engine.input_size
        if size != ref_engine.input_size:
            raise ArtifactMismatchError(
                f"{Path(artifact).name} takes {size}px crops but the reference {Path(reference).name} takes "
                f"{ref_engine.input_size}px: is it the checkpoint this artifact was exported from?"
            )
        tol = tolerance if tolerance is not None else default_tolerance(engine.name, engine.precision)
        inputs: dict[str, torch.Tensor] = {}
        if samples > 0:
            inputs["random"] = random_faces(samples, size, seed=seed)
        if crops is not None:
            inputs["real"] = load_crops(crops, size)
        sets: dict[str, dict[str, Any]] = {}
        all_ref, all_got = [], []
        for name, faces in inputs.items():
            expected = run_batched(ref_engine, faces, batch)
            got = run_batched(engine, faces, batch)
            sets[name] = compare_probs(expected, got, tolerance=tol, min_agreement=min_agreement).to_dict()
            all_ref.append(expected)
            all_got.append(got)
        overall = compare_probs(torch.cat(all_ref), torch.cat(all_got), tolerance=tol, min_agreement=min_agreement)
        info = asdict(engine.info())
    report = VerifyReport(str(artifact), str(reference), info, device, tol, min_agreement, overall.to_dict(), sets)
    logger.info("verify %s: max |dprob| %.3g, agreement %.4f", Path(artifact).name, overall.max_abs_diff,
                overall.agreement)  # fmt: skip
    return report
