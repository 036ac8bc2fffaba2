"""Training orchestration: build everything from a :class:`TrainConfig`, run the epochs, evaluate on the selection
split, write checkpoints and logs, resume exactly; and :func:`evaluate_checkpoint` for ``--eval-only``.

Files under ``OUTPUT`` (rank 0 only): ``config.json`` (resolved config), ``metrics.jsonl`` (one line per epoch),
``tensorboard/`` (scalars), ``last.pth`` (every epoch, with the full training state), ``model_best.pth`` (best AUC
on the selection split), ``model_{epoch}.pth`` every ``save_every`` epochs. All are our checkpoint format:
``torch.load(weights_only=True)``-safe and readable by ``lib-export``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib_deepfake.errors import CheckpointError
from lib_deepfake.model.checkpoint import LoadedCheckpoint, load_state_dict_strict, read_checkpoint, save_checkpoint
from lib_deepfake.model.config import LIBConfig, Preprocessing
from lib_deepfake.model.lib import LIBNet, create_lib
from lib_deepfake.train import ddp
from lib_deepfake.train.balance import create_balancer
from lib_deepfake.train.config import TrainConfig, parse_oversample
from lib_deepfake.train.data import FrameDataset, make_loader
from lib_deepfake.train.errors import TrainingError
from lib_deepfake.train.lists import Video, build_samples, read_split, real_ratio, require_both_classes
from lib_deepfake.train.loop import Hooks, StepContext, metrics_from_rows, predict, resolve_amp, train_one_epoch
from lib_deepfake.train.losses import LIBCriterion, LossSettings
from lib_deepfake.train.normalize import make_normalizer
from lib_deepfake.train.rng import capture_rng, restore_rng, seed_everything
from lib_deepfake.train.schedule import (
    HalvingRule,
    build_optimizer,
    official_cosine_factor,
    warmup_cosine_factor,
)

logger = logging.getLogger(__name__)

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


def model_config_from(cfg: TrainConfig) -> LIBConfig:
    return LIBConfig(
        backbone=cfg.backbone,
        num_libs=cfg.num_libs,
        width_mult=cfg.width_mult,
        preprocessing=Preprocessing(input_size=cfg.input_size, channel_order=cfg.channel_order),  # type: ignore[arg-type]
    )


def loss_settings_from(cfg: TrainConfig) -> LossSettings:
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
    if requested is not None:
        return requested
    # On CPU the training threads already use every core; loader workers would only compete with them.
    return 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)


def _freeze_unused(net: LIBNet) -> None:
    # MobileNet's `fc` and EfficientNet's `_fc` exist only so official checkpoints load strictly; they get no
    # gradient, which DDP (find_unused_parameters=False) would treat as an error.
    for name, p in net.named_parameters():
        parts = name.split(".")
        if len(parts) > 1 and parts[0].startswith("region_model") and parts[1] in ("fc", "_fc"):
            p.requires_grad_(False)


class _JsonlLog:
    def __init__(self, path: Path, resume_epoch: int | None) -> None:
        self.path = path
        if resume_epoch is not None and path.is_file():
            # Drop lines of epochs after the checkpoint we resume from (they belong to the abandoned tail).
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if int(json.loads(line).get("epoch", 0)) <= resume_epoch:
                        kept.append(line)
                except (ValueError, AttributeError):
                    continue
            path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        elif resume_epoch is None and path.exists():
            path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


class _Scalars:
    """TensorBoard scalars when enabled (rank 0)."""

    def __init__(self, directory: Path | None) -> None:
        self.writer = None
        if directory is not None:
            from lib_deepfake._optional import require

            require("tensorboard", purpose="TensorBoard logging (or pass --no-tensorboard)")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(directory))

    def add(self, prefix: str, values: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, dict):
                self.add(f"{prefix}/{key}", value, step)
            elif isinstance(value, (int, float)) and value is not None and math.isfinite(float(value)):
                self.writer.add_scalar(f"{prefix}/{key}", float(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _load_resume(path: Path, cfg: TrainConfig) -> LoadedCheckpoint:
    ckpt = read_checkpoint(path, official_input_size=cfg.input_size)
    if ckpt.source == "official":
        logger.warning(
            "%s is an official checkpoint: it holds weights only (no optimiser, schedule or loss weights); "
            "training continues from its epoch %s with fresh optimiser state",
            path,
            ckpt.epoch,
        )
    return ckpt


def _check_resume_config(cfg: TrainConfig, model_config: LIBConfig) -> None:
    ours = model_config_from(cfg)
    if ours.to_dict() != model_config.to_dict():
        logger.warning(
            "resuming: the architecture comes from the checkpoint (%s) and overrides the options (%s)",
            model_config.to_dict(),
            ours.to_dict(),
        )


def fit(cfg: TrainConfig, *, resume: Path | None = None, hooks: Hooks | None = None) -> dict[str, Any]:
    """Train according to ``cfg`` (optionally resuming ``resume``). Returns a summary dict.

    Raises:
        DatasetError: bad dataset layout or content.
        CheckpointError: unreadable or mismatched resume checkpoint.
        TrainingError: non-finite loss, bad distributed setup.
    """
    if cfg.output is None:
        raise TrainingError("training needs an output folder (--output DIR)")
    if cfg.threads is not None:
        # On a busy CPU, fewer intra-op threads than cores avoids OpenMP spin-waiting (measured 10x faster with 1).
        torch.set_num_threads(cfg.threads)
    info = ddp.dist_info_from_env()
    device = ddp.setup_distributed(info, cfg.device)
    try:
        return _fit(cfg, info, device, resume, hooks or Hooks())
    finally:
        ddp.cleanup(info)


def _fit(cfg: TrainConfig, info: ddp.DistInfo, device: torch.device, resume: Path | None, hooks: Hooks) -> dict:
    assert cfg.output is not None
    out_dir = cfg.output
    seed_everything(cfg.seed + info.rank)
    oversample = parse_oversample(cfg.real_oversample)

    # -- data lists (fail fast, before building a model) --
    train_videos = read_split(cfg.dataset_root, cfg.datasets, "train")
    select_videos = read_split(cfg.dataset_root, cfg.datasets, cfg.select_split)
    require_both_classes(select_videos, cfg.select_split)
    select_samples = build_samples(select_videos, cfg.eval_frames_per_video)
    select_video_of = np.array([s.video for s in select_samples], dtype=np.int64)

    # -- model --
    ckpt = _load_resume(resume, cfg) if resume is not None else None
    model_config = ckpt.config if ckpt is not None else model_config_from(cfg)
    if ckpt is not None:
        _check_resume_config(cfg, model_config)
    net = create_lib(model_config)
    if ckpt is not None:
        load_state_dict_strict(net, ckpt.state_dict, str(resume))
    elif cfg.pretrained:
        from lib_deepfake.model.pretrained import load_pretrained

        load_pretrained(net)
    _freeze_unused(net)
    net.to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    normalize = make_normalizer(net, model_config.preprocessing, device)
    settings = loss_settings_from(cfg)
    criterion = LIBCriterion(settings)
    balancer = create_balancer(cfg.balance, settings.term_names(), cfg.scales, cfg.scales_by_position).to(device)
    model: torch.nn.Module = net
    if info.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    amp_dtype = resolve_amp(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    per_rank = ddp.per_rank_batch(cfg.batch_size, info.world_size)
    eval_batch = cfg.eval_batch_size or per_rank
    workers = default_workers(device, cfg.workers)
    pin = device.type == "cuda"
    size = model_config.input_size
    fused = device.type == "cuda"

    # -- state --
    state = RunState(net_lr=cfg.lr)
    optimizer = build_optimizer(cfg.recipe, net, balancer, lr=state.net_lr, weight_decay=cfg.weight_decay, fused=fused)
    train_extra = (ckpt.extra.get("train_state") if ckpt is not None else None) or None
    if ckpt is not None and train_extra is None:
        # Weights only (an official file, or our model_best.pth): continue after its epoch with a fresh optimiser.
        state.epoch = int(ckpt.epoch or 0)
        if ckpt.source != "official":
            logger.warning(
                "%s has no training state (weights only): optimiser, schedule and loss weights start "
                "fresh; resume from last.pth or model_<epoch>.pth to continue a run exactly",
                resume,
            )
    if train_extra is not None:
        if int(train_extra.get("version", 0)) != STATE_VERSION:
            raise CheckpointError(f"{resume}: training state version {train_extra.get('version')} is not supported")
        state = RunState(
            epoch=int(train_extra["epoch"]),
            step=int(train_extra["step"]),
            best_auc=float(train_extra["best_auc"]),
            best_epoch=int(train_extra["best_epoch"]),
            net_lr=float(train_extra["net_lr"]),
            halving=[float(v) for v in train_extra["halving"]],
        )
        balancer.load_state_dict(train_extra["balancer"])
        optimizer = build_optimizer(
            cfg.recipe, net, balancer, lr=state.net_lr, weight_decay=cfg.weight_decay, fused=fused
        )
        if cfg.recipe != "official":  # the official recipe rebuilds the optimiser every epoch anyway
            optimizer.load_state_dict(train_extra["optimizer"])
        if scaler is not None and "scaler" in train_extra:
            scaler.load_state_dict(train_extra["scaler"])
        restore_rng(train_extra["rng"][info.rank] if isinstance(train_extra["rng"], list) else train_extra["rng"])
        logger.info(
            "resumed %s at epoch %d (step %d, best AUC %.4f at epoch %d)",
            resume,
            state.epoch,
            state.step,
            state.best_auc,
            state.best_epoch,
        )
    if state.epoch >= cfg.epochs:
        logger.warning("the checkpoint already completed %d of %d epochs: nothing to train", state.epoch, cfg.epochs)

    # Steps per epoch are known up front (sizes are fixed per epoch), so the default cosine spans the whole run.
    n_train = len(
        build_samples(train_videos, cfg.frames_per_video, oversample=oversample, rng=np.random.default_rng(0))
    )
    per_rank_samples = math.ceil(n_train / info.world_size)
    batches = per_rank_samples // per_rank if cfg.drop_last else math.ceil(per_rank_samples / per_rank)
    if batches == 0:
        raise TrainingError(
            f"{n_train} training frames are fewer than one batch of {cfg.batch_size}: lower "
            "--batch-size or disable drop_last"
        )
    steps_per_epoch = math.ceil(batches / cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))

    writer_main = info.is_main
    if writer_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        resolved = {
            "train": cfg.to_dict(),
            "model": model_config.to_dict(),
            "world_size": info.world_size,
            "per_rank_batch": per_rank,
            "workers": workers,
            "amp": str(amp_dtype),
            "steps_per_epoch": steps_per_epoch,
            "environment": _environment(),
            "resumed_from": str(resume) if resume else None,
        }
        (out_dir / "config.json").write_text(json.dumps(resolved, indent=2) + "\n", encoding="utf-8")
        log = _JsonlLog(out_dir / "metrics.jsonl", state.epoch if resume is not None else None)
        scalars = _Scalars(out_dir / "tensorboard" if cfg.tensorboard else None)
    logger.info(
        "training %d x %s (width %.2f) at %d px: %d train videos / %d frames per epoch, %s split %d videos, "
        "batch %d (%d per rank x %d), %d steps per epoch, amp %s, device %s",
        model_config.num_libs,
        model_config.backbone,
        model_config.width_mult,
        size,
        len(train_videos),
        n_train,
        cfg.select_split,
        len(select_videos),
        cfg.batch_size,
        per_rank,
        info.world_size,
        steps_per_epoch,
        amp_dtype,
        device,
    )

    ratios = {name: real_ratio(name, oversample) for name in cfg.datasets}
    logger.info(
        "real-class oversampling (%s): %s", cfg.real_oversample, ", ".join(f"{k} x{v}" for k, v in ratios.items())
    )
    augment = None
    if cfg.augment:
        from lib_deepfake.train.augment import build_official_augment

        augment = build_official_augment(size)
    halving = HalvingRule(state.halving)
    last_record: dict[str, Any] = {}
    try:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            if cfg.recipe == "official":
                if halving.should_halve():
                    state.net_lr /= 2
                    logger.info(
                        "epoch %d: %s loss rose within the last 5 epochs: LR halved to %g",
                        epoch,
                        cfg.select_split,
                        state.net_lr,
                    )
                optimizer = build_optimizer(
                    "official", net, balancer, lr=state.net_lr, weight_decay=cfg.weight_decay, fused=fused
                )
                lr_factor = functools.partial(_official_factor, start=state.step)
            else:
                lr_factor = functools.partial(warmup_cosine_factor, total_steps=total_steps, warmup_steps=warmup_steps)

            ctx = StepContext(
                model,
                normalize,
                criterion,
                balancer,
                optimizer,
                lr_factor,
                device,
                amp_dtype,
                scaler,
                grad_accum=cfg.grad_accum,
                channels_last=cfg.channels_last,
                mixup=cfg.mixup,
                alpha=cfg.alpha,
                dist=info,
            )
            samples = build_samples(
                train_videos,
                cfg.frames_per_video,
                oversample=oversample,
                rng=np.random.default_rng([cfg.seed, epoch, 3]),
            )
            dataset = FrameDataset(samples, size, model_config.preprocessing.channel_order, augment, cfg.seed, epoch)
            loader = make_loader(
                dataset,
                per_rank,
                shuffle=True,
                drop_last=cfg.drop_last,
                workers=workers,
                pin_memory=pin,
                seed=cfg.seed,
                epoch=epoch,
                world_size=info.world_size,
                rank=info.rank,
            )
            train_stats, state.step = train_one_epoch(
                ctx, loader, epoch=epoch, seed=cfg.seed, start_step=state.step, num_batches=len(loader), hooks=hooks
            )
            ddp.broadcast_buffers(net, info)
            eval_set = FrameDataset(select_samples, size, model_config.preprocessing.channel_order)
            eval_loader = make_loader(
                eval_set,
                eval_batch,
                shuffle=False,
                drop_last=False,
                workers=workers,
                pin_memory=pin,
                seed=cfg.seed,
                epoch=0,
                world_size=info.world_size,
                rank=info.rank,
            )
            rows, eval_loss, eval_skipped = predict(
                net,
                normalize,
                eval_loader,
                device=device,
                amp_dtype=amp_dtype,
                channels_last=cfg.channels_last,
                criterion=criterion,
                balancer=balancer,
                dist=info,
                num_batches=len(eval_loader),
                hooks=hooks,
            )
            metrics = metrics_from_rows(rows, select_video_of)
            metrics["loss"] = eval_loss
            metrics["skipped"] = eval_skipped
            if eval_loss is not None:
                halving.observe(eval_loss)
            auc = metrics["frame"]["auc"]
            improved = auc is not None and auc > state.best_auc
            if improved:
                state.best_auc, state.best_epoch = float(auc), epoch
            state.epoch = epoch
            state.halving = list(halving.history)
            record = {
                "epoch": epoch,
                "step": state.step,
                "train": train_stats,
                cfg.select_split: metrics,
                "best": improved,
                "best_auc": state.best_auc,
                "best_epoch": state.best_epoch,
            }
            last_record = record
            rng_states = _gather_rng(info)
            if writer_main:
                log.write(record)
                scalars.add("train", {k: v for k, v in train_stats.items() if k != "weights"}, epoch)
                scalars.add("weights", train_stats["weights"], epoch)
                scalars.add(cfg.select_split, metrics, epoch)
                _save_epoch(
                    out_dir, net, model_config, cfg, state, optimizer, balancer, scaler, rng_states, record, improved
                )
            logger.info(
                "epoch %d/%d: loss %.4f (%s) %.1f img/s | %s AUC %s video AUC %s ACC %s%s",
                epoch,
                cfg.epochs,
                train_stats["loss"],
                ", ".join(f"{k} {train_stats[k]:.4f}" for k in settings.term_names()),
                train_stats["images_per_s"],
                cfg.select_split,
                _fmt(auc),
                _fmt(metrics["video"]["auc"]),
                _fmt(metrics["frame"]["acc"]),
                " (best)" if improved else "",
            )
            ddp.barrier(info)
    finally:
        if writer_main:
            scalars.close()
    return {
        "epochs": state.epoch,
        "best_auc": state.best_auc,
        "best_epoch": state.best_epoch,
        "last": last_record,
        "output": str(out_dir),
    }


def _official_factor(step: int, start: int) -> float:
    # The official scheduler is rebuilt every epoch: its iteration counter restarts at the epoch's first step.
    return official_cosine_factor(step - start)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _gather_rng(info: ddp.DistInfo) -> Any:
    state = capture_rng()
    if not info.distributed:
        return state
    states: list[Any] = [None] * info.world_size
    torch.distributed.all_gather_object(states, state)
    return states


def _save_epoch(
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
    metrics_json = json.dumps(record, default=_json_default)
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


def evaluate_checkpoint(
    checkpoint: Path,
    dataset_root: Path,
    datasets: tuple[str, ...],
    split: str = "test",
    *,
    input_size: int | None = None,
    frames_per_video: int | None = 32,
    batch_size: int = 64,
    device: str = "cpu",
    amp: str = "off",
    workers: int | None = None,
    channels_last: bool = False,
    hooks: Hooks | None = None,
) -> dict[str, Any]:
    """Evaluate any checkpoint (ours or official) on a split: frame and video metrics.

    Args:
        checkpoint: our checkpoint or an official ``{'state_dict', 'epoch'}`` file (BGR contract, size
            ``input_size`` or 224).
        dataset_root, datasets, split: what to evaluate.
        frames_per_video: None = every listed frame, N = N uniformly spaced per video.

    Returns:
        ``{"checkpoint", "source", "epoch", "split", "model", "frames", "videos", "metrics"}``.
    """
    from lib_deepfake.model.checkpoint import load_model

    info = ddp.dist_info_from_env()
    dev = ddp.setup_distributed(info, device)
    try:
        videos: list[Video] = read_split(dataset_root, datasets, split)
        samples = build_samples(videos, frames_per_video)
        net, ckpt = load_model(checkpoint, official_input_size=input_size)
        net.to(dev)
        if channels_last:
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        prep = ckpt.config.preprocessing
        normalize = make_normalizer(net, prep, dev)
        dataset = FrameDataset(samples, prep.input_size, prep.channel_order)
        loader = make_loader(
            dataset,
            batch_size,
            shuffle=False,
            drop_last=False,
            workers=default_workers(dev, workers),
            pin_memory=dev.type == "cuda",
            seed=0,
            epoch=0,
            world_size=info.world_size,
            rank=info.rank,
        )
        rows, _, skipped = predict(
            net,
            normalize,
            loader,
            device=dev,
            amp_dtype=resolve_amp(amp, dev),
            channels_last=channels_last,
            dist=info,
            num_batches=len(loader),
            hooks=hooks,
        )
        video_of = np.array([s.video for s in samples], dtype=np.int64)
        metrics: dict[str, Any] = {"frame": {"n": 0}, "video": {"n": 0}}
        if rows.shape[0]:
            metrics = metrics_from_rows(rows, video_of)
        metrics["skipped"] = skipped
        return {
            "checkpoint": str(checkpoint),
            "source": ckpt.source,
            "epoch": ckpt.epoch,
            "split": split,
            "datasets": list(datasets),
            "model": ckpt.config.to_dict(),
            "frames_per_video": frames_per_video,
            "frames": len(samples),
            "videos": len(videos),
            "metrics": metrics,
        }
    finally:
        ddp.cleanup(info)
