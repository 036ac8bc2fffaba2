"""The LIB network (method.md §1.1): N independent backbones over the same crop, fused by an MLP.

Module names mirror the official ``MI_Net`` so state_dicts map 1:1: ``region_model{i}``, ``local_linear{i}``,
``bottleneck.model.{0,1,4,5,8}``, ``baseline_linear``, ``linear.1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lib_deepfake.model.config import LIBConfig
from lib_deepfake.model.registry import backbone_spec


@dataclass(frozen=True)
class LIBOutput:
    """Raw logits of every head (no softmax).

    Attributes:
        fused: [B, 2] logits of p(y | G), G = bottleneck(Z); the prediction (official ``p_y_given_z``).
        concat: [B, 2] logits of p(y | Z) from ``baseline_linear`` (official ``p_y_given_f_all``); training only.
        leave_one_out: N x [B, 2] logits of p(y | Z without z_i) (official ``p_y_given_f1_fn_list``); training only.
    """

    fused: torch.Tensor
    concat: torch.Tensor
    leave_one_out: tuple[torch.Tensor, ...]

    def prob_fake(self) -> torch.Tensor:
        return torch.softmax(self.fused.float(), dim=1)[:, 1]


class ChannelCompress(nn.Module):
    """The fusion layer: n*d -> 1000 -> 500 -> d with BN1d, ReLU and Dropout(0.5), stored in ``model``."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(in_ch, 1000),
            nn.BatchNorm1d(1000),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1000, 500),
            nn.BatchNorm1d(500),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(500, out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LIBNet(nn.Module):
    """LIB detector. ``forward(x)`` takes normalised float [B, 3, S, S] in the weights' channel order."""

    def __init__(self, config: LIBConfig) -> None:
        super().__init__()
        self.config = config
        spec = backbone_spec(config.backbone)
        n = config.num_libs
        for i in range(1, n + 1):
            self.add_module(f"region_model{i}", spec.builder(width_mult=config.width_mult))
        # The feature size is read off the module, not probed with a noise batch in train mode (official bug §5.6).
        d = self.region_model1.num_features
        self.num_features = d
        for i in range(1, n + 1):
            self.add_module(f"local_linear{i}", nn.Linear((n - 1) * d, config.num_classes))
        self.bottleneck = ChannelCompress(n * d, d)
        self.baseline_linear = nn.Linear(n * d, config.num_classes)
        self.linear = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(d, config.num_classes))

    @property
    def backbones(self) -> list[nn.Module]:
        return [getattr(self, f"region_model{i}") for i in range(1, self.config.num_libs + 1)]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [m(x) for m in self.backbones]

    def forward(self, x: torch.Tensor) -> LIBOutput:
        feats = self.features(x)
        z = torch.cat(feats, dim=1)
        fused = self.linear(self.bottleneck(z))
        concat = self.baseline_linear(z)
        loo = []
        for i in range(len(feats)):
            rest = torch.cat([f for j, f in enumerate(feats) if j != i], dim=1)
            loo.append(getattr(self, f"local_linear{i + 1}")(rest))
        return LIBOutput(fused=fused, concat=concat, leave_one_out=tuple(loo))

    def fused_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Only the prediction path (backbones -> concat -> bottleneck -> linear); what inference and export run."""
        return self.linear(self.bottleneck(torch.cat(self.features(x), dim=1)))


def create_lib(config: LIBConfig | None = None, **overrides: object) -> LIBNet:
    """Build a randomly initialised LIB network. Pretrained backbones: :func:`lib_deepfake.model.pretrained`."""
    if config is None:
        config = LIBConfig(**overrides)  # type: ignore[arg-type]
    elif overrides:
        raise TypeError("pass either a config or keyword overrides, not both")
    return LIBNet(config)
