"""Backbone registry: a name -> builder table with a shared surface (``forward_features``, ``num_features``).

Registration raises on duplicates (torchvision's rule) so two modules can never silently shadow each other.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from lib_deepfake.errors import LibDeepfakeError


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows about one backbone family member."""

    name: str
    builder: Callable[..., nn.Module]
    family: str  # "resnet" | "mobilenet" | "efficientnet" (the official --model values)
    num_features: int


_BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(name: str, *, family: str, num_features: int) -> Callable[[Callable[..., nn.Module]], Callable]:
    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BACKBONES:
            raise ValueError(f"backbone {name!r} is already registered")
        _BACKBONES[name] = BackboneSpec(name=name, builder=builder, family=family, num_features=num_features)
        return builder

    return decorator


# The official CLI spells families, not variants; map them so `--model resnet` works as it does there.
_ALIASES = {"resnet": "resnet34", "efficientnet": "efficientnet-b0"}


def canonical_name(name: str) -> str:
    name = name.strip().lower().replace("_", "-")
    name = _ALIASES.get(name, name)
    name = re.sub(r"^efficientnet-?b(\d)$", r"efficientnet-b\1", name)
    return name


def backbone_spec(name: str) -> BackboneSpec:
    _ensure_loaded()
    key = canonical_name(name)
    if key not in _BACKBONES:
        hint = difflib.get_close_matches(key, list(_BACKBONES), n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise LibDeepfakeError(f"unknown backbone {name!r} (known: {', '.join(list_backbones())}){extra}")
    return _BACKBONES[key]


def list_backbones() -> list[str]:
    _ensure_loaded()
    return sorted(_BACKBONES)


def _ensure_loaded() -> None:
    # Backbones are pure PyTorch, so importing them eagerly on first use is cheap (timm style).
    from lib_deepfake.model.backbones import efficientnet, mobilenet, resnet  # noqa: F401
