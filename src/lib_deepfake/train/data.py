"""Frames -> uint8 RGB batches. Normalisation is not done here: the model's preprocessing contract does it on the
device (:func:`lib_deepfake.train.normalize.make_normalizer`), the same code path inference and export use.

Per sample (method.md §4.5): read the PNG, resize to S x S (bilinear; the official loader resizes every split),
then - training only - the official augmentations, applied in the channel order of the weights (the official
pipeline saw BGR arrays), and back to RGB for the engine contract. A file that cannot be decoded is skipped and
counted, never a crash in the middle of an epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lib_deepfake.train.lists import Sample

logger = logging.getLogger(__name__)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_png(path: str) -> tuple[np.ndarray | None, str]:
    """Decode a PNG to uint8 BGR [H, W, 3]; ``(None, reason)`` when it is not a readable PNG."""
    import cv2

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    if not data.startswith(PNG_MAGIC):
        return None, "not a PNG file"
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.shape[0] == 0:
        return None, "corrupt PNG"
    return image, ""


class FrameDataset(Dataset):
    """Face crops of one split.

    Args:
        samples: frames with labels and video indices.
        size: output side S.
        channel_order: the weights' order; augmentations run in it.
        augment: an albumentations ``Compose`` or None (evaluation).
        seed: base seed; with ``epoch`` and the sample index it seeds each sample's augmentation, so the result
            does not depend on the number of workers and a resumed run draws the same augmentations.
        epoch: epoch number mixed into the augmentation seed.

    Items are ``(face uint8 [S, S, 3] RGB, label, sample index, error)``; ``error`` is ``""`` or the reason the file
    was skipped (the face is then all zeros and dropped by :func:`collate`).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int,
        channel_order: str = "RGB",
        augment: Any = None,
        seed: int = 0,
        epoch: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.size = size
        self.channel_order = channel_order
        self.augment = augment
        self.seed = seed
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, str]:
        import cv2

        sample = self.samples[index]
        image, error = read_png(sample.path)
        if image is None:
            return torch.zeros(self.size, self.size, 3, dtype=torch.uint8), sample.label, index, error
        if image.shape[:2] != (self.size, self.size):
            image = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        if self.augment is not None:
            if self.channel_order == "RGB":
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            self.augment.set_random_seed(_sample_seed(self.seed, self.epoch, index))
            image = self.augment(image=image)["image"]
            if self.channel_order == "BGR":
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return torch.from_numpy(np.ascontiguousarray(image)), sample.label, index, error


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


@dataclass
class Batch:
    """A collated batch: faces uint8 [B, S, S, 3] RGB (CPU), labels int64 [B], sample indices int64 [B], and the
    ``(sample index, reason)`` of files that were skipped."""

    faces: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def pin_memory(self) -> Batch:
        return Batch(self.faces.pin_memory(), self.labels.pin_memory(), self.indices.pin_memory(), self.skipped)


def collate(items: list[tuple[torch.Tensor, int, int, str]]) -> Batch:
    good = [it for it in items if not it[3]]
    skipped = [(it[2], it[3]) for it in items if it[3]]
    if not good:
        size = items[0][0].shape[0] if items else 1
        empty = torch.zeros(0, size, size, 3, dtype=torch.uint8)
        return Batch(empty, torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), skipped)
    return Batch(
        torch.stack([it[0] for it in good]),
        torch.tensor([it[1] for it in good], dtype=torch.int64),
        torch.tensor([it[2] for it in good], dtype=torch.int64),
        skipped,
    )


def _worker_init(_: int) -> None:
    # OpenCV's own thread pool in every worker oversubscribes the cores the workers already use.
    import cv2

    cv2.setNumThreads(0)


def make_loader(
    dataset: FrameDataset,
    batch_size: int,
    *,
    shuffle: bool,
    drop_last: bool,
    workers: int,
    pin_memory: bool,
    seed: int,
    epoch: int,
    world_size: int = 1,
    rank: int = 0,
) -> torch.utils.data.DataLoader:
    """A DataLoader whose order depends only on (seed, epoch): resumable and the same for any worker count.

    With ``world_size > 1`` a ``DistributedSampler`` gives every rank its share (evaluation pads the last share
    by repeating samples; callers de-duplicate by sample index).
    """
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

    if world_size > 1:
        sampler: Any = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last and shuffle
        )
        sampler.set_epoch(epoch)
    elif shuffle:
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch, 7]).generate_state(1)[0]))
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=drop_last,
        worker_init_fn=_worker_init if workers > 0 else None,
        # Not persistent: each epoch builds a new dataset (frames re-drawn, epoch in the augmentation seed).
        persistent_workers=False,
    )
