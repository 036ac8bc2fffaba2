"""Optimisers and learning-rate schedules of both recipes (method.md §4.2, §5.7).

Schedules are pure functions of a step counter (easy to test and to resume): the loop sets every param group's
``lr`` to ``group["base_lr"] * factor`` before each optimiser step.

* official: Adam (L2 weight decay) rebuilt at the start of every epoch; per-iteration cosine with T_max = 150 and
  eta_min = 0 restarted every epoch (periodic: 0 at iteration 150, back to base at 300); the halving rule on
  per-epoch mean losses of the selection split; the σ group at Adam's default 1e-3, never halved.
* default: AdamW (decoupled decay, none on biases, norms and σ's) built once; linear warm-up then one cosine over
  the whole run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

OFFICIAL_T_MAX = 150
OFFICIAL_SIGMA_LR = 1e-3  # torch.optim.Adam's default lr, which the official σ group inherits


def official_cosine_factor(iteration: int, t_max: int = OFFICIAL_T_MAX) -> float:
    """``CosineAnnealingLR(T_max, eta_min=0)`` stepped ``iteration`` times, as a fraction of the base LR.

    PyTorch keeps following the cosine past T_max, so this is periodic with period 2·T_max.
    """
    return 0.5 * (1.0 + math.cos(math.pi * iteration / t_max))


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up to 1 over ``warmup_steps``, then a cosine to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class HalvingRule:
    """The official LR halving: with at least 5 per-epoch losses, halve when any of the last 5 rose over its
    predecessor, then forget the history (method.md §4.2)."""

    def __init__(self, history: Iterable[float] = ()) -> None:
        self.history = [float(v) for v in history]

    def observe(self, loss: float) -> None:
        self.history.append(float(loss))

    def should_halve(self) -> bool:
        if len(self.history) < 5:
            return False
        last = self.history[-5:]
        if any(b > a for a, b in zip(last, last[1:])):
            self.history = []
            return True
        return False


def _split_decay(params: Iterable[tuple[str, nn.Parameter]]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in params:
        if not p.requires_grad:
            continue
        # Biases and BatchNorm affine parameters are 1-D; decaying them only hurts (standard AdamW practice).
        (no_decay if p.ndim <= 1 else decay).append(p)
    return decay, no_decay


def build_optimizer(
    recipe: str, net: nn.Module, balancer: nn.Module, *, lr: float, weight_decay: float, fused: bool = False
) -> torch.optim.Optimizer:
    """The optimiser of ``recipe``. Each group records its ``base_lr`` (the schedule's reference) and ``role``."""
    sigma = [p for p in balancer.parameters() if p.requires_grad]
    if recipe == "official":
        groups = [
            {
                "params": [p for p in net.parameters() if p.requires_grad],
                "lr": lr,
                "weight_decay": weight_decay,
                "base_lr": lr,
                "role": "net",
            }
        ]
        if sigma:
            groups.append(
                {
                    "params": sigma,
                    "lr": OFFICIAL_SIGMA_LR,
                    "weight_decay": weight_decay,
                    "base_lr": OFFICIAL_SIGMA_LR,
                    "role": "sigma",
                }
            )
        return torch.optim.Adam(groups, lr=lr, fused=True if fused else None)
    decay, no_decay = _split_decay(net.named_parameters())
    groups = [
        {"params": decay, "lr": lr, "weight_decay": weight_decay, "base_lr": lr, "role": "net"},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0, "base_lr": lr, "role": "net_no_decay"},
    ]
    if sigma:
        groups.append({"params": sigma, "lr": lr, "weight_decay": 0.0, "base_lr": lr, "role": "sigma"})
    return torch.optim.AdamW(groups, lr=lr, fused=True if fused else None)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def halve_base_lr(optimizer: torch.optim.Optimizer) -> None:
    """Official halving: only the network groups (the σ group keeps 1e-3)."""
    for group in optimizer.param_groups:
        if group.get("role") != "sigma":
            group["base_lr"] = group["base_lr"] / 2
