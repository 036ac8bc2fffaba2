"""Model configuration and the preprocessing contract that travels with every checkpoint and artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lib_deepfake.errors import LibDeepfakeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ChannelOrder = Literal["RGB", "BGR"]


@dataclass(frozen=True)
class Preprocessing:
    """How a face crop becomes the network input.

    The engine contract feeds uint8 [N, S, S, 3] **RGB**; ``channel_order`` says what the *weights* expect. Official
    LIB checkpoints were trained on BGR arrays normalised with the RGB ImageNet constants applied position-wise
    (method.md §4.5): ``channel_order="BGR"`` with ``mean``/``std`` in network-channel order reproduces exactly
    that: flip RGB->BGR, /255, then (x - mean[c]) / std[c] for network channel c.
    """

    input_size: int = 224
    channel_order: ChannelOrder = "RGB"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise LibDeepfakeError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")
        if self.input_size < 16:
            raise LibDeepfakeError(f"input_size must be at least 16, got {self.input_size}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            input_size=int(data["input_size"]),
            channel_order=data.get("channel_order", "RGB"),
            mean=tuple(data.get("mean", IMAGENET_MEAN)),  # type: ignore[arg-type]
            std=tuple(data.get("std", IMAGENET_STD)),  # type: ignore[arg-type]
        )


# The contract of checkpoints written by the official code (dataset.py: cv2.imread BGR, RGB ImageNet constants).
OFFICIAL_PREPROCESSING = Preprocessing(input_size=224, channel_order="BGR")


@dataclass(frozen=True)
class LIBConfig:
    """Architecture of a LIB network (method.md §1).

    Attributes:
        backbone: registry name: ``resnet34``, ``mobilenet`` or ``efficientnet-b0`` ... ``efficientnet-b7``.
        num_libs: number of independent backbones (Local Information Blocks), default 4.
        num_classes: 2 (index 1 = fake).
        dropout: dropout before the final linear (the bottleneck keeps its own 0.5, as the official code).
        width_mult: channel multiplier for resnet34/mobilenet; 1.0 is the official architecture, smaller values
            give thin networks for tests and CPU demos (no ImageNet weights exist for them).
        preprocessing: the input contract of these weights.
    """

    backbone: str = "resnet34"
    num_libs: int = 4
    num_classes: int = 2
    dropout: float = 0.5
    width_mult: float = 1.0
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

    def __post_init__(self) -> None:
        from lib_deepfake.model.registry import canonical_name

        object.__setattr__(self, "backbone", canonical_name(self.backbone))
        if self.num_libs < 2:
            raise LibDeepfakeError(f"num_libs must be at least 2 (leave-one-out heads need it), got {self.num_libs}")
        if self.num_classes != 2:
            raise LibDeepfakeError("LIB is a binary real/fake detector: num_classes must be 2")
        if not 0 < self.width_mult <= 4:
            raise LibDeepfakeError(f"width_mult must be in (0, 4], got {self.width_mult}")

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "num_libs": self.num_libs,
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "width_mult": self.width_mult,
            "preprocessing": self.preprocessing.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LIBConfig:
        return cls(
            backbone=data["backbone"],
            num_libs=int(data["num_libs"]),
            num_classes=int(data.get("num_classes", 2)),
            dropout=float(data.get("dropout", 0.5)),
            width_mult=float(data.get("width_mult", 1.0)),
            preprocessing=Preprocessing.from_dict(data["preprocessing"]),
        )
