"""EfficientNet-B0..B7 with the lukemelas/official LIB parameter names and construction-time static SAME padding.

Reproduces method.md §1.4: every convolution pads with amounts computed once, TF-"SAME" style, from the
variant's *native* resolution (b4: 380) even when it is fed another size, because official checkpoints were
trained that way (b4 at 224: `_blocks.6._depthwise_conv` pads (2,2,2,2) where TF-SAME-at-224 would pad
(1,2,1,2)). Swish is ``nn.SiLU`` (numerically what MemoryEfficientSwish computes, and exportable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from lib_deepfake.model.registry import register_backbone


@dataclass(frozen=True)
class _Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    inp: int
    out: int
    se_ratio: float = 0.25


_B0_STAGES = (
    _Stage(1, 3, 1, 1, 32, 16),
    _Stage(2, 3, 2, 6, 16, 24),
    _Stage(2, 5, 2, 6, 24, 40),
    _Stage(3, 3, 2, 6, 40, 80),
    _Stage(3, 5, 1, 6, 80, 112),
    _Stage(4, 5, 2, 6, 112, 192),
    _Stage(1, 3, 1, 6, 192, 320),
)

# variant -> (width coefficient, depth coefficient, native resolution, head dropout)
VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet-b0": (1.0, 1.0, 224, 0.2),
    "efficientnet-b1": (1.0, 1.1, 240, 0.2),
    "efficientnet-b2": (1.1, 1.2, 260, 0.3),
    "efficientnet-b3": (1.2, 1.4, 300, 0.3),
    "efficientnet-b4": (1.4, 1.8, 380, 0.4),
    "efficientnet-b5": (1.6, 2.2, 456, 0.4),
    "efficientnet-b6": (1.8, 2.6, 528, 0.5),
    "efficientnet-b7": (2.0, 3.1, 600, 0.5),
}

_BN_MOMENTUM = 0.01  # TF's 0.99 in PyTorch's convention
_BN_EPS = 1e-3
_DROP_CONNECT = 0.2


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:  # never round down by more than 10 %
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def _out_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    return (math.ceil(size[0] / stride), math.ceil(size[1] / stride))


def _same_pad(size: tuple[int, int], kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TF-SAME padding (left, right, top, bottom) for an input of ``size`` (H, W)."""
    pads = []
    for i in (size[1], size[0]):  # W first: ZeroPad2d takes (left, right, top, bottom)
        total = max((math.ceil(i / stride) - 1) * stride + kernel - i, 0)
        pads.append((total // 2, total - total // 2))
    return (pads[0][0], pads[0][1], pads[1][0], pads[1][1])


class StaticSameConv2d(nn.Conv2d):
    """Conv2d whose zero padding was fixed at construction for ``image_size`` (lukemelas' Conv2dStaticSamePadding).

    The padding module is called ``static_padding`` and has no parameters, so state_dict keys stay
    ``<name>.weight`` / ``<name>.bias`` as in the official checkpoints.
    """

    def __init__(self, cin: int, cout: int, kernel: int, *, image_size: tuple[int, int], stride: int = 1,
                 groups: int = 1, bias: bool = True) -> None:  # fmt: skip
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=bias)
        pad = _same_pad(image_size, kernel, stride)
        self.static_padding: nn.Module = nn.ZeroPad2d(pad) if any(pad) else nn.Identity()
        self.pad_amounts = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.static_padding(x))


class MBConvBlock(nn.Module):
    def __init__(self, stage: _Stage, image_size: tuple[int, int], drop_connect: float) -> None:
        super().__init__()
        self.stage = stage
        self.drop_connect = drop_connect
        inp, hidden = stage.inp, stage.inp * stage.expand
        if stage.expand != 1:
            self._expand_conv = StaticSameConv2d(inp, hidden, 1, image_size=image_size, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, momentum=_BN_MOMENTUM, eps=_BN_EPS)
        self._depthwise_conv = StaticSameConv2d(
            hidden, hidden, stage.kernel, image_size=image_size, stride=stage.stride, groups=hidden, bias=False
        )
        self._bn1 = nn.BatchNorm2d(hidden, momentum=_BN_MOMENTUM, eps=_BN_EPS)
        image_size = _out_size(image_size, stage.stride)
        squeezed = max(1, int(inp * stage.se_ratio))
        self._se_reduce = StaticSameConv2d(hidden, squeezed, 1, image_size=(1, 1))
        self._se_expand = StaticSameConv2d(squeezed, hidden, 1, image_size=(1, 1))
        self._project_conv = StaticSameConv2d(hidden, stage.out, 1, image_size=image_size, bias=False)
        self._bn2 = nn.BatchNorm2d(stage.out, momentum=_BN_MOMENTUM, eps=_BN_EPS)
        self._swish = nn.SiLU()
        self.has_skip = stage.stride == 1 and stage.inp == stage.out

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.stage.expand != 1:
            x = self._swish(self._bn0(self._expand_conv(x)))
        x = self._swish(self._bn1(self._depthwise_conv(x)))
        squeezed = self._se_expand(self._swish(self._se_reduce(torch.mean(x, dim=(2, 3), keepdim=True))))
        x = torch.sigmoid(squeezed) * x
        x = self._bn2(self._project_conv(x))
        if self.has_skip:
            if self.training and self.drop_connect > 0:
                keep = 1.0 - self.drop_connect
                mask = torch.floor(keep + torch.rand((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device))
                x = x / keep * mask
            x = x + inputs
        return x


class EfficientNetFeatures(nn.Module):
    """EfficientNet trunk returning pooled features [B, num_features]; ``_fc`` exists (checkpoints hold it) but
    is not applied, as in the official LIB backbone."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        width, depth, native_res, _dropout = VARIANTS[variant]
        self.variant = variant
        self.native_resolution = native_res
        size = (native_res, native_res)
        stem = round_filters(32, width)
        self._conv_stem = StaticSameConv2d(3, stem, 3, image_size=size, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(stem, momentum=_BN_MOMENTUM, eps=_BN_EPS)
        size = _out_size(size, 2)
        stages: list[tuple[_Stage, tuple[int, int]]] = []
        for base in _B0_STAGES:
            stage = replace(
                base,
                inp=round_filters(base.inp, width),
                out=round_filters(base.out, width),
                repeats=round_repeats(base.repeats, depth),
            )
            stages.append((stage, size))
            size = _out_size(size, stage.stride)
            follow = replace(stage, inp=stage.out, stride=1)
            stages.extend((follow, size) for _ in range(stage.repeats - 1))
        n = len(stages)
        self._blocks = nn.ModuleList(
            MBConvBlock(stage, img, _DROP_CONNECT * idx / n) for idx, (stage, img) in enumerate(stages)
        )
        head = round_filters(1280, width)
        self._conv_head = StaticSameConv2d(stages[-1][0].out, head, 1, image_size=size, bias=False)
        self._bn1 = nn.BatchNorm2d(head, momentum=_BN_MOMENTUM, eps=_BN_EPS)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._fc = nn.Linear(head, 1000)
        self._swish = nn.SiLU()
        self.num_features = head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._swish(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._swish(self._bn1(self._conv_head(x)))
        return self._avg_pooling(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def _make_builder(variant: str):
    def build(**_: object) -> EfficientNetFeatures:
        return EfficientNetFeatures(variant)

    build.__name__ = variant.replace("-", "_")
    return build


for _variant, (_w, _d, _r, _p) in VARIANTS.items():
    register_backbone(_variant, family="efficientnet", num_features=round_filters(1280, _w))(_make_builder(_variant))
