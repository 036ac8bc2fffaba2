"""Celeb-DF (v2, and v1 which has the same layout) as it ships.

Layout (ROOT = the Celeb-DF-v2 folder)::

    ROOT/Celeb-real/id0_0000.mp4 ...           real (celebrity interviews)
    ROOT/YouTube-real/00000.mp4 ...            real (other YouTube videos)
    ROOT/Celeb-synthesis/id0_id16_0000.mp4 ... fake
    ROOT/List_of_testing_videos.txt            the test set: "<label> <folder>/<file>.mp4" per line

In the testing list **1 means real and 0 means fake**, the inverse of this project's labels (1 = fake); this
reader converts, and checks every line against the folder the video is in. Training videos are all the others.
Celeb-DF has no validation split: ``val_fraction`` holds out part of the training videos, whole groups at a time
(a synthesis video ``idA_idB_NNNN`` is grouped with ``Celeb-real/idA_NNNN``, the real video its name says it was
made from).
"""

from __future__ import annotations

import re
from pathlib import Path

from lib_deepfake.errors import DatasetError
from lib_deepfake.prep.datasets.records import LayoutScan, Problem, VideoRecord, hold_out_val, mp4_files

__all__ = ["FAKE_FOLDER", "REAL_FOLDERS", "TEST_LIST", "celebdf_group", "parse_test_list", "scan_celebdf"]

REAL_FOLDERS = ("Celeb-real", "YouTube-real")
FAKE_FOLDER = "Celeb-synthesis"
TEST_LIST = "List_of_testing_videos.txt"

_SYNTHESIS = re.compile(r"^(id\d+)_id\d+_(\d+)\.mp4$")


def parse_test_list(path: Path) -> list[tuple[int, str]]:
    """Read ``List_of_testing_videos.txt`` into ``(label, relative path)`` with **our** labels (1 = fake).

    Celeb-DF writes 1 for real and 0 for fake; both are converted here.

    Raises:
        DatasetError: a line that is not ``<0|1> <folder>/<file>``, or a video listed twice.
    """
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("0", "1") or "/" not in parts[1]:
            raise DatasetError(f"{path}:{lineno}: expected '<1 real | 0 fake> <folder>/<file>.mp4', got {line!r}")
        rel = parts[1].replace("\\", "/")
        if rel in seen:
            raise DatasetError(f"{path}:{lineno}: {rel} is listed twice")
        seen.add(rel)
        out.append((1 - int(parts[0]), rel))  # Celeb-DF: 1 = real; ours: 1 = fake
    return out


def celebdf_group(rel: str) -> str:
    """The group of a video (its path relative to ROOT): a synthesis video joins the real video it was made from."""
    folder, _, name = rel.partition("/")
    m = _SYNTHESIS.match(name)
    if folder == FAKE_FOLDER and m:
        return f"Celeb-real/{m.group(1)}_{m.group(2)}.mp4"
    return rel


def _label_of_folder(folder: str) -> int | None:
    if folder in REAL_FOLDERS:
        return 0
    if folder == FAKE_FOLDER:
        return 1
    return None


def scan_celebdf(root: Path | str, val_fraction: float = 0.0) -> LayoutScan:
    """Records: the testing list's videos as test, every other video as train (part of it as val).

    Args:
        root: the Celeb-DF folder.
        val_fraction: share of training groups moved to val (0: no val split, as Celeb-DF ships).

    Raises:
        DatasetError: ROOT, one of the three folders or the testing list is missing (the message names the path);
            a list line whose label disagrees with the folder its video is in.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DatasetError(f"Celeb-DF root {root} does not exist")
    needed = [root / f for f in (*REAL_FOLDERS, FAKE_FOLDER)]
    absent = [str(p) for p in needed if not p.is_dir()]
    if not (root / TEST_LIST).is_file():
        absent.append(str(root / TEST_LIST))
    if absent:
        raise DatasetError(f"Celeb-DF layout incomplete, missing: {', '.join(absent)}")

    records: list[VideoRecord] = []
    missing: list[Problem] = []
    test_paths: set[Path] = set()
    list_path = root / TEST_LIST
    for label, rel in parse_test_list(list_path):
        folder = rel.split("/")[0]
        expected = _label_of_folder(folder)
        if expected is None:
            raise DatasetError(f"{list_path}: {rel} is not in {', '.join((*REAL_FOLDERS, FAKE_FOLDER))}")
        if expected != label:
            said = "real" if label == 0 else "fake"
            raise DatasetError(
                f"{list_path}: {rel} is marked {said} ({1 - label} in Celeb-DF's convention, 1 = real, 0 = fake) "
                f"but lies in {folder}: is this list from another release?"
            )
        path = (root / rel).resolve()
        test_paths.add(path)
        if path.is_file():
            records.append(VideoRecord(path, label, "test", celebdf_group(rel), folder))
        else:
            missing.append(Problem(str(path), f"in {TEST_LIST} but not on disk"))
    for folder in (*REAL_FOLDERS, FAKE_FOLDER):
        label = _label_of_folder(folder)
        assert label is not None
        for path in mp4_files(root / folder):
            if path not in test_paths:
                records.append(VideoRecord(path, label, "train", celebdf_group(f"{folder}/{path.name}"), folder))
    records = hold_out_val(records, val_fraction)
    records.sort(key=lambda r: str(r.path))
    notes = ["Celeb-DF has no validation split" + (f"; {val_fraction:.0%} of the training groups held out as val"
                                                    if val_fraction else "")]  # fmt: skip
    return LayoutScan("celebdf", root, records, missing, [], {"val_fraction": val_fraction}, notes)
