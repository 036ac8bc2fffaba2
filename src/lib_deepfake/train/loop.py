"""One training epoch and one evaluation pass. Orchestration is in ``fit.py`` (resume: ``run_state.py``, logs:
``run_log.py``)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lib_deepfake.train.balance import Balancer
from lib_deepfake.train.ddp import DistInfo, all_reduce_mean, dedupe_by_index, gather_rows
from lib_deepfake.train.errors import TrainingError
from lib_deepfake.train.losses import LIBCriterion
from lib_deepfake.train.metrics import evaluate_scores

logger = logging.getLogger(__name__)


@dataclass
class Hooks:
    """How the caller (the CLI) shows progress. The library never draws bars itself.

    Attributes:
        wrap: ``(iterable, total, description) -> iterable`` - e.g. a tqdm bar.
        on_step: called with running statistics (loss, images/s, lr) after every optimiser step.
    """

    wrap: Callable[[Iterable[Any], int, str], Iterable[Any]] | None = None
    on_step: Callable[[dict[str, float]], None] | None = None


@dataclass
class StepContext:
    """What a training epoch needs besides the data."""

    model: nn.Module  # the network, possibly DDP-wrapped
    normalize: Callable[[torch.Tensor], torch.Tensor]
    criterion: LIBCriterion
    balancer: Balancer
    optimizer: torch.optim.Optimizer
    lr_factor: Callable[[int], float]  # optimiser step (global or within epoch, per recipe) -> LR factor
    device: torch.device
    amp_dtype: torch.dtype | None
    scaler: Any  # torch.amp.GradScaler or None
    grad_accum: int = 1
    channels_last: bool = False
    mixup: bool = True
    alpha: float = 0.5
    dist: DistInfo = field(default_factory=DistInfo)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 on CUDA devices that support it, fp16 on older ones, off on CPU."""
    if amp == "off":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _prepare(
    batch_faces: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    channels_last: bool,
) -> torch.Tensor:
    faces = batch_faces.to(device, non_blocking=True)
    x = normalize(faces)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def train_one_epoch(
    ctx: StepContext,
    loader: Iterable[Any],
    *,
    epoch: int,
    seed: int,
    start_step: int,
    num_batches: int,
    hooks: Hooks | None = None,
) -> tuple[dict[str, Any], int]:
    """Train over ``loader`` once.

    Args:
        ctx: model, optimiser and settings.
        loader: yields :class:`~lib_deepfake.train.data.Batch`.
        epoch: the epoch number (seeds mixup, so a resumed run draws the same λ's).
        seed: run seed.
        start_step: optimiser steps taken before this epoch (the LR schedule's counter).
        num_batches: batches the loader yields (for progress and accumulation).
        hooks: progress callbacks.

    Returns:
        (epoch statistics, optimiser steps taken after the epoch).
    """
    hooks = hooks or Hooks()
    ctx.model.train()
    mix_rng = np.random.default_rng([seed, epoch, 11])
    perm_gen = torch.Generator().manual_seed(int(mix_rng.integers(2**62)))
    sums: dict[str, float] = {}
    seen = 0
    skipped: list[tuple[int, str]] = []
    small = 0
    step = start_step
    micro = 0
    t0 = time.perf_counter()
    iterable = hooks.wrap(loader, num_batches, f"epoch {epoch}") if hooks.wrap else loader
    ctx.optimizer.zero_grad(set_to_none=True)
    for bi, batch in enumerate(iterable):
        skipped.extend(batch.skipped)
        n = int(batch.labels.shape[0])
        if n < 2:  # BatchNorm1d in the fusion layer cannot normalise one sample in train mode
            small += 1
            continue
        x = _prepare(batch.faces, ctx.normalize, ctx.device, ctx.channels_last)
        labels = batch.labels.to(ctx.device, non_blocking=True)
        mix = None
        if ctx.mixup:
            lam = float(mix_rng.beta(ctx.alpha, ctx.alpha))
            perm = torch.randperm(n, generator=perm_gen).to(ctx.device)
            x = lam * x + (1.0 - lam) * x[perm]
            mix = (lam, perm)
        micro += 1
        sync = micro % ctx.grad_accum == 0 or bi == num_batches - 1
        no_sync = getattr(ctx.model, "no_sync", None)
        sync_ctx = no_sync() if (no_sync is not None and not sync) else contextlib.nullcontext()
        with sync_ctx:
            with _autocast(ctx.device, ctx.amp_dtype):
                out = ctx.model(x)
            terms = ctx.criterion(out, labels, mix)
            loss = ctx.balancer(terms)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"non-finite loss ({float(loss)}) at epoch {epoch}, batch {bi}: lower --lr, or use --amp bf16/off"
                )
            scaled = loss / ctx.grad_accum
            (ctx.scaler.scale(scaled) if ctx.scaler is not None else scaled).backward()
        if sync:
            _sync_balancer_grads(ctx.balancer, ctx.dist)
            factor = ctx.lr_factor(step)
            for group in ctx.optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            if ctx.scaler is not None:
                ctx.scaler.step(ctx.optimizer)
                ctx.scaler.update()
            else:
                ctx.optimizer.step()
            ctx.optimizer.zero_grad(set_to_none=True)
            step += 1
            micro = 0
        seen += n
        sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * n
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach()) * n
        if hooks.on_step is not None and sync:
            elapsed = max(time.perf_counter() - t0, 1e-9)
            hooks.on_step(
                {"loss": sums["loss"] / seen, "img_s": seen / elapsed, "lr": ctx.optimizer.param_groups[0]["lr"]}
            )
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    elapsed = time.perf_counter() - t0
    names = sorted(sums)
    local = torch.tensor([sums[k] for k in names] + [float(seen), float(len(skipped))], dtype=torch.float64)
    total = all_reduce_mean(local, ctx.dist) * ctx.dist.world_size
    seen_all = float(total[len(names)])
    stats: dict[str, Any] = {k: float(total[i]) / max(seen_all, 1.0) for i, k in enumerate(names)}
    stats.update(
        images=int(seen_all),
        skipped=int(total[len(names) + 1]),
        time_s=elapsed,
        images_per_s=seen_all / max(elapsed, 1e-9),
        lr=float(ctx.optimizer.param_groups[0]["lr"]),
        weights=ctx.balancer.weights(),
    )
    if small:
        logger.debug("skipped %d training batches with fewer than 2 samples", small)
    if skipped:
        logger.warning(
            "epoch %d: skipped %d unreadable images (first: sample %d: %s)",
            epoch,
            len(skipped),
            skipped[0][0],
            skipped[0][1],
        )
    return stats, step


def _sync_balancer_grads(balancer: nn.Module, dist: DistInfo) -> None:
    # The balancer lives outside DDP (its σ's are not part of the network): average their gradients by hand so
    # every rank keeps identical loss weights.
    if not dist.distributed:
        return
    for p in balancer.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= dist.world_size


@torch.no_grad()
def predict(
    net: nn.Module,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    loader: Iterable[Any],
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    criterion: LIBCriterion | None = None,
    balancer: Balancer | None = None,
    dist: DistInfo | None = None,
    num_batches: int = 0,
    hooks: Hooks | None = None,
) -> tuple[torch.Tensor, float | None, int]:
    """P(fake) of every sample of ``loader`` (gathered over ranks).

    Returns:
        (rows float64 [N, 3] = (sample index, label, score) sorted by index, mean balanced loss or None, skipped).
    """
    dist = dist or DistInfo()
    hooks = hooks or Hooks()
    was_training = net.training
    net.eval()
    rows: list[torch.Tensor] = []
    loss_sum, count, skipped = 0.0, 0, 0
    iterable = hooks.wrap(loader, num_batches, "eval") if hooks.wrap else loader
    for batch in iterable:
        skipped += len(batch.skipped)
        if batch.labels.numel() == 0:
            continue
        x = _prepare(batch.faces, normalize, device, channels_last)
        with _autocast(device, amp_dtype):
            out = net(x)
        score = torch.softmax(out.fused.float(), dim=1)[:, 1]
        if criterion is not None and balancer is not None:
            labels = batch.labels.to(device)
            loss_sum += float(balancer(criterion(out, labels))) * labels.numel()
            count += labels.numel()
        rows.append(torch.stack([batch.indices.double(), batch.labels.double(), score.double().cpu()], dim=1))
    net.train(was_training)
    local = torch.cat(rows) if rows else torch.zeros(0, 3, dtype=torch.float64)
    gathered = dedupe_by_index(gather_rows(local, dist))
    extra = all_reduce_mean(torch.tensor([loss_sum, float(count), float(skipped)], dtype=torch.float64), dist)
    extra = extra * dist.world_size
    mean_loss = float(extra[0] / extra[1]) if extra[1] > 0 else None
    return gathered, mean_loss, int(extra[2])


def metrics_from_rows(rows: torch.Tensor, video_of_sample: np.ndarray) -> dict[str, Any]:
    """Frame and video metrics from ``predict`` rows; ``video_of_sample`` maps sample index -> video index."""
    idx = rows[:, 0].long().numpy()
    labels = rows[:, 1].long().numpy()
    scores = rows[:, 2].numpy()
    return evaluate_scores(labels, scores, video_of_sample[idx])
