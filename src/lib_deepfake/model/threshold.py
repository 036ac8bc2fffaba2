"""Choosing the decision threshold on validation scores, and saying where a threshold came from.

The verdict rule everywhere (``lib-infer``, ``lib-eval``) is **fake when score >= threshold**. A rule picks one
cut of the validation ROC curve:

- ``eer``: the cut where the false-positive rate is closest to the false-negative rate (the EER point);
- ``youden``: the cut that maximises TPR - FPR (Youden's J);
- ``target-fpr:F``: the highest TPR among the cuts whose FPR <= F (e.g. ``target-fpr:0.01``: at most 1 % of real
  videos flagged on the validation split).

The threshold is placed halfway between the lowest score the cut calls fake and the next lower score, so the
validation verdicts do not flip when another engine (FP16, INT8) moves a score by a hair. Pure NumPy; used by
lib-train (end of training), lib-export (manifest), lib-infer and lib-eval (default threshold).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lib_deepfake.errors import ContractError

__all__ = [
    "DEFAULT_THRESHOLD",
    "ResolvedThreshold",
    "ThresholdChoice",
    "ThresholdRule",
    "choose_threshold",
    "metrics_at_threshold",
    "resolve_threshold",
    "roc_cuts",
]

#: What a model without a calibrated threshold (official checkpoints, older files) is judged with.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ThresholdRule:
    """A parsed ``--threshold-rule``: ``eer``, ``youden`` or ``target-fpr:F`` (0 <= F < 1)."""

    kind: str
    target_fpr: float | None = None

    @classmethod
    def parse(cls, text: str) -> ThresholdRule:
        value = text.strip().lower()
        if value in ("eer", "youden"):
            return cls(value)
        if value.startswith("target-fpr:"):
            try:
                target = float(value.split(":", 1)[1])
            except ValueError:
                target = -1.0
            if not 0.0 <= target < 1.0:
                raise ContractError(f"threshold rule {text!r}: target-fpr needs a rate in [0, 1), e.g. target-fpr:0.01")
            return cls("target-fpr", target)
        raise ContractError(f"unknown threshold rule {text!r}: use eer, youden or target-fpr:F (e.g. target-fpr:0.01)")

    def __str__(self) -> str:
        return f"target-fpr:{self.target_fpr:g}" if self.kind == "target-fpr" else self.kind


def _check(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.size != s.size:
        raise ContractError(f"{y.size} labels but {s.size} scores")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ContractError("labels must be 0 (real) or 1 (fake)")
    if not np.isfinite(s).all() or (s.size and (s.min() < 0.0 or s.max() > 1.0)):
        raise ContractError("scores must be probabilities P(fake) in [0, 1]")
    return y, s


def metrics_at_threshold(labels: Any, scores: Any, threshold: float) -> dict[str, Any]:
    """Confusion-matrix rates of the verdict ``score >= threshold`` (label 1 = fake = positive).

    Returns:
        ``threshold, n, n_real, n_fake, acc, balanced_acc, tpr, fpr, tnr, fnr, precision``; a rate whose
        denominator is zero is None.
    """
    y, s = _check(labels, scores)
    pred = s >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    n_fake = int((y == 1).sum())
    n_real = int(y.size - n_fake)

    def rate(num: int, den: int) -> float | None:
        return num / den if den else None

    tpr, fpr = rate(tp, n_fake), rate(fp, n_real)
    return {
        "threshold": float(threshold),
        "n": int(y.size),
        "n_real": n_real,
        "n_fake": n_fake,
        "acc": rate(tp + (n_real - fp), int(y.size)),
        "balanced_acc": (tpr + (1 - fpr)) / 2 if tpr is not None and fpr is not None else None,
        "tpr": tpr,
        "fpr": fpr,
        "tnr": None if fpr is None else 1 - fpr,
        "fnr": None if tpr is None else 1 - tpr,
        "precision": rate(tp, tp + fp),
    }


def roc_cuts(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct cut of the ROC curve, from "nothing fake" to "everything fake".

    Returns:
        (thresholds, fpr, tpr), float64 [K]: with ``threshold[k]`` the verdict ``score >= threshold[k]`` has these
        rates. Thresholds sit halfway between adjacent distinct scores (the "nothing fake" cut halfway to 1.0; it
        is left out when a score is exactly 1.0, where no threshold in [0, 1] calls nothing fake).

    Raises:
        ContractError: fewer than both classes.
    """
    y, s = _check(labels, scores)
    n_fake = int(y.sum())
    n_real = int(y.size - n_fake)
    if n_fake == 0 or n_real == 0:
        raise ContractError("choosing a threshold needs real and fake samples in the validation scores")
    uniq, inverse = np.unique(s, return_inverse=True)
    uniq, pos = uniq[::-1], np.bincount(inverse, weights=y, minlength=uniq.size)[::-1]
    neg = np.bincount(inverse, minlength=uniq.size)[::-1] - pos
    tpr = np.concatenate([[0.0], np.cumsum(pos) / n_fake])
    fpr = np.concatenate([[0.0], np.cumsum(neg) / n_real])
    upper = np.concatenate([[1.0], uniq])  # cut k calls fake the scores >= uniq[k - 1], below upper[k]
    lower = np.concatenate([uniq, [0.0]])
    thr = (upper + lower) / 2
    # adjacent doubles can round the midpoint onto either neighbour: fall back to the lowest score called fake
    bad = ~((thr > lower) & (thr <= upper))
    bad[0] = False
    thr[bad] = upper[bad]
    keep = np.ones(thr.size, dtype=bool)
    if uniq[0] >= 1.0:
        keep[0] = False
    return thr[keep], fpr[keep], tpr[keep]


@dataclass
class ThresholdChoice:
    """A chosen threshold and where it came from.

    Attributes:
        value: the threshold (verdict fake when score >= value).
        rule: the rule text (``eer``, ``youden``, ``target-fpr:0.01``).
        level: which scores it was chosen on: ``video`` (one score per video, as lib-infer judges) or ``frame``.
        split: the split of those scores (``val``).
        datasets: the datasets of that split.
        metrics: :func:`metrics_at_threshold` on those scores, plus ``eer`` for the eer rule and ``target_met``
            for target-fpr.
    """

    value: float
    rule: str
    level: str = "video"
    split: str = "val"
    datasets: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdChoice:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def describe(self) -> str:
        where = f"{self.split} {self.level}s" + (f" of {', '.join(self.datasets)}" if self.datasets else "")
        return f"{self.value:.4g} ({self.rule} on {where})"


def choose_threshold(
    labels: Any,
    scores: Any,
    rule: str | ThresholdRule = "eer",
    *,
    level: str = "video",
    split: str = "val",
    datasets: list[str] | tuple[str, ...] = (),
) -> ThresholdChoice:
    """Pick the threshold by ``rule`` from validation ``labels`` (1 = fake) and ``scores`` (P(fake)).

    Ties between cuts go to the higher threshold (fewer false alarms).

    Raises:
        ContractError: unknown rule, one class only, scores outside [0, 1].
    """
    parsed = rule if isinstance(rule, ThresholdRule) else ThresholdRule.parse(rule)
    thr, fpr, tpr = roc_cuts(labels, scores)
    fnr = 1.0 - tpr
    extra: dict[str, Any] = {}
    if parsed.kind == "eer":
        gap = np.abs(fnr - fpr)
        k = int(np.lexsort((fpr + fnr, gap))[0])
        extra["eer"] = float((fpr[k] + fnr[k]) / 2)
    elif parsed.kind == "youden":
        k = int(np.argmax(tpr - fpr))
    else:
        target = float(parsed.target_fpr or 0.0)
        ok = np.flatnonzero(fpr <= target + 1e-12)
        met = ok.size > 0
        k = int(ok[np.argmax(tpr[ok])]) if met else int(np.argmin(fpr))
        extra["target_met"] = bool(met)
    value = float(thr[k])
    metrics = {**metrics_at_threshold(labels, scores, value), **extra}
    return ThresholdChoice(value, str(parsed), level, split, list(datasets), metrics)


@dataclass(frozen=True)
class ResolvedThreshold:
    """The threshold a run uses and, in words, where it came from (for run.json, eval.json and report headers).

    ``origin``: ``option`` (given on the command line), ``model`` (calibrated, from the model card) or
    ``default`` (0.5: the model carries no calibrated threshold).
    """

    value: float
    origin: str
    text: str
    rule: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_threshold(choice: ThresholdChoice | None, override: float | None = None) -> ResolvedThreshold:
    """``override`` if given, else the model's calibrated threshold, else 0.5 - and say which."""
    if override is not None:
        return ResolvedThreshold(float(override), "option", f"{override:g} (given with --threshold)")
    if choice is not None:
        return ResolvedThreshold(choice.value, "model", f"{choice.describe()}, from the model card", choice.rule)
    return ResolvedThreshold(
        DEFAULT_THRESHOLD, "default", f"{DEFAULT_THRESHOLD} (default: the model carries no calibrated threshold)"
    )
