"""Miniature copies of FaceForensics++, Celeb-DF-v2 and DFDC, with file names, folders and split/label files as the
datasets ship them. Each builder takes a ``clip(label, index) -> bytes`` source: real synthetic clips for the end
to end tests, a few placeholder bytes for the reader tests (readers never open videos).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

Clip = Callable[[int, int], bytes]


def placeholder(label: int, index: int) -> bytes:
    return f"not a video {label} {index}".encode()


def corpus_clips(corpus: Path) -> Clip:
    """Cycle through the synthetic corpus' real (label 0) and fake (label 1) clips."""
    reals = sorted((corpus / "videos").glob("real_*.mp4"))
    fakes = sorted((corpus / "videos").glob("fake_*.mp4"))

    def clip(label: int, index: int) -> bytes:
        pool = fakes if label else reals
        return pool[index % len(pool)].read_bytes()

    return clip


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_faceforensics(
    root: Path,
    clip: Clip,
    *,
    splits: dict[str, list[list[str]]] | None = None,
    methods: tuple[str, ...] = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"),
    compression: str = "c23",
    splits_in: str = "root",
) -> Path:
    """``original_sequences/youtube/<c>/videos/NNN.mp4``, ``manipulated_sequences/<M>/<c>/videos/A_B.mp4`` (both
    directions of every pair) and train/val/test.json (in ROOT, ROOT/splits or nowhere: ``splits_in``)."""
    splits = splits or {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}
    n = 0
    for pairs in splits.values():
        for a, b in pairs:
            for vid in (a, b):
                _write(root / "original_sequences" / "youtube" / compression / "videos" / f"{vid}.mp4", clip(0, n))
                n += 1
            for method in methods:
                folder = root / "manipulated_sequences" / method / compression / "videos"
                _write(folder / f"{a}_{b}.mp4", clip(1, n))
                _write(folder / f"{b}_{a}.mp4", clip(1, n + 1))
                n += 2
                # masks ship beside the videos and must not be taken for videos
                _write(root / "manipulated_sequences" / method / "masks" / "videos" / f"{a}_{b}.mp4", b"mask")
    if splits_in != "none":
        folder = root if splits_in == "root" else root / "splits"
        for split, pairs in splits.items():
            _write(folder / f"{split}.json", json.dumps(pairs).encode())
    return root


def make_celebdf(root: Path, clip: Clip, test: list[str] | None = None) -> Path:
    """Celeb-real (id0_0000, id0_0001, id1_0000), YouTube-real (00000, 00001), Celeb-synthesis (id0_id1_0000,
    id0_id1_0001, id1_id0_0000) and List_of_testing_videos.txt in Celeb-DF's own convention (1 = real, 0 = fake)."""
    names = {
        "Celeb-real": ["id0_0000.mp4", "id0_0001.mp4", "id1_0000.mp4"],
        "YouTube-real": ["00000.mp4", "00001.mp4"],
        "Celeb-synthesis": ["id0_id1_0000.mp4", "id0_id1_0001.mp4", "id1_id0_0000.mp4"],
    }
    n = 0
    for folder, files in names.items():
        for name in files:
            _write(root / folder / name, clip(int(folder == "Celeb-synthesis"), n))
            n += 1
    lines = test if test is not None else ["1 YouTube-real/00001.mp4", "0 Celeb-synthesis/id1_id0_0000.mp4"]
    _write(root / "List_of_testing_videos.txt", ("\n".join(lines) + "\n").encode())
    return root


def make_dfdc(root: Path, clip: Clip, parts: dict[str, dict[str, str | None]] | None = None,
              test: dict[str, int] | None = None, under: str = "") -> Path:  # fmt: skip
    """``[under/]dfdc_train_part_N/metadata.json`` + videos (``{name: original or None}``; None = REAL) and
    ``test/labels.csv`` (filename,label with 1 = fake) + videos."""
    parts = parts or {
        "dfdc_train_part_0": {"aaa.mp4": None, "bbb.mp4": None, "ccc.mp4": "aaa.mp4", "ddd.mp4": "bbb.mp4"},
        "dfdc_train_part_1": {"eee.mp4": None, "fff.mp4": "eee.mp4"},
    }
    test = test if test is not None else {"t_real.mp4": 0, "t_fake.mp4": 1}
    n = 0
    for part, entries in parts.items():
        meta = {}
        for name, original in entries.items():
            label = "REAL" if original is None else "FAKE"
            meta[name] = {"label": label, "split": "train", **({"original": original} if original else {})}
            _write(root / under / part / name, clip(int(original is not None), n))
            n += 1
        _write(root / under / part / "metadata.json", json.dumps(meta).encode())
    if test:
        rows = [["filename", "label"]] + [[name, str(label)] for name, label in test.items()]
        for name, label in test.items():
            _write(root / "test" / name, clip(label, n))
            n += 1
        (root / "test").mkdir(parents=True, exist_ok=True)
        with open(root / "test" / "labels.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
    return root
