"""``lib-export verify``: run an artifact and the PyTorch FP32 reference on the same face crops and compare them.

Inputs are the bundled face-crop set (:mod:`lib_deepfake.prep.face_crops`) or the user's crops (a folder of images,
or a ``.npy``/``.pt`` uint8 [N, S, S, 3] array); never random noise, which saturates a trained model's outputs.
The comparison and its limits are :mod:`lib_deepfake.engines.parity`'s: log-odds and P(fake) differences and
decision agreement, judged against the artifact's precision (and engine) unless limits are given.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lib_deepfake.engines.parity import DECISION_THRESHOLD, Tolerance
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError

logger = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    """What ``lib-export verify`` found; ``parity`` is the :func:`~lib_deepfake.engines.parity.compare_sets`
    record (sets, overall, tolerance, inputs, passed, failures)."""

    artifact: str
    reference: str
    engine: dict[str, Any]
    device: str
    parity: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.parity.get("passed"))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def verify_artifact(
    artifact: Path | str,
    reference: Path | str,
    *,
    device: str = "cpu",
    samples: int | None = None,
    batch: int = 16,
    crops: Path | str | None = None,
    tolerance: Tolerance | str | None = None,
    threshold: float | None = None,
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
        samples: at most this many crops (default: all of them).
        batch: batch size for both.
        crops: the user's face crops (folder, .npy or .pt) instead of the bundled face-crop set.
        tolerance: limits, or ``KEY=VALUE,...`` overrides of the defaults for the artifact's precision and engine.
        threshold: where decisions are compared [the threshold in the artifact's manifest (its model card's), else
            0.5].
        official_input_size: crop size of an official reference checkpoint.
        engine: run ``artifact`` with this engine (e.g. ``openvino`` for a .onnx); default: from its suffix.
        **engine_options: passed to the engine (``provider=``, ``allow_cpu_fallback=``, ...).
    """
    from lib_deepfake.engines.parity import compare_sets, resolve_tolerance, run_batched
    from lib_deepfake.engines.registry import create_engine
    from lib_deepfake.engines.torch_engine import TorchEngine
    from lib_deepfake.prep.face_crops import parity_crops

    if samples is not None and samples < 1:
        raise LibDeepfakeError(f"--samples must be at least 1, got {samples}")
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
        limits, override = resolve_tolerance(engine.precision, tolerance, engine.name)
        if threshold is None:
            carried = (engine.manifest.extra.get("threshold") or {}) if engine.manifest is not None else {}
            threshold = float(carried.get("value", DECISION_THRESHOLD))
        name, faces, description = parity_crops(size, crops, samples)
        expected = run_batched(ref_engine, faces, batch)
        got = run_batched(engine, faces, batch)
        parity = compare_sets({name: expected}, {name: got}, engine.precision, tolerance=limits,
                              threshold=threshold, inputs={name: description})  # fmt: skip
        info = asdict(engine.info())
    parity = {**parity, "tolerance_override": override, "reference": "torch fp32 eager"}
    report = VerifyReport(str(artifact), str(reference), info, device, parity)
    logger.info("verify %s: %s", Path(artifact).name, parity["overall"])
    return report
