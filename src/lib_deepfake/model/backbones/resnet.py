"""ResNet-34 without its classifier, with torchvision's parameter names (the official LIB's `models/resnet.py`).

Written from the architecture description (method.md §1.2); torchvision itself is not a dependency because its
PyPI wheels do not import beside the CPU torch build.
"""

from __future__ import annotations

import torch
from torch import nn

from lib_deepfake.model.registry import register_backbone


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetFeatures(nn.Module):
    """BasicBlock ResNet ending in global average pooling; ``forward`` returns [B, num_features]."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), base_width: int = 64) -> None:
        super().__init__()
        w = base_width
        self.inplanes = w
        self.conv1 = nn.Conv2d(3, w, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(w, layers[0])
        self.layer2 = self._make_layer(w * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(w * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(w * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = w * 8
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


@register_backbone("resnet34", family="resnet", num_features=512)
def resnet34(*, width_mult: float = 1.0, **_: object) -> ResNetFeatures:
    """ResNet-34 trunk. ``width_mult`` < 1 gives a thin variant for tests and CPU demos (not loadable from
    ImageNet weights)."""
    return ResNetFeatures((3, 4, 6, 3), base_width=max(4, int(round(64 * width_mult))))
