"""The parts of a training run built from a :class:`TrainConfig`: the model's config and network, the loss
settings, and the loader worker count."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lib_deepfake.model.checkpoint import LoadedCheckpoint, load_state_dict_strict
from lib_deepfake.model.config import LIBConfig, Preprocessing
from lib_deepfake.model.lib import LIBNet, create_lib
from lib_deepfake.train.config import TrainConfig
from lib_deepfake.train.losses import LossSettings


def model_config_from(cfg: TrainConfig) -> LIBConfig:
    """The LIB architecture and preprocessing that ``cfg`` asks for."""
    return LIBConfig(
        backbone=cfg.backbone,
        num_libs=cfg.num_libs,
        width_mult=cfg.width_mult,
        preprocessing=Preprocessing(input_size=cfg.input_size, channel_order=cfg.channel_order),  # type: ignore[arg-type]
    )


def loss_settings_from(cfg: TrainConfig) -> LossSettings:
    """The LIB loss terms and their options from ``cfg``."""
    return LossSettings(
        gil=cfg.gil,
        lil=cfg.lil,
        lil_method=cfg.lil_method,
        calculator=cfg.mi_calculator,
        kl_reduction=cfg.kl_reduction,
        sinkhorn_stable=cfg.sinkhorn_stable,
        temperature=cfg.temperature,
    )


def default_workers(device: torch.device, requested: int | None) -> int:
    """Data loader processes: ``requested``, else none on CPU and up to 8 on a GPU."""
    if requested is not None:
        return requested
    # On CPU the training threads already use every core; loader workers would only compete with them.
    return 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)


def freeze_unused(net: LIBNet) -> None:
    """Stop gradients to the backbone heads the LIB forward never uses."""
    # MobileNet's `fc` and EfficientNet's `_fc` exist only so official checkpoints load strictly; they get no
    # gradient, which DDP (find_unused_parameters=False) would treat as an error.
    for name, p in net.named_parameters():
        parts = name.split(".")
        if len(parts) > 1 and parts[0].startswith("region_model") and parts[1] in ("fc", "_fc"):
            p.requires_grad_(False)


def build_network(
    cfg: TrainConfig, ckpt: LoadedCheckpoint | None, resume: Path | None, device: torch.device
) -> tuple[LIBConfig, LIBNet]:
    """The network to train on ``device``: the checkpoint's architecture and weights when resuming, else ``cfg``'s
    (ImageNet weights when ``cfg.pretrained``)."""
    model_config = ckpt.config if ckpt is not None else model_config_from(cfg)
    net = create_lib(model_config)
    if ckpt is not None:
        load_state_dict_strict(net, ckpt.state_dict, str(resume))
    elif cfg.pretrained:
        from lib_deepfake.model.pretrained import load_pretrained

        load_pretrained(net)
    freeze_unused(net)
    net.to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model_config, net
