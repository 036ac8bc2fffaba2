"""The official dataset layout: ``ROOT/NAME/{train,val,test}_{real,fake}.txt`` and folders of PNG face crops.

Each list line is ``label,dir,frames`` (method.md §4.4): label 1 = fake, 0 = real; ``dir`` is a folder of PNG crops
(relative dirs are resolved against ROOT); ``frames`` is ignored. Frames are enumerated in sorted order (the official
``os.listdir`` order is arbitrary, §5.18). Videos are keyed by their folder path relative to ROOT, never by the
folder name alone (``071_054.mp4`` exists once per FF++ method).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib_deepfake.errors import DatasetError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
CLASSES = ("real", "fake")
_IDENTITY = re.compile(r"^face(\d+)$")


@dataclass(frozen=True)
class Video:
    """One list entry: a folder of face crops.

    Attributes:
        key: folder path relative to ROOT (POSIX), unique across datasets and methods.
        label: 0 real, 1 fake.
        dataset: the dataset name whose list named it.
        frames: absolute paths of its PNG crops, sorted.
    """

    key: str
    label: int
    dataset: str
    frames: tuple[str, ...]


@dataclass(frozen=True)
class Sample:
    """One frame to load: path, label and the index of its video in the split's video list."""

    path: str
    label: int
    video: int


def video_of_folder(key: str) -> tuple[str, int]:
    """``(video key, identity)`` of a face folder: ``a/b.mp4/face1`` -> ``("a/b.mp4", 1)``, ``a/b.mp4`` -> id 0.

    ``lib-prep --faces all`` writes one folder per face identity (``face0``, ``face1``, ...) under the video's folder;
    a video-level score gathers them again.
    """
    head, _, tail = key.rpartition("/")
    m = _IDENTITY.match(tail)
    if m and head:
        return head, int(m.group(1))
    return key, 0


def official_real_ratio(dataset: str) -> int:
    """Real-class oversampling of the official loader (method.md §4.4): substring rules, checked in its order."""
    if "FF++" in dataset or "DFDC-Preview" in dataset:
        return 4
    if "Celeb-DF-v2" in dataset:
        return 6
    if "DFDC" in dataset:
        return 5
    return 1


def real_ratio(dataset: str, policy: str | int) -> int:
    if policy == "official":
        return official_real_ratio(dataset)
    if policy == "none":
        return 1
    return int(policy)


def _parse_line(line: str, where: str) -> tuple[int, str] | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) < 2 or not parts[1]:
        raise DatasetError(f"{where}: expected 'label,dir,frames', got {text[:80]!r}")
    if parts[0] not in ("0", "1"):
        raise DatasetError(f"{where}: label must be 0 (real) or 1 (fake), got {parts[0]!r}")
    return int(parts[0]), parts[1]


def _resolve_dir(root: Path, entry: str, where: str) -> tuple[Path, str]:
    path = Path(entry)
    full = (path if path.is_absolute() else root / path).resolve()
    try:
        key = full.relative_to(root).as_posix()
    except ValueError:
        raise DatasetError(f"{where}: {entry!r} points outside the dataset root {root}") from None
    return full, key


def read_list(root: Path, dataset: str, split: str, cls: str) -> list[Video]:
    """Read one list file and enumerate the PNG frames of every folder it names.

    Raises:
        DatasetError: missing list or folder, bad label, a path outside ROOT, an empty list.
    """
    root = Path(root).resolve()
    list_path = root / dataset / f"{split}_{cls}.txt"
    if not list_path.is_file():
        raise DatasetError(f"missing list file {list_path} (expected ROOT/NAME/{split}_{cls}.txt)")
    expected = CLASSES.index(cls)
    videos: list[Video] = []
    no_png: list[str] = []
    non_png = 0
    mislabelled = 0
    with open(list_path, encoding="utf-8") as fh:
        lines = fh.readlines()
    for lineno, line in enumerate(lines, start=1):
        where = f"{list_path}:{lineno}"
        parsed = _parse_line(line, where)
        if parsed is None:
            continue
        label, entry = parsed
        mislabelled += label != expected
        folder, key = _resolve_dir(root, entry, where)
        if not folder.is_dir():
            raise DatasetError(f"{where}: frame folder {folder} does not exist")
        frames: list[str] = []
        with os.scandir(folder) as it:
            for item in it:
                if not item.is_file():
                    continue
                if item.name.lower().endswith(".png"):
                    frames.append(item.path)
                elif not item.name.startswith(".") and not item.name.lower().endswith(".json"):
                    # lib-prep keeps landmarks.json and a .done.json marker beside the crops: expected, not noise
                    non_png += 1
        if not frames:
            no_png.append(key)
            continue
        frames.sort()
        videos.append(Video(key=key, label=label, dataset=dataset, frames=tuple(frames)))
    if non_png:
        logger.warning("%s: ignored %d files that are not .png in the listed folders", list_path, non_png)
    if mislabelled:
        logger.warning("%s: %d lines carry label %d; the line's label is used", list_path, mislabelled, 1 - expected)
    if no_png:
        logger.warning("%s: skipped %d folders without PNG frames (first: %s)", list_path, len(no_png), no_png[0])
    if not videos:
        raise DatasetError(f"{list_path} lists no folder with PNG frames (empty list or empty folders)")
    return videos


def read_split(root: Path, datasets: tuple[str, ...] | list[str], split: str) -> list[Video]:
    """All videos of ``split`` over several datasets, real lists first (stable order)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist")
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    videos: list[Video] = []
    for name in datasets:
        if not (root / name).is_dir():
            raise DatasetError(f"dataset folder {root / name} does not exist")
        for cls in CLASSES:
            videos.extend(read_list(root, name, split, cls))
    seen: dict[str, int] = {}
    for v in videos:
        seen[v.key] = seen.get(v.key, 0) + 1
    dup = [k for k, c in seen.items() if c > 1]
    if dup:
        logger.warning("%d folders are listed more than once in %s (first: %s)", len(dup), split, dup[0])
    return videos


def require_both_classes(videos: list[Video], split: str) -> None:
    """AUC is undefined on one class: say so before spending an epoch."""
    labels = {v.label for v in videos}
    if len(labels) < 2:
        only = "fake" if labels == {1} else "real"
        raise DatasetError(
            f"the {split} split has only {only} videos: AUC (the selection metric) is undefined; "
            f"list both real and fake folders in {split}_real.txt / {split}_fake.txt"
        )


def pick_frames(count: int, n: int | None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of the frames to use out of ``count``.

    Args:
        count: frames in the folder.
        n: None = all; otherwise n frames, one per equal segment: the segment centre (``rng`` None, deterministic
            evaluation) or a random frame of the segment (training, re-drawn every epoch).
    """
    if n is None or n >= count:
        return np.arange(count)
    edges = np.linspace(0, count, n + 1)
    if rng is None:
        idx = np.floor((edges[:-1] + edges[1:]) / 2)
    else:
        idx = np.floor(edges[:-1] + rng.random(n) * (edges[1:] - edges[:-1]))
    return np.clip(idx.astype(np.int64), 0, count - 1)


def build_samples(
    videos: list[Video],
    frames_per_video: int | None,
    *,
    oversample: str | int = "none",
    rng: np.random.Generator | None = None,
) -> list[Sample]:
    """Frames of every video (optionally sampled), real frames repeated by the oversampling ratio."""
    samples: list[Sample] = []
    for vi, video in enumerate(videos):
        repeat = real_ratio(video.dataset, oversample) if video.label == 0 else 1
        picked = [video.frames[i] for i in pick_frames(len(video.frames), frames_per_video, rng)]
        for _ in range(repeat):
            samples.extend(Sample(p, video.label, vi) for p in picked)
    return samples
