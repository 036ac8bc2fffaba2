"""Training orchestration: build everything from a :class:`TrainConfig`, run the epochs, evaluate on the selection
split, write checkpoints and logs, resume exactly.

Files under ``OUTPUT`` (rank 0 only): ``config.json`` (resolved config), ``metrics.jsonl`` (one line per epoch),
``tensorboard/`` (scalars), ``last.pth`` (every epoch, with the full training state), ``model_best.pth`` (best AUC
on the selection split), ``model_{epoch}.pth`` every ``save_every`` epochs. All are our checkpoint format:
``torch.load(weights_only=True)``-safe and readable by ``lib-export``.

The jobs live in their own modules: :mod:`.components` (model, losses), :mod:`.run_state` (resume and the state in
the checkpoints), :mod:`.run_log` (config.json, metrics.jsonl, TensorBoard), :mod:`.evaluate` (the selection split
each epoch; ``--eval-only``), :mod:`.loop` (one epoch), :mod:`.model_card` (the threshold and model card written
into ``model_best.pth`` and ``last.pth`` at the end). Here: the run's setup, the epoch loop and the end-of-training
step.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib_deepfake.model.config import LIBConfig
from lib_deepfake.model.lib import LIBNet
from lib_deepfake.train import ddp
from lib_deepfake.train.balance import Balancer, create_balancer
from lib_deepfake.train.components import build_network, default_workers, loss_settings_from
from lib_deepfake.train.config import TrainConfig, parse_oversample
from lib_deepfake.train.data import FrameDataset, make_loader
from lib_deepfake.train.errors import TrainingError
from lib_deepfake.train.evaluate import evaluate_selection
from lib_deepfake.train.lists import Sample, Video, build_samples, read_split, real_ratio, require_both_classes
from lib_deepfake.train.loop import Hooks, StepContext, resolve_amp, train_one_epoch
from lib_deepfake.train.losses import LIBCriterion, LossSettings
from lib_deepfake.train.normalize import make_normalizer
from lib_deepfake.train.rng import seed_everything
from lib_deepfake.train.run_log import RunLog, environment
from lib_deepfake.train.run_state import (
    RunState,
    gather_rng,
    read_resume_checkpoint,
    restore_run_state,
    save_epoch_checkpoints,
)
from lib_deepfake.train.schedule import HalvingRule, build_optimizer, official_cosine_factor, warmup_cosine_factor

logger = logging.getLogger(__name__)


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
        # On a busy CPU, fewer intra-op threads than cores avoids OpenMP spin-waiting.
        torch.set_num_threads(cfg.threads)
    info = ddp.dist_info_from_env()
    device = ddp.setup_distributed(info, cfg.device)
    try:
        return _fit(cfg, info, device, resume, hooks or Hooks())
    finally:
        ddp.cleanup(info)


@dataclass
class _SelectionScores:
    """``predict`` rows on the selection split of the checkpoints this process wrote last: ``last.pth`` and, when its
    epoch ran in this process, ``model_best.pth``."""

    last: torch.Tensor | None = None
    best: torch.Tensor | None = None


@dataclass
class _Splits:
    """The training videos and the selection split, read (and checked) before any model is built."""

    train: list[Video]
    select: list[Video]
    select_samples: list[Sample]
    select_video_of: np.ndarray  # sample index -> video index
    oversample: str | int


@dataclass
class _Run:
    """Everything one training run builds before its first epoch; the epoch loop updates ``state`` and
    ``optimizer`` (the official recipe rebuilds it every epoch)."""

    cfg: TrainConfig
    info: ddp.DistInfo
    device: torch.device
    resume: Path | None
    splits: _Splits
    model_config: LIBConfig
    net: LIBNet
    model: torch.nn.Module  # ``net``, DDP-wrapped in a distributed run
    normalize: Callable[[torch.Tensor], torch.Tensor]
    settings: LossSettings
    criterion: LIBCriterion
    balancer: Balancer
    optimizer: torch.optim.Optimizer
    scaler: Any  # torch.amp.GradScaler or None
    amp_dtype: torch.dtype | None
    per_rank: int  # batch per rank
    workers: int
    n_train: int  # training frames per epoch
    steps_per_epoch: int
    state: RunState

    @property
    def out_dir(self) -> Path:
        assert self.cfg.output is not None
        return self.cfg.output


def _fit(cfg: TrainConfig, info: ddp.DistInfo, device: torch.device, resume: Path | None, hooks: Hooks) -> dict:
    run = _prepare(cfg, info, device, resume)
    log = RunLog(run.out_dir, _resolved_config(run), run.state.epoch if resume is not None else None,
                 cfg.tensorboard) if info.is_main else None  # fmt: skip
    _log_plan(run)
    augment = None
    if cfg.augment:
        from lib_deepfake.train.augment import build_official_augment

        augment = build_official_augment(run.model_config.input_size)
    halving = HalvingRule(run.state.halving)
    last_record: dict[str, Any] = {}
    scores = _SelectionScores()
    try:
        for epoch in range(run.state.epoch + 1, cfg.epochs + 1):
            last_record, rows = _run_epoch(run, epoch, halving, augment, log, hooks)
            scores.last = rows
            if last_record["best"]:
                scores.best = rows
    finally:
        if log is not None:
            log.close()
    return _finish_training(run, last_record, scores, hooks)


def _read_splits(cfg: TrainConfig) -> _Splits:
    train = read_split(cfg.dataset_root, cfg.datasets, "train")
    select = read_split(cfg.dataset_root, cfg.datasets, cfg.select_split)
    require_both_classes(select, cfg.select_split)
    samples = build_samples(select, cfg.eval_frames_per_video)
    video_of = np.array([s.video for s in samples], dtype=np.int64)
    return _Splits(train, select, samples, video_of, parse_oversample(cfg.real_oversample))


def _prepare(cfg: TrainConfig, info: ddp.DistInfo, device: torch.device, resume: Path | None) -> _Run:
    """Seed, read the splits (fail fast, before building a model), build the model and its training parts, and
    restore the run state when resuming. The order is part of exact resume: it fixes what the seeded RNG draws."""
    seed_everything(cfg.seed + info.rank)
    splits = _read_splits(cfg)
    ckpt = read_resume_checkpoint(resume, cfg) if resume is not None else None
    model_config, net = build_network(cfg, ckpt, resume, device)
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
    rebuild_optimizer = functools.partial(_build_optimizer, cfg, net, balancer, device)
    state = RunState(net_lr=cfg.lr)
    optimizer = rebuild_optimizer(state.net_lr)
    if ckpt is not None:
        assert resume is not None
        state, optimizer = restore_run_state(ckpt, resume, state, balancer=balancer, optimizer=optimizer,
                                             rebuild_optimizer=rebuild_optimizer, scaler=scaler, recipe=cfg.recipe,
                                             rank=info.rank)  # fmt: skip
    if state.epoch >= cfg.epochs:
        logger.warning("the checkpoint already completed %d of %d epochs: nothing to train", state.epoch, cfg.epochs)
    n_train, steps_per_epoch = _plan_steps(cfg, splits, info, per_rank)
    return _Run(
        cfg=cfg, info=info, device=device, resume=resume, splits=splits, model_config=model_config, net=net,
        model=model, normalize=normalize, settings=settings, criterion=criterion, balancer=balancer,
        optimizer=optimizer, scaler=scaler, amp_dtype=amp_dtype, per_rank=per_rank,
        workers=default_workers(device, cfg.workers), n_train=n_train, steps_per_epoch=steps_per_epoch, state=state,
    )  # fmt: skip


def _build_optimizer(
    cfg: TrainConfig, net: LIBNet, balancer: Balancer, device: torch.device, net_lr: float
) -> torch.optim.Optimizer:
    return build_optimizer(cfg.recipe, net, balancer, lr=net_lr, weight_decay=cfg.weight_decay,
                           fused=device.type == "cuda")  # fmt: skip


def _plan_steps(cfg: TrainConfig, splits: _Splits, info: ddp.DistInfo, per_rank: int) -> tuple[int, int]:
    """(training frames per epoch, optimiser steps per epoch)."""
    # Steps per epoch are known up front (sizes are fixed per epoch), so the default cosine spans the whole run.
    n_train = len(
        build_samples(splits.train, cfg.frames_per_video, oversample=splits.oversample, rng=np.random.default_rng(0))
    )
    per_rank_samples = math.ceil(n_train / info.world_size)
    batches = per_rank_samples // per_rank if cfg.drop_last else math.ceil(per_rank_samples / per_rank)
    if batches == 0:
        raise TrainingError(
            f"{n_train} training frames are fewer than one batch of {cfg.batch_size}: lower "
            "--batch-size or disable drop_last"
        )
    return n_train, math.ceil(batches / cfg.grad_accum)


def _resolved_config(run: _Run) -> dict[str, Any]:
    """What ``config.json`` records: the training and model configs as resolved, and where the run ran."""
    return {
        "train": run.cfg.to_dict(),
        "model": run.model_config.to_dict(),
        "world_size": run.info.world_size,
        "per_rank_batch": run.per_rank,
        "workers": run.workers,
        "amp": str(run.amp_dtype),
        "steps_per_epoch": run.steps_per_epoch,
        "environment": environment(),
        "resumed_from": str(run.resume) if run.resume else None,
    }


def _log_plan(run: _Run) -> None:
    cfg, mc = run.cfg, run.model_config
    logger.info(
        "training %d x %s (width %.2f) at %d px: %d train videos / %d frames per epoch, %s split %d videos, "
        "batch %d (%d per rank x %d), %d steps per epoch, amp %s, device %s",
        mc.num_libs,
        mc.backbone,
        mc.width_mult,
        mc.input_size,
        len(run.splits.train),
        run.n_train,
        cfg.select_split,
        len(run.splits.select),
        cfg.batch_size,
        run.per_rank,
        run.info.world_size,
        run.steps_per_epoch,
        run.amp_dtype,
        run.device,
    )
    ratios = {name: real_ratio(name, run.splits.oversample) for name in cfg.datasets}
    logger.info(
        "real-class oversampling (%s): %s", cfg.real_oversample, ", ".join(f"{k} x{v}" for k, v in ratios.items())
    )


def _epoch_lr_factor(run: _Run, epoch: int, halving: HalvingRule) -> Callable[[int], float]:
    """The LR factor per optimiser step of this epoch. The official recipe first halves the LR when the selection
    loss rose within the last 5 epochs and rebuilds the optimiser (its scheduler restarts every epoch)."""
    cfg = run.cfg
    if cfg.recipe != "official":
        total_steps = run.steps_per_epoch * cfg.epochs
        warmup_steps = int(round(cfg.warmup_epochs * run.steps_per_epoch))
        return functools.partial(warmup_cosine_factor, total_steps=total_steps, warmup_steps=warmup_steps)
    if halving.should_halve():
        run.state.net_lr /= 2
        logger.info(
            "epoch %d: %s loss rose within the last 5 epochs: LR halved to %g",
            epoch,
            cfg.select_split,
            run.state.net_lr,
        )
    run.optimizer = _build_optimizer(cfg, run.net, run.balancer, run.device, run.state.net_lr)
    return functools.partial(_official_factor, start=run.state.step)


def _official_factor(step: int, start: int) -> float:
    # The official scheduler is rebuilt every epoch: its iteration counter restarts at the epoch's first step.
    return official_cosine_factor(step - start)


def _train_loader(run: _Run, epoch: int, augment: Any) -> Any:
    cfg = run.cfg
    samples = build_samples(
        run.splits.train, cfg.frames_per_video, oversample=run.splits.oversample,
        rng=np.random.default_rng([cfg.seed, epoch, 3]),
    )  # fmt: skip
    channel_order = run.model_config.preprocessing.channel_order
    dataset = FrameDataset(samples, run.model_config.input_size, channel_order, augment, cfg.seed, epoch)
    return make_loader(dataset, run.per_rank, shuffle=True, drop_last=cfg.drop_last, workers=run.workers,
                       pin_memory=run.device.type == "cuda", seed=cfg.seed, epoch=epoch,
                       world_size=run.info.world_size, rank=run.info.rank)  # fmt: skip


def _run_epoch(
    run: _Run, epoch: int, halving: HalvingRule, augment: Any, log: RunLog | None, hooks: Hooks
) -> tuple[dict[str, Any], torch.Tensor]:
    """Train one epoch, evaluate on the selection split, log it and save the epoch's checkpoints; its record and its
    selection-split scores."""
    cfg, state = run.cfg, run.state
    lr_factor = _epoch_lr_factor(run, epoch, halving)
    ctx = StepContext(
        run.model, run.normalize, run.criterion, run.balancer, run.optimizer, lr_factor, run.device, run.amp_dtype,
        run.scaler, grad_accum=cfg.grad_accum, channels_last=cfg.channels_last, mixup=cfg.mixup, alpha=cfg.alpha,
        dist=run.info,
    )  # fmt: skip
    loader = _train_loader(run, epoch, augment)
    train_stats, state.step = train_one_epoch(
        ctx, loader, epoch=epoch, seed=cfg.seed, start_step=state.step, num_batches=len(loader), hooks=hooks
    )
    ddp.broadcast_buffers(run.net, run.info)
    metrics, rows = _evaluate(run, run.net, run.info, hooks)
    if metrics["loss"] is not None:
        halving.observe(metrics["loss"])
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
    rng_states = gather_rng(run.info)
    if log is not None:
        log.write_epoch(record, cfg.select_split)
        save_epoch_checkpoints(run.out_dir, run.net, run.model_config, cfg, state, run.optimizer, run.balancer,
                               run.scaler, rng_states, record, improved)  # fmt: skip
    logger.info(
        "epoch %d/%d: loss %.4f (%s) %.1f img/s | %s AUC %s video AUC %s ACC %s%s",
        epoch,
        cfg.epochs,
        train_stats["loss"],
        ", ".join(f"{k} {train_stats[k]:.4f}" for k in run.settings.term_names()),
        train_stats["images_per_s"],
        cfg.select_split,
        _fmt(auc),
        _fmt(metrics["video"]["auc"]),
        _fmt(metrics["frame"]["acc"]),
        " (best)" if improved else "",
    )
    ddp.barrier(run.info)
    return record, rows


def _evaluate(run: _Run, net: torch.nn.Module, info: ddp.DistInfo, hooks: Hooks) -> tuple[dict[str, Any], Any]:
    """``net`` on the selection split: (metrics, ``predict`` rows)."""
    cfg = run.cfg
    return evaluate_selection(
        net, run.normalize, run.splits.select_samples, run.splits.select_video_of,
        input_size=run.model_config.input_size, channel_order=run.model_config.preprocessing.channel_order,
        batch_size=cfg.eval_batch_size or run.per_rank, workers=run.workers, seed=cfg.seed, device=run.device,
        amp_dtype=run.amp_dtype, channels_last=cfg.channels_last, criterion=run.criterion, balancer=run.balancer,
        info=info, hooks=hooks,
    )  # fmt: skip


def _finish_training(run: _Run, last_record: dict[str, Any], scores: _SelectionScores, hooks: Hooks) -> dict:
    """The end-of-training step, on every rank after the last epoch (``model_best.pth`` and ``last.pth`` are
    written): rank 0 writes the model card, with the threshold chosen on each checkpoint's validation scores, into
    both (:mod:`.model_card`); the run's summary, with the best checkpoint's threshold (or why it has none)."""
    summary: dict[str, Any] = {
        "epochs": run.state.epoch,
        "best_auc": run.state.best_auc,
        "best_epoch": run.state.best_epoch,
        "last": last_record,
        "output": str(run.out_dir),
        "threshold": None,
        "threshold_note": "",
    }
    if not last_record:
        summary["threshold_note"] = "no epoch ran: the checkpoints were left as they are"
        return summary
    if run.info.is_main:
        from lib_deepfake.train.model_card import card_for_checkpoint

        splits = run.splits
        outcome = card_for_checkpoint(run.out_dir / "last.pth", run.cfg, scores.last, splits.select_video_of,
                                      splits.select)  # fmt: skip
        best_path = run.out_dir / "model_best.pth"
        if best_path.is_file():
            best_rows = scores.best
            if best_rows is None and run.cfg.select_split == "val":
                best_rows = _score_checkpoint(run, best_path, hooks)  # its epoch ran before a resume
            outcome = card_for_checkpoint(best_path, run.cfg, best_rows, splits.select_video_of, splits.select)
        threshold = outcome.card.threshold
        summary.update(threshold=threshold.to_dict() if threshold is not None else None, threshold_note=outcome.note,
                       demo=outcome.card.demo, card_in=outcome.path.name)  # fmt: skip
    ddp.barrier(run.info)
    return summary


def _score_checkpoint(run: _Run, path: Path, hooks: Hooks) -> torch.Tensor:
    """The selection-split rows of the checkpoint at ``path``, scored by this process alone (rank 0 after a resume:
    the other ranks wait at the barrier that ends training)."""
    from lib_deepfake.model.checkpoint import load_model

    logger.info("scoring %s on the %s split for its threshold", path.name, run.cfg.select_split)
    net, _ = load_model(path)
    net.to(run.device)
    if run.cfg.channels_last:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    _, rows = _evaluate(run, net, ddp.DistInfo(), hooks)
    return rows


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
