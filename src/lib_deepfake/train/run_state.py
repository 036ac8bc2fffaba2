"""The state of a training run in its checkpoints: what every epoch saves (``last.pth``, ``model_best.pth``,
``model_<epoch>.pth``) and what ``--resume`` restores from them, so a resumed run continues exactly."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lib_deepfake.errors import CheckpointError
from lib_deepfake.model.checkpoint import LoadedCheckpoint, read_checkpoint, save_checkpoint
from lib_deepfake.model.config import LIBConfig
from lib_deepfake.model.lib import LIBNet
from lib_deepfake.train import ddp
from lib_deepfake.train.components import model_config_from
from lib_deepfake.train.config import TrainConfig
from lib_deepfake.train.rng import capture_rng, restore_rng
from lib_deepfake.train.run_log import json_default

logger = logging.getLogger(__name__)

#: version of the ``train_state`` dict in our checkpoints; another version is refused on resume
STATE_VERSION = 1


@dataclass
class RunState:
    """Progress of a run, saved in every checkpoint under ``train_state``."""

    epoch: int = 0  # last completed epoch (0 = none)
    step: int = 0  # optimiser steps so far
    best_auc: float = -math.inf
    best_epoch: int = 0
    net_lr: float = 0.0  # official recipe: the current (possibly halved) network LR
    halving: list[float] = field(default_factory=list)


def read_resume_checkpoint(path: Path, cfg: TrainConfig) -> LoadedCheckpoint:
    """The checkpoint to resume from (ours or official; an official one holds weights only, which is logged)."""
    ckpt = read_checkpoint(path, official_input_size=cfg.input_size)
    if ckpt.source == "official":
        logger.warning(
            "%s is an official checkpoint: it holds weights only (no optimiser, schedule or loss weights); "
            "training continues from its epoch %s with fresh optimiser state",
            path,
            ckpt.epoch,
        )
    ours = model_config_from(cfg)
    if ours.to_dict() != ckpt.config.to_dict():
        logger.warning(
            "resuming: the architecture comes from the checkpoint (%s) and overrides the options (%s)",
            ckpt.config.to_dict(),
            ours.to_dict(),
        )
    return ckpt


def restore_run_state(
    ckpt: LoadedCheckpoint,
    path: Path,
    state: RunState,
    *,
    balancer: torch.nn.Module,
    rebuild_optimizer: Any,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    recipe: str,
    rank: int,
) -> tuple[RunState, torch.optim.Optimizer]:
    """Continue from ``ckpt``: its run state, loss weights, optimiser, gradient scaler and this rank's RNG.

    A checkpoint without training state (an official file, or our ``model_best.pth``) continues after its epoch
    with the fresh ``state`` and ``optimizer``.

    Args:
        rebuild_optimizer: ``net_lr -> optimizer`` (the optimiser is rebuilt at the checkpoint's network LR).

    Returns:
        (run state, optimiser) to train with.

    Raises:
        CheckpointError: a training state of another :data:`STATE_VERSION`.
    """
    saved = ckpt.extra.get("train_state") or None
    if saved is None:
        state.epoch = int(ckpt.epoch or 0)
        if ckpt.source != "official":
            logger.warning(
                "%s has no training state (weights only): optimiser, schedule and loss weights start "
                "fresh; resume from last.pth or model_<epoch>.pth to continue a run exactly",
                path,
            )
        return state, optimizer
    if int(saved.get("version", 0)) != STATE_VERSION:
        raise CheckpointError(f"{path}: training state version {saved.get('version')} is not supported")
    state = RunState(
        epoch=int(saved["epoch"]),
        step=int(saved["step"]),
        best_auc=float(saved["best_auc"]),
        best_epoch=int(saved["best_epoch"]),
        net_lr=float(saved["net_lr"]),
        halving=[float(v) for v in saved["halving"]],
    )
    balancer.load_state_dict(saved["balancer"])
    optimizer = rebuild_optimizer(state.net_lr)
    if recipe != "official":  # the official recipe rebuilds the optimiser every epoch anyway
        optimizer.load_state_dict(saved["optimizer"])
    if scaler is not None and "scaler" in saved:
        scaler.load_state_dict(saved["scaler"])
    restore_rng(saved["rng"][rank] if isinstance(saved["rng"], list) else saved["rng"])
    logger.info(
        "resumed %s at epoch %d (step %d, best AUC %.4f at epoch %d)",
        path,
        state.epoch,
        state.step,
        state.best_auc,
        state.best_epoch,
    )
    return state, optimizer


def gather_rng(info: ddp.DistInfo) -> Any:
    """This process's RNG state, or every rank's (a list) in a distributed run: all of it goes into the checkpoint."""
    state = capture_rng()
    if not info.distributed:
        return state
    states: list[Any] = [None] * info.world_size
    torch.distributed.all_gather_object(states, state)
    return states


def save_epoch_checkpoints(
    out_dir: Path,
    net: LIBNet,
    model_config: LIBConfig,
    cfg: TrainConfig,
    state: RunState,
    optimizer: torch.optim.Optimizer,
    balancer: torch.nn.Module,
    scaler: Any,
    rng_states: Any,
    record: dict[str, Any],
    improved: bool,
) -> None:
    """``last.pth`` (full training state), ``model_best.pth`` when ``improved`` (weights, config, metrics), and
    ``model_<epoch>.pth`` every ``cfg.save_every`` epochs (full training state)."""
    train_state: dict[str, Any] = {
        "version": STATE_VERSION,
        "epoch": state.epoch,
        "step": state.step,
        "best_auc": state.best_auc if math.isfinite(state.best_auc) else -1.0,
        "best_epoch": state.best_epoch,
        "net_lr": state.net_lr,
        "halving": list(state.halving),
        "optimizer": optimizer.state_dict(),
        "balancer": {k: v.detach().cpu() for k, v in balancer.state_dict().items()},
        "rng": rng_states,
    }
    if scaler is not None:
        train_state["scaler"] = scaler.state_dict()
    metrics_json = json.dumps(record, default=json_default)
    common = {"train_config": json.dumps(cfg.to_dict()), "metrics": metrics_json}
    save_checkpoint(out_dir / "last.pth", net, model_config, epoch=state.epoch, train_state=train_state, **common)
    if improved:
        # The best model is for export and evaluation: weights, config and metrics, no optimiser state.
        save_checkpoint(out_dir / "model_best.pth", net, model_config, epoch=state.epoch, **common)
    if cfg.save_every and state.epoch % cfg.save_every == 0:
        save_checkpoint(
            out_dir / f"model_{state.epoch}.pth",
            net,
            model_config,
            epoch=state.epoch,
            train_state=train_state,
            **common,
        )
