"""Comparing an engine with the PyTorch FP32 reference on identical inputs (used by lib-bench and lib-export verify).

Metrics on P(fake): max and mean absolute difference, decision agreement at 0.5, and the number of samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from lib_deepfake.engines.base import Engine

#: default max |dprob_fake| vs the FP32 PyTorch reference, by (engine, precision); (None, precision) = any engine.
#: TensorRT FP32 plans use TF32 tensor cores by default (BuilderFlag.TF32), hence the looser FP32 bound there.
DEFAULT_TOLERANCES: dict[tuple[str | None, str], float] = {
    (None, "fp32"): 1e-4,
    ("trt", "fp32"): 1e-3,
    (None, "fp16"): 1e-2,
    (None, "bf16"): 3e-2,
    (None, "unknown"): 1e-4,
}
DECISION_THRESHOLD = 0.5


def default_tolerance(engine: str, precision: str) -> float:
    return DEFAULT_TOLERANCES.get((engine, precision), DEFAULT_TOLERANCES.get((None, precision), 1e-4))


@dataclass
class ParityResult:
    """Agreement of P(fake) between an engine and the reference on the same inputs."""

    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    agreement: float  # fraction of samples with the same decision at DECISION_THRESHOLD
    tolerance: float | None = None
    passed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_probs(
    reference: torch.Tensor, candidate: torch.Tensor, *, tolerance: float | None = None, min_agreement: float = 0.0
) -> ParityResult:
    """Compare two float [N] P(fake) tensors (any device).

    Args:
        reference: the PyTorch FP32 reference.
        candidate: the engine under test.
        tolerance: max |dprob| allowed; None = report only.
        min_agreement: minimal decision agreement to pass.
    """
    ref = reference.detach().double().cpu().reshape(-1)
    got = candidate.detach().double().cpu().reshape(-1)
    if ref.shape != got.shape:
        raise ValueError(f"cannot compare {tuple(ref.shape)} with {tuple(got.shape)} probabilities")
    diff = (ref - got).abs()
    agreement = float(((ref >= DECISION_THRESHOLD) == (got >= DECISION_THRESHOLD)).double().mean())
    max_diff = float(diff.max()) if diff.numel() else 0.0
    if not torch.isfinite(got).all():
        max_diff = float("inf")
    passed = None if tolerance is None else bool(max_diff <= tolerance and agreement >= min_agreement)
    return ParityResult(int(ref.numel()), max_diff, float(diff.mean()) if diff.numel() else 0.0, agreement,
                        tolerance, passed)  # fmt: skip


def run_batched(engine: Engine, faces: torch.Tensor, batch: int) -> torch.Tensor:
    """P(fake) float32 [N] on the CPU for uint8 [N, S, S, 3] ``faces`` (any device; moved to the engine's)."""
    outs = []
    for start in range(0, faces.shape[0], batch):
        chunk = faces[start : start + batch].to(engine.device)
        outs.append(engine.infer(chunk).clone().float().cpu())  # clone: engines may reuse output buffers
    return torch.cat(outs)
