"""The LIB objective (method.md §3): cross-entropy on every head, Global and Local Information Losses.

Notation: ``s_z`` fused-head logits (the prediction), ``s_all`` concatenation-head logits, ``s_i`` leave-one-LIB-out
logits, ``σ`` softmax over classes, ``T`` the temperature. Every divergence is called as the official code calls
``nn.KLDivLoss``: ``calc(log p_teacher, p_student)`` = KL(p_student ‖ p_teacher), the gradient flowing through the
student (the *target* argument), the teacher detached where the official code detaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lib_deepfake.model.lib import LIBOutput

MICalculator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TERM_ORDER = ("ce", "gil", "lil")


def kl_calculator(reduction: str = "mean") -> MICalculator:
    """KL(p_student ‖ p_teacher) as ``nn.KLDivLoss(reduction)(log_p_teacher, p_student)``.

    ``"mean"`` (the official default) averages over all B x C elements, i.e. 1/C of the per-sample KL;
    ``"batchmean"`` is the per-sample mean KL.
    """
    if reduction not in ("mean", "batchmean"):
        raise ValueError(f"KL reduction must be mean or batchmean, got {reduction!r}")

    def kl(log_p_teacher: torch.Tensor, p_student: torch.Tensor) -> torch.Tensor:
        total = F.kl_div(log_p_teacher, p_student, reduction="sum")
        # Spelled out: PyTorch announced that reduction="mean" will become "batchmean" in a future release.
        return total / (p_student.numel() if reduction == "mean" else p_student.shape[0])

    return kl


def sinkhorn_distance(
    x: torch.Tensor, y: torch.Tensor, *, eps: float = 0.01, max_iter: int = 100, thresh: float = 0.1, stable: bool
) -> torch.Tensor:
    """Entropic optimal-transport cost between the rows of ``x`` [B, C] and of ``y`` [B, C] (uniform weights).

    The batch is one point cloud (method.md §3.5). ``stable=False`` is the official iteration: log-sum-exp as
    ``log(Σ exp + 1e-6)`` without max subtraction (it can overflow at ε = 0.01); ``stable=True`` uses
    ``torch.logsumexp``. Returns a scalar (sum of plan x cost).
    """
    cost = (x.unsqueeze(-2) - y.unsqueeze(-3)).pow(2).sum(-1)  # [B, B]
    n_x, n_y = x.shape[-2], y.shape[-2]
    log_mu = torch.full((n_x,), 1.0 / n_x, dtype=x.dtype, device=x.device).add(1e-8).log()
    log_nu = torch.full((n_y,), 1.0 / n_y, dtype=y.dtype, device=y.device).add(1e-8).log()
    u = torch.zeros(n_x, dtype=x.dtype, device=x.device)
    v = torch.zeros(n_y, dtype=y.dtype, device=y.device)

    def kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (-cost + u.unsqueeze(-1) + v.unsqueeze(-2)) / eps

    def lse(a: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(a, dim=-1) if stable else torch.log(torch.exp(a).sum(-1) + 1e-6)

    for _ in range(max_iter):
        u_prev = u
        u = eps * (log_mu - lse(kernel(u, v))) + u
        v = eps * (log_nu - lse(kernel(u, v).transpose(-2, -1))) + v
        if (u - u_prev).abs().sum(-1).mean().item() < thresh:
            break
    plan = torch.exp(kernel(u, v))
    return (plan * cost).sum()


def sinkhorn_calculator(stable: bool) -> MICalculator:
    """``--mi-calculator w``. Official (``stable=False``): compares the teacher's log-probabilities with the student's
    probabilities, as the official call sites do. Fixed (``stable=True``): both sides as probabilities and a
    stabilised log-sum-exp."""

    def w(log_p_teacher: torch.Tensor, p_student: torch.Tensor) -> torch.Tensor:
        first = log_p_teacher.exp() if stable else log_p_teacher
        return sinkhorn_distance(first, p_student, stable=stable)

    return w


@dataclass(frozen=True)
class LossSettings:
    """Which terms and how (method.md §3). ``lil_method`` ``mi`` is what official training runs."""

    gil: bool = True
    lil: bool = True
    lil_method: str = "mi"
    calculator: str = "kl"
    kl_reduction: str = "mean"
    sinkhorn_stable: bool = False
    temperature: float = 1.5

    def term_names(self) -> tuple[str, ...]:
        return tuple(n for n in TERM_ORDER if n == "ce" or (n == "gil" and self.gil) or (n == "lil" and self.lil))


def _mixed_ce(logits: torch.Tensor, labels: torch.Tensor, mix: tuple[float, torch.Tensor] | None) -> torch.Tensor:
    if mix is None:
        return F.cross_entropy(logits, labels)
    lam, perm = mix
    return lam * F.cross_entropy(logits, labels) + (1.0 - lam) * F.cross_entropy(logits, labels[perm])


class LIBCriterion:
    """Computes the enabled terms in the official order ``ce, gil, lil``.

    Args:
        settings: what to compute.
    """

    def __init__(self, settings: LossSettings) -> None:
        self.settings = settings
        if settings.calculator == "kl":
            self.mi: MICalculator = kl_calculator(settings.kl_reduction)
        elif settings.calculator == "w":
            self.mi = sinkhorn_calculator(settings.sinkhorn_stable)
        else:
            raise ValueError(f"mi calculator must be kl or w, got {settings.calculator!r}")
        if settings.lil_method not in ("mi", "distance"):
            raise ValueError(f"lil method must be mi or distance, got {settings.lil_method!r}")

    def __call__(
        self, out: LIBOutput, labels: torch.Tensor, mix: tuple[float, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Loss terms.

        Args:
            out: logits of every head (any float dtype; computed in float32 here).
            labels: int64 [B], 1 = fake.
            mix: ``(lambda, permutation int64 [B])`` when the input was mixed up: only the CE terms depend on the
                labels, each is mixed as λ·L(y) + (1-λ)·L(y[perm]) (method.md §3.7).

        Returns:
            ``{"ce": ..., "gil": ..., "lil": ...}`` (enabled terms only, in that order), scalars.
        """
        s = self.settings
        t = s.temperature
        fused = out.fused.float()
        concat = out.concat.float()
        loo = [o.float() for o in out.leave_one_out]
        ce = _mixed_ce(fused, labels, mix)
        if s.gil:
            ce = ce + _mixed_ce(concat, labels, mix)
        if s.lil and s.lil_method == "mi":
            for logits in loo:
                ce = ce + _mixed_ce(logits, labels, mix)
        terms = {"ce": ce}
        log_p_all = F.log_softmax(concat.detach() / t, dim=1)
        if s.gil:
            terms["gil"] = self.mi(log_p_all, F.softmax(fused / t, dim=1))
        if s.lil:
            if s.lil_method == "mi":
                divergences = [self.mi(log_p_all, F.softmax(logits / t, dim=1)) for logits in loo]
                terms["lil"] = torch.exp(-torch.stack(divergences).sum())
            else:
                total = torch.zeros((), device=fused.device)
                for i in range(len(loo)):
                    for j in range(i + 1, len(loo)):
                        total = total + self.mi(F.log_softmax(loo[i] / t, dim=1), F.softmax(loo[j] / t, dim=1))
                terms["lil"] = 1.0 - total
        return terms
