"""ImageNet weights for the backbones, fetched through the torch hub cache - never a silent random init.

URLs are the ones the official code uses (method.md §2.6). Offline, a cached file is used; without one the
error names the URL and ``--no-pretrained``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from lib_deepfake.errors import CheckpointError, LibDeepfakeError

logger = logging.getLogger(__name__)

_LUKEMELAS = "https://github.com/lukemelas/EfficientNet-PyTorch/releases/download/1.0/"
PRETRAINED_URLS: dict[str, str] = {
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "efficientnet-b0": _LUKEMELAS + "efficientnet-b0-355c32eb.pth",
    "efficientnet-b1": _LUKEMELAS + "efficientnet-b1-f1951068.pth",
    "efficientnet-b2": _LUKEMELAS + "efficientnet-b2-8bb594d6.pth",
    "efficientnet-b3": _LUKEMELAS + "efficientnet-b3-5fb5a3c3.pth",
    "efficientnet-b4": _LUKEMELAS + "efficientnet-b4-6ed6700e.pth",
    "efficientnet-b5": _LUKEMELAS + "efficientnet-b5-b6417697.pth",
    "efficientnet-b6": _LUKEMELAS + "efficientnet-b6-c76e70fd.pth",
    "efficientnet-b7": _LUKEMELAS + "efficientnet-b7-dcc49843.pth",
}


class PretrainedUnavailableError(LibDeepfakeError):
    """Pretrained weights were asked for but cannot be obtained."""


def fetch_pretrained_state(backbone: str) -> dict[str, torch.Tensor]:
    """Download (or read from the hub cache) the ImageNet state_dict of ``backbone``."""
    url = PRETRAINED_URLS.get(backbone)
    if url is None:
        raise PretrainedUnavailableError(
            f"no ImageNet weights exist for backbone {backbone!r} (the official MobileNet is trained from scratch); "
            "use --no-pretrained"
        )
    cache = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
    except Exception as exc:  # network errors come in many types (URLError, HTTPError, OSError, ...)
        raise PretrainedUnavailableError(
            f"cannot get ImageNet weights for {backbone} from {url} ({type(exc).__name__}: {exc}). Put the file at "
            f"{cache} to use it offline, or train from scratch with --no-pretrained"
        ) from exc


def load_pretrained_backbone(module: nn.Module, backbone: str) -> None:
    """Load ImageNet weights into one backbone, dropping the classifier keys our trunks do not use."""
    state = fetch_pretrained_state(backbone)
    if backbone == "resnet34":
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = module.state_dict()
    bad = [k for k in own if k not in state or tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise CheckpointError(f"ImageNet weights for {backbone} do not fit the backbone (first: {bad[:3]}); "
                              "width_mult must be 1.0 for pretrained backbones")  # fmt: skip
    extra = sorted(set(state) - set(own))
    if extra:
        logger.debug("ignoring %d unused pretrained keys for %s", len(extra), backbone)
    module.load_state_dict({k: state[k] for k in own}, strict=True)


def load_pretrained(net: nn.Module) -> None:
    """Initialise every ``region_model{i}`` of a LIB network from ImageNet (all from the same weights, as the
    official code does)."""
    backbone = net.config.backbone  # type: ignore[attr-defined]
    for module in net.backbones:  # type: ignore[attr-defined]
        load_pretrained_backbone(module, backbone)
