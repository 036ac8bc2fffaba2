"""The one parity check: an artifact's P(fake) against a reference's on the same face crops, per precision.

Used by ``lib-export to-onnx``/``quantize``/``verify`` and ``lib-bench engines``. Two kinds of error matter:

- **logits**: the log-odds ``log(p / (1 - p))``, which for the two-class head is exactly ``z_fake - z_real``.
  It shows errors anywhere on the scale, including where P(fake) is flat near 0 or 1. Engines return only
  P(fake) (float32), so the log-odds are recovered from it; near 1, float32 steps by 6e-8, so both sides are
  clipped to ``[1e-4, 1 - 1e-4]`` (|logit| <= :data:`LOGIT_LIMIT`, 9.21), where that step moves the log-odds by
  at most 6e-4. Outputs at that limit are *saturated*: both sides agree there whatever the error, which is why
  parity must run on face crops rather than noise (the report gives the fraction of saturated reference outputs).
- **probabilities**: |dP(fake)|, and whether the decision at the threshold agrees.

Tolerances (:data:`DEFAULT_TOLERANCES`) are per precision: set so that a healthy export of a trained model passes
and a model with three large weight tensors scaled by 1.05 fails (tests/export/test_parity_sees_errors.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from lib_deepfake.errors import LibDeepfakeError, ParityError

if TYPE_CHECKING:
    import torch

    from lib_deepfake.engines.base import Engine

__all__ = [
    "DECISION_THRESHOLD",
    "DEFAULT_TOLERANCES",
    "LOGIT_LIMIT",
    "ParityReport",
    "Tolerance",
    "compare_outputs",
    "compare_sets",
    "default_tolerance",
    "fill_batch",
    "log_odds",
    "parse_tolerance",
    "raise_for_parity",
    "resolve_tolerance",
    "run_batched",
]

logger = logging.getLogger(__name__)

DECISION_THRESHOLD = 0.5
_EPS = 1e-4  # float32 P(fake) resolves log-odds to <= 6e-4 up to here (its spacing near 1 is 6e-8)
LOGIT_LIMIT = math.log((1 - _EPS) / _EPS)


@dataclass(frozen=True)
class Tolerance:
    """Limits a comparison must meet; None: not checked.

    Attributes:
        max_dlogit, mean_dlogit: max / mean |d log-odds| over the crops.
        max_dprob, mean_dprob: max / mean |dP(fake)|.
        agreement: minimal fraction of crops with the same decision at the threshold.
    """

    max_dlogit: float | None = None
    mean_dlogit: float | None = None
    max_dprob: float | None = None
    mean_dprob: float | None = None
    agreement: float | None = None

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        """e.g. ``max |dlogit| <= 0.001, agreement >= 0.97``."""
        return ", ".join(_LABEL[k] + (" >= " if k == "agreement" else " <= ") + f"{v:g}"
                         for k, v in self.to_dict().items()) or "none"  # fmt: skip

    def violations(self, metrics: Mapping[str, float]) -> list[str]:
        """One line per limit the metrics break (NaN/inf break every limit)."""
        out = []
        for key, limit in self.to_dict().items():
            value = metrics[_METRIC[key]]
            if key == "agreement" and not value >= limit:
                out.append(f"{_LABEL[key]} {value:.4f} < {limit:g}")
            elif key != "agreement" and not value <= limit:
                out.append(f"{_LABEL[key]} {value:.3g} > {limit:g}")
        return out


_LABEL = {"max_dlogit": "max |dlogit|", "mean_dlogit": "mean |dlogit|", "max_dprob": "max |dprob|",
          "mean_dprob": "mean |dprob|", "agreement": "decision agreement"}  # fmt: skip
# Tolerance field -> ParityReport metric
_METRIC = {"max_dlogit": "max_abs_dlogit", "mean_dlogit": "mean_abs_dlogit", "max_dprob": "max_abs_diff",
           "mean_dprob": "mean_abs_diff", "agreement": "agreement"}  # fmt: skip

#: Limits by (engine, precision); (None, precision) applies to any engine. Set on the bundled face crops with a
#: trained tiny model (2 x ResNet-34 at width 0.25, 32 px; tests/export/test_parity_sees_errors.py), where
#: |dlogit| max / mean was: FP32 ONNX 5e-6 / 6e-7; FP16 ONNX 0.023 / 0.005 (torch .half() alike); torch BF16
#: 0.15 / 0.03; INT8 QDQ 1.06 / 0.073 - and, with three large weight tensors scaled by 1.05, 1.23 / 0.25 (FP32,
#: FP16) and 1.25 / 0.22 (INT8). Rounding moves a few crops a lot and the rest little; a wrong weight moves every
#: crop, so FP16/BF16/INT8 are judged on the mean with a loose max. Full-size checkpoints round more in FP16
#: (max |dprob| up to 0.13 on face crops, torch's own .half() too), which the loose max allows; MobileNet-based
#: models quantize much worse than ResNets (bench/results/int8-accuracy-*: mean |dprob| ~0.07 on face crops), past
#: the INT8 limits, where a 5 % weight error cannot be told from INT8 rounding: such a model needs explicit limits
#: (--parity-tol), recorded in its manifest.
DEFAULT_TOLERANCES: dict[tuple[str | None, str], Tolerance] = {
    (None, "fp32"): Tolerance(max_dlogit=1e-3, max_dprob=1e-4),
    (None, "unknown"): Tolerance(max_dlogit=1e-3, max_dprob=1e-4),  # an ONNX without manifest: judged as FP32
    # TensorRT builds FP32 plans with TF32 tensor cores (10-bit mantissa inputs) by default; not yet measured.
    ("trt", "fp32"): Tolerance(max_dlogit=0.05, mean_dlogit=0.01, agreement=0.95),
    (None, "fp16"): Tolerance(max_dlogit=1.0, mean_dlogit=0.1, agreement=0.9),
    (None, "bf16"): Tolerance(max_dlogit=1.0, mean_dlogit=0.1, agreement=0.9),
    (None, "int8"): Tolerance(max_dlogit=2.0, mean_dlogit=0.12, agreement=0.9),
}


def default_tolerance(precision: str, engine: str | None = None) -> Tolerance:
    """The limits for ``precision`` (fp32, fp16, bf16, int8) on ``engine``.

    Raises:
        LibDeepfakeError: no limits are defined for that precision (pass explicit ones).
    """
    found = DEFAULT_TOLERANCES.get((engine, precision)) or DEFAULT_TOLERANCES.get((None, precision))
    if found is None:
        known = sorted({p for _, p in DEFAULT_TOLERANCES})
        raise LibDeepfakeError(f"no default parity tolerance for precision {precision!r} (known: {', '.join(known)}); "
                               "give one with --parity-tol")  # fmt: skip
    return found


def parse_tolerance(text: str | None, base: Tolerance | None = None) -> Tolerance:
    """``"max_dlogit=0.2,agreement=0.95"`` -> Tolerance; keys not given keep ``base``'s values; ``none`` drops one.

    Raises:
        LibDeepfakeError: unknown key or a value that is not a number >= 0.
    """
    result = base or Tolerance()
    if not text:
        return result
    names = [f.name for f in fields(Tolerance)]
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in names:
            raise LibDeepfakeError(f"parity tolerance {item.strip()!r}: expected KEY=VALUE with KEY one of "
                                   f"{', '.join(names)} (e.g. max_dlogit=0.2,agreement=0.95)")  # fmt: skip
        if value.lower() == "none":
            result = replace(result, **{key: None})
            continue
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not number >= 0:
            raise LibDeepfakeError(f"parity tolerance {key}={value}: expected a number >= 0 or 'none'")
        result = replace(result, **{key: number})
    return result


def resolve_tolerance(precision: str, given: Tolerance | str | None = None,
                      engine: str | None = None) -> tuple[Tolerance, str | None]:  # fmt: skip
    """(limits to apply, the user's override text or None): ``given`` as is, or ``KEY=VALUE`` overrides of the
    precision's defaults, or the defaults."""
    if isinstance(given, Tolerance):
        return given, given.describe()
    if given is not None and not isinstance(given, str):
        raise LibDeepfakeError(f"parity tolerance must be a Tolerance or 'KEY=VALUE,...' text, got {given!r}: a bare "
                               "number no longer says which figure it limits")  # fmt: skip
    if given:
        try:
            base = default_tolerance(precision, engine)
        except LibDeepfakeError:
            base = Tolerance()  # an unknown precision with explicit limits
        return parse_tolerance(given, base), given
    return default_tolerance(precision, engine), None


def log_odds(probs: Any) -> np.ndarray:
    """float64 log(p / (1 - p)) of P(fake), clipped to +-:data:`LOGIT_LIMIT` (the float32 resolution)."""
    p = np.clip(_as_float64(probs), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _as_float64(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, np.float64).reshape(-1)


@dataclass
class ParityReport:
    """Agreement between a reference and a candidate on the same crops.

    ``max_abs_diff``/``mean_abs_diff`` are |dP(fake)|; ``*_dlogit`` are |d log-odds|; ``saturated`` is the fraction
    of reference outputs at the float32 limit of the log-odds (uninformative crops).
    """

    samples: int
    max_abs_dlogit: float
    mean_abs_dlogit: float
    max_abs_diff: float
    mean_abs_diff: float
    agreement: float
    saturated: float
    precision: str
    threshold: float
    tolerance: dict[str, float] = field(default_factory=dict)
    passed: bool | None = None
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line with every metric."""
        return (f"max |dlogit| {self.max_abs_dlogit:.3g}, mean |dlogit| {self.mean_abs_dlogit:.3g}, max |dprob| "
                f"{self.max_abs_diff:.3g}, mean |dprob| {self.mean_abs_diff:.3g}, agreement@{self.threshold:g} "
                f"{self.agreement:.4f} on {self.samples} crops")  # fmt: skip


def compare_outputs(
    reference: Any,
    candidate: Any,
    precision: str,
    *,
    engine: str | None = None,
    tolerance: Tolerance | None = None,
    threshold: float = DECISION_THRESHOLD,
) -> ParityReport:
    """Compare two P(fake) vectors ([N], numpy or torch, any device) and judge them against the tolerance.

    Args:
        reference: P(fake) of the reference (FP32 PyTorch, or the FP32 ONNX for INT8).
        candidate: P(fake) of the artifact under test on the same crops.
        precision: the candidate's precision; picks :func:`default_tolerance` when ``tolerance`` is None.
        engine: the candidate's engine name (TensorRT FP32 has its own limits).
        tolerance: explicit limits (an empty Tolerance only reports).
        threshold: decision threshold for the agreement.
    """
    ref, got = _as_float64(reference), _as_float64(candidate)
    if ref.shape != got.shape:
        raise ValueError(f"cannot compare {ref.shape[0]} reference outputs with {got.shape[0]} candidate outputs")
    if ref.size == 0:
        raise ValueError("no outputs to compare")
    tol = tolerance if tolerance is not None else default_tolerance(precision, engine)
    finite = bool(np.isfinite(got).all())
    dprob = np.abs(ref - got) if finite else np.full_like(ref, np.inf)
    dlogit = np.abs(log_odds(ref) - log_odds(got)) if finite else np.full_like(ref, np.inf)
    agreement = float(np.mean((ref >= threshold) == (got >= threshold))) if finite else 0.0
    report = ParityReport(
        samples=int(ref.size),
        max_abs_dlogit=float(dlogit.max()),
        mean_abs_dlogit=float(dlogit.mean()),
        max_abs_diff=float(dprob.max()),
        mean_abs_diff=float(dprob.mean()),
        agreement=agreement,
        saturated=float(np.mean(np.abs(log_odds(ref)) >= LOGIT_LIMIT * (1 - 1e-9))),
        precision=precision,
        threshold=threshold,
        tolerance=tol.to_dict(),
    )
    if tol.to_dict():
        report.failures = tol.violations(report.to_dict())
        report.passed = not report.failures
    return report


def compare_sets(
    reference: Mapping[str, Any],
    candidate: Mapping[str, Any],
    precision: str,
    *,
    engine: str | None = None,
    tolerance: Tolerance | None = None,
    threshold: float = DECISION_THRESHOLD,
    inputs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """:func:`compare_outputs` per named crop set and over all of them; passes when every set passes.

    Returns:
        ``{"precision", "threshold", "tolerance", "inputs", "sets": {name: report}, "overall": report, "passed",
        "failures"}`` (plain JSON, what manifests and results record).
    """
    tol = tolerance if tolerance is not None else default_tolerance(precision, engine)
    kw = {"engine": engine, "tolerance": tol, "threshold": threshold}
    sets = {name: compare_outputs(reference[name], candidate[name], precision, **kw) for name in reference}
    everything = [np.concatenate([_as_float64(side[n]) for n in reference]) for side in (reference, candidate)]
    overall = compare_outputs(*everything, precision, **kw)
    failures = [f"{name}: {line}" for name, rep in sets.items() for line in rep.failures]
    if overall.saturated > 0.5:
        logger.warning("%.0f%% of the reference outputs are saturated (P(fake) < 1e-4 or > 1 - 1e-4) on these crops: "
                       "the parity check sees little there", 100 * overall.saturated)  # fmt: skip
    return {
        "precision": precision,
        "threshold": threshold,
        "tolerance": tol.to_dict(),
        "inputs": dict(inputs or {}),
        "sets": {name: rep.to_dict() for name, rep in sets.items()},
        "overall": overall.to_dict(),
        "passed": (not failures) if tol.to_dict() else None,
        "failures": failures,
    }


def raise_for_parity(result: Mapping[str, Any], what: str) -> None:
    """Raise :class:`ParityError` naming every broken limit when a :func:`compare_sets` result failed."""
    if result.get("passed") is False:
        overall = result["overall"]
        raise ParityError(
            f"{what}: {'; '.join(result['failures'])} (overall max |dlogit| {overall['max_abs_dlogit']:.3g}, "
            f"max |dprob| {overall['max_abs_diff']:.3g}; limits {Tolerance(**result['tolerance']).describe()})"
        )


def fill_batch(faces: Any, batch: int) -> torch.Tensor:
    """Exactly ``batch`` rows of ``faces`` (its first rows, repeated when it has fewer), contiguous: the input of a
    timed call at a given batch size."""
    import torch

    faces = torch.as_tensor(faces)
    reps = -(-batch // faces.shape[0])
    return (faces if reps == 1 else faces.repeat(reps, 1, 1, 1))[:batch].contiguous()


def run_batched(engine: Engine | Callable[[torch.Tensor], torch.Tensor], faces: Any, batch: int) -> np.ndarray:
    """P(fake) float64 [N] of uint8 [N, S, S, 3] ``faces`` (numpy or torch) through an engine or a callable."""
    import torch

    faces = torch.as_tensor(faces)
    call = engine.infer if hasattr(engine, "infer") else engine
    device = getattr(engine, "device", None)
    outs = []
    for start in range(0, faces.shape[0], batch):
        chunk = faces[start : start + batch]
        with torch.inference_mode():
            out = call(chunk.to(device) if device is not None else chunk)
        outs.append(_as_float64(out).copy())  # copy: engines may reuse their output buffers
    return np.concatenate(outs)
