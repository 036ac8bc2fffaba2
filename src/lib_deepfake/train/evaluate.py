"""Evaluation: the selection split after every training epoch (:func:`evaluate_selection`), and any checkpoint on
a split for ``lib-train --eval-only`` (:func:`evaluate_checkpoint`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib_deepfake.train import ddp
from lib_deepfake.train.balance import Balancer
from lib_deepfake.train.components import default_workers
from lib_deepfake.train.data import FrameDataset, make_loader
from lib_deepfake.train.lists import Sample, Video, build_samples, read_split
from lib_deepfake.train.loop import Hooks, metrics_from_rows, predict, resolve_amp
from lib_deepfake.train.losses import LIBCriterion
from lib_deepfake.train.normalize import make_normalizer


def _eval_loader(
    samples: list[Sample],
    input_size: int,
    channel_order: str,
    batch_size: int,
    *,
    workers: int,
    pin_memory: bool,
    seed: int,
    info: ddp.DistInfo,
) -> Any:
    dataset = FrameDataset(samples, input_size, channel_order)
    return make_loader(
        dataset,
        batch_size,
        shuffle=False,
        drop_last=False,
        workers=workers,
        pin_memory=pin_memory,
        seed=seed,
        epoch=0,
        world_size=info.world_size,
        rank=info.rank,
    )


def evaluate_selection(
    net: torch.nn.Module,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    samples: list[Sample],
    video_of_sample: np.ndarray,
    *,
    input_size: int,
    channel_order: str,
    batch_size: int,
    workers: int,
    seed: int,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    criterion: LIBCriterion,
    balancer: Balancer,
    info: ddp.DistInfo,
    hooks: Hooks,
) -> tuple[dict[str, Any], torch.Tensor]:
    """Frame and video metrics of ``net`` on the selection split, with its mean balanced loss (``loss``, which the
    official recipe's LR halving watches) and the number of unreadable frames (``skipped``); and the scores behind
    them: ``predict`` rows (sample index, label, P(fake)), from which the end of training chooses the threshold."""
    loader = _eval_loader(samples, input_size, channel_order, batch_size, workers=workers,
                          pin_memory=device.type == "cuda", seed=seed, info=info)  # fmt: skip
    rows, loss, skipped = predict(
        net,
        normalize,
        loader,
        device=device,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        criterion=criterion,
        balancer=balancer,
        dist=info,
        num_batches=len(loader),
        hooks=hooks,
    )
    metrics = metrics_from_rows(rows, video_of_sample)
    metrics["loss"] = loss
    metrics["skipped"] = skipped
    return metrics, rows


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
        loader = _eval_loader(samples, prep.input_size, prep.channel_order, batch_size,
                              workers=default_workers(dev, workers), pin_memory=dev.type == "cuda", seed=0,
                              info=info)  # fmt: skip
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
