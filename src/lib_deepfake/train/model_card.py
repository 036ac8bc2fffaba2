"""The end of training: the decision threshold chosen on the validation videos and the model card written into
``model_best.pth`` and ``last.pth``.

Each checkpoint gets a threshold chosen on its own validation scores (the scores of the epoch that wrote it): the
frame scores are averaged into one score per video (the face folders ``face0``, ``face1``, ... of one video
together), and the rule (``--threshold-rule``: ``eer``, ``youden``, ``target-fpr:F``) picks the cut of that ROC
curve, so the threshold lives on the scale ``lib-infer`` judges videos on. The official recipe selects its
checkpoints on the test split and scores no validation split: its checkpoints carry a card without a threshold
(0.5 downstream, and said so), and the test metrics they were selected on, marked as such.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib_deepfake.errors import ContractError
from lib_deepfake.model.card import CARD_KEY, DatasetCounts, ModelCard
from lib_deepfake.model.checkpoint import load_model, save_checkpoint
from lib_deepfake.model.config import LIBConfig
from lib_deepfake.model.threshold import ThresholdChoice, choose_threshold
from lib_deepfake.train.config import TrainConfig
from lib_deepfake.train.lists import Video, video_of_folder
from lib_deepfake.train.metrics import video_scores

logger = logging.getLogger(__name__)

#: The training settings a card records (the rest is in the run's config.json).
RECIPE_KEYS = ("recipe", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "schedule", "warmup_epochs",
               "frames_per_video", "eval_frames_per_video", "real_oversample", "augment", "mixup", "gil", "lil",
               "lil_method", "balance", "pretrained", "seed", "select_split", "threshold_rule")  # fmt: skip

NO_VAL_REASON = (
    "the official recipe selects checkpoints on the test split and scores no validation split, so no threshold was "
    "calibrated: 0.5 is used downstream, and said so (the default recipe calibrates one on val)"
)


@dataclass
class CardOutcome:
    """What the end of training wrote into one checkpoint."""

    path: Path
    card: ModelCard
    note: str = ""  # why the card holds no threshold, when it holds none


def video_groups(videos: list[Video]) -> np.ndarray:
    """int64 [F]: the video index of every listed face folder (``x.mp4/face0`` and ``x.mp4/face1`` share one)."""
    index: dict[str, int] = {}
    return np.array([index.setdefault(video_of_folder(v.key)[0], len(index)) for v in videos], dtype=np.int64)


def choose_video_threshold(rows: torch.Tensor, video_of_sample: np.ndarray, videos: list[Video], rule: str,
                           datasets: tuple[str, ...] | list[str]) -> ThresholdChoice:  # fmt: skip
    """The threshold ``rule`` picks on the mean frame score of every validation video.

    Args:
        rows: ``predict`` rows float64 [N, 3] = (sample index, label, P(fake)).
        video_of_sample: sample index -> index into ``videos`` (the listed face folders).
        videos: the validation split's face folders.

    Raises:
        ContractError: one class only among the scored videos, or scores outside [0, 1].
    """
    idx = rows[:, 0].long().numpy()
    labels = rows[:, 1].long().numpy()
    scores = rows[:, 2].numpy()
    groups = video_groups(videos)[video_of_sample[idx]]
    _, vlabels, vscores = video_scores(groups, labels, scores)
    return choose_threshold(vlabels, vscores, rule, level="video", split="val", datasets=list(datasets))


def architecture_text(config: LIBConfig) -> str:
    """``LIB 4 x resnet34 @224 px, RGB input`` (with ``width x0.5`` when the backbones are narrowed)."""
    width = f" width x{config.width_mult:g}" if config.width_mult != 1.0 else ""
    prep = config.preprocessing
    return f"LIB {config.num_libs} x {config.backbone}{width} @{prep.input_size} px, {prep.channel_order} input"


def build_card(cfg: TrainConfig, model_config: LIBConfig, record: dict[str, Any],
               threshold: ThresholdChoice | None) -> ModelCard:  # fmt: skip
    """The card of a checkpoint whose epoch record (metrics.jsonl line) is ``record``."""
    training_data = [_dataset_counts(Path(cfg.dataset_root) / name) for name in cfg.datasets]
    config = cfg.to_dict()
    recipe = {key: config[key] for key in RECIPE_KEYS}
    recipe["checkpoint_epoch"] = record.get("epoch")
    selection = record.get(cfg.select_split)
    val_metrics, test_metrics = None, {}
    if cfg.select_split == "val":
        val_metrics = selection
    elif selection:
        note = "the split this checkpoint was selected on (official recipe): an optimistic figure"
        test_metrics = {", ".join(cfg.datasets): {**selection, "note": note}}
    return ModelCard.build(training_data, recipe, architecture=architecture_text(model_config),
                           val_metrics=val_metrics, test_metrics=test_metrics, threshold=threshold)  # fmt: skip


def _dataset_counts(dataset_dir: Path) -> DatasetCounts:
    from lib_deepfake.prep.dataset import describe_lists

    return DatasetCounts.from_dict(describe_lists(dataset_dir))


def card_for_checkpoint(path: Path, cfg: TrainConfig, rows: torch.Tensor | None, video_of_sample: np.ndarray,
                        videos: list[Video]) -> CardOutcome:  # fmt: skip
    """Choose the threshold on ``rows`` (that checkpoint's validation scores), build the card and re-save the
    checkpoint at ``path`` with it under :data:`CARD_KEY` (everything else kept; written atomically).

    Args:
        rows: the checkpoint's ``predict`` rows on the selection split (used when that split is val).
        video_of_sample, videos: as :func:`choose_video_threshold`.
    """
    net, ckpt = load_model(path)
    record = json.loads(ckpt.extra.get("metrics") or "{}")
    threshold, note = None, ""
    if cfg.select_split != "val":
        note = NO_VAL_REASON
    elif rows is None or rows.shape[0] == 0:
        note = "no validation scores: no threshold was calibrated (0.5 is used downstream, and said so)"
    else:
        try:
            threshold = choose_video_threshold(rows, video_of_sample, videos, cfg.threshold_rule, cfg.datasets)
        except ContractError as exc:
            note = f"no threshold was calibrated ({exc}): 0.5 is used downstream, and said so"
    card = build_card(cfg, ckpt.config, record, threshold)
    save_checkpoint(path, net, ckpt.config, epoch=ckpt.epoch, **{**ckpt.extra, CARD_KEY: card.to_dict()})
    if threshold is not None:
        logger.info("%s: threshold %s", path.name, threshold.describe())
    else:
        logger.warning("%s: %s", path.name, note)
    return CardOutcome(path, card, note)
