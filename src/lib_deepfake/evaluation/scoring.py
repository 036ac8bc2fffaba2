"""P(fake) of every listed face crop of a prepared dataset's split, from any engine.

The crops are read exactly as lib-train evaluates them (:mod:`lib_deepfake.train.lists` enumerates the list files,
:class:`lib_deepfake.train.data.FrameDataset` reads the PNGs, resizes to the model's input size and hands out
uint8 RGB), batched, and run through an :class:`~lib_deepfake.engines.base.Engine` (torch, onnxrt, trt): the
engine contract ``faces uint8 [N, S, S, 3] RGB -> prob_fake float32 [N]`` is all this module relies on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DatasetScores", "score_dataset"]


@dataclass
class DatasetScores:
    """Frame scores of one dataset split.

    Attributes:
        dataset, split: what was scored.
        folders: face-folder keys (path relative to the dataset root), one per listed folder.
        folder_labels: int [F] label of each folder (1 = fake).
        frame_paths: the scored PNGs.
        frame_folder: int [N] index into ``folders`` of each scored frame.
        labels: int [N] frame labels; ``scores``: float64 [N] P(fake).
        skipped: ``(path, reason)`` of PNGs that could not be read (not scored).
    """

    dataset: str
    split: str
    folders: list[str]
    folder_labels: np.ndarray
    frame_paths: list[str]
    frame_folder: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)


def score_dataset(
    engine: Any,
    dataset_root: Path | str,
    dataset: str,
    split: str = "test",
    *,
    frames_per_video: int | None = None,
    batch_size: int = 64,
    workers: int = 0,
    progress: Callable[[Iterable[Any], int, str], Iterable[Any]] | None = None,
) -> DatasetScores:
    """Score every listed crop (or ``frames_per_video`` evenly spaced ones per folder) of ``dataset``'s ``split``.

    Args:
        engine: a loaded engine (its ``input_size`` and ``device`` are used).
        dataset_root, dataset, split: the official list layout ``ROOT/NAME/{split}_{real,fake}.txt``.
        frames_per_video: None = every listed frame; N = N evenly spaced frames per folder (deterministic).
        batch_size: crops per engine call.
        workers: PNG-reading processes (0: in this process).
        progress: ``(iterable, total, description) -> iterable`` (a progress bar), or None.

    Raises:
        DatasetError: missing dataset, list files or folders (from :func:`lib_deepfake.train.lists.read_split`).
    """
    from lib_deepfake.train.data import FrameDataset, make_loader
    from lib_deepfake.train.lists import build_samples, read_split

    videos = read_split(Path(dataset_root), [dataset], split)
    samples = build_samples(videos, frames_per_video)
    data = FrameDataset(samples, int(engine.input_size))
    loader = make_loader(data, batch_size, shuffle=False, drop_last=False, workers=workers, pin_memory=False,
                         seed=0, epoch=0)  # fmt: skip
    scores = np.full(len(samples), np.nan, dtype=np.float64)
    skipped: list[tuple[str, str]] = []
    batches: Iterable[Any] = loader
    if progress is not None:
        batches = progress(loader, len(loader), f"{dataset} {split}")
    for batch in batches:
        skipped.extend((samples[i].path, reason) for i, reason in batch.skipped)
        if batch.faces.shape[0] == 0:
            continue
        prob = engine.infer(batch.faces.to(engine.device))
        scores[batch.indices.numpy()] = prob.float().cpu().numpy()
    scored = np.flatnonzero(~np.isnan(scores))
    return DatasetScores(
        dataset=dataset,
        split=split,
        folders=[v.key for v in videos],
        folder_labels=np.array([v.label for v in videos], dtype=np.int64),
        frame_paths=[samples[i].path for i in scored],
        frame_folder=np.array([samples[i].video for i in scored], dtype=np.int64),
        labels=np.array([samples[i].label for i in scored], dtype=np.int64),
        scores=scores[scored],
        skipped=skipped,
    )
