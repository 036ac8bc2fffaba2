"""Balancing the loss terms (method.md §3.6): learnable uncertainty weights, fixed scales, or a plain sum.

Balancers are modules so their parameters (the ``auto`` σ's) are optimised, saved in checkpoints and restored on
resume - the official code did neither of the last two.
"""

from __future__ import annotations

import torch
from torch import nn

from lib_deepfake.train.losses import TERM_ORDER


class Balancer(nn.Module):
    """Turns ``{name: term}`` (order ce, gil, lil) into one scalar."""

    def forward(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def weights(self) -> dict[str, float]:
        """Effective multiplier of each term, for logging."""
        return {}


class AutoBalance(Balancer):
    """AutomaticWeightedLoss: ``Σ_k 0.5/σ_k² · L_k + log(1 + σ_k²)`` with one σ per enabled term, σ initialised to 1.

    Args:
        names: the enabled terms, in order.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self.names = tuple(names)
        self.params = nn.Parameter(torch.ones(len(self.names)))

    def forward(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        if tuple(terms) != self.names:
            raise ValueError(f"expected terms {self.names}, got {tuple(terms)}")
        sigma2 = self.params.float() ** 2
        total = torch.zeros((), device=self.params.device)
        for k, name in enumerate(self.names):
            total = total + 0.5 / sigma2[k] * terms[name] + torch.log(1 + sigma2[k])
        return total

    def weights(self) -> dict[str, float]:
        with torch.no_grad():
            return {n: float(0.5 / (p * p)) for n, p in zip(self.names, self.params.detach().cpu())}


class HyperBalance(Balancer):
    """Fixed scales given in the code's order (CE, GIL, LIL).

    Args:
        names: the enabled terms, in order.
        scales: three numbers for CE, GIL and LIL.
        by_position: the official behaviour: the k-th *enabled* term gets ``scales[k]`` (with GIL off, LIL gets the
            GIL scale). False: each term gets its own scale whatever is switched off.
    """

    def __init__(self, names: tuple[str, ...], scales: tuple[float, float, float], by_position: bool) -> None:
        super().__init__()
        self.names = tuple(names)
        if by_position:
            self.scale_of = {n: float(scales[k]) for k, n in enumerate(self.names)}
        else:
            self.scale_of = {n: float(scales[TERM_ORDER.index(n)]) for n in self.names}

    def forward(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.scale_of[n] * terms[n] for n in self.names)  # type: ignore[return-value]

    def weights(self) -> dict[str, float]:
        return dict(self.scale_of)


class SumBalance(Balancer):
    """No balancing: the plain sum (the official fallback for any other method name)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self.names = tuple(names)

    def forward(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(terms[n] for n in self.names)  # type: ignore[return-value]

    def weights(self) -> dict[str, float]:
        return dict.fromkeys(self.names, 1.0)


def create_balancer(
    method: str,
    names: tuple[str, ...],
    scales: tuple[float, float, float] = (1.0, 2.0, 10.0),
    by_position: bool = False,
) -> Balancer:
    if method == "auto":
        return AutoBalance(names)
    if method == "hyper":
        return HyperBalance(names, scales, by_position)
    if method == "none":
        return SumBalance(names)
    raise ValueError(f"balance must be auto, hyper or none, got {method!r}")
