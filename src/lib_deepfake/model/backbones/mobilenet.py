"""MobileNetV1 in the official LIB layout (method.md §1.3): `model` Sequential of 15 entries, plain ReLU, and an
unused `fc` kept so official checkpoints load strictly."""

from __future__ import annotations

import torch
from torch import nn

from lib_deepfake.model.registry import register_backbone

# (in, out, stride) of the 13 depthwise-separable blocks, at width 1.0
_DW_BLOCKS = (
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 1024, 2),
    (1024, 1024, 1),
)


def _conv_bn(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))


def _conv_dw(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.ReLU(inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


class MobileNetV1Features(nn.Module):
    def __init__(self, width_mult: float = 1.0) -> None:
        super().__init__()

        def c(ch: int) -> int:
            return max(8, int(round(ch * width_mult)))

        layers: list[nn.Module] = [_conv_bn(3, c(32), 2)]
        layers += [_conv_dw(c(i), c(o), s) for i, o, s in _DW_BLOCKS]
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.model = nn.Sequential(*layers)
        self.num_features = c(1024)
        # Present in the official module (and so in its checkpoints) but never used in forward.
        self.fc = nn.Linear(self.num_features, 1000)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


@register_backbone("mobilenet", family="mobilenet", num_features=1024)
def mobilenet(*, width_mult: float = 1.0, **_: object) -> MobileNetV1Features:
    return MobileNetV1Features(width_mult=width_mult)
