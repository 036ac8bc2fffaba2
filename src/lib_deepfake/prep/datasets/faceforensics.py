"""FaceForensics++ as it ships: originals, manipulated sequences per method and compression, official split files.

Layout (ROOT = the FaceForensics++ download folder)::

    ROOT/original_sequences/youtube/<raw|c23|c40>/videos/000.mp4 ... 999.mp4
    ROOT/manipulated_sequences/<Method>/<raw|c23|c40>/videos/000_003.mp4 ...
    train.json / val.json / test.json   (in ROOT, ROOT/splits or --splits-dir)

A split file is a JSON list of id pairs ``[["071", "054"], ...]``: the originals ``071`` and ``054`` are real
videos of that split, and ``071_054`` and ``054_071`` (target_source) are the fakes of every method. The four
videos of a pair form one group. The official split is 720 / 140 / 140 ids; with the four methods of the LIB paper
(Deepfakes, Face2Face, FaceSwap, NeuralTextures) that is four fakes per real video.
"""

from __future__ import annotations

from pathlib import Path

from lib_deepfake.errors import DatasetError
from lib_deepfake.prep.dataset import SPLITS
from lib_deepfake.prep.datasets.records import (
    LayoutScan,
    Problem,
    VideoRecord,
    check_groups,
    mp4_files,
    read_json,
)

__all__ = [
    "COMPRESSIONS",
    "METHODS",
    "find_splits_dir",
    "manipulated_dir",
    "original_dir",
    "read_split_file",
    "scan_faceforensics",
]

#: The manipulation methods the LIB paper (and DeepfakeBench's FF++ protocol) trains and tests on.
METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
COMPRESSIONS = ("raw", "c23", "c40")
SPLIT_FILES = tuple(f"{s}.json" for s in SPLITS)


def original_dir(root: Path, compression: str) -> Path:
    return root / "original_sequences" / "youtube" / compression / "videos"


def manipulated_dir(root: Path, method: str, compression: str) -> Path:
    return root / "manipulated_sequences" / method / compression / "videos"


def read_split_file(path: Path) -> list[tuple[str, str]]:
    """Parse an official split file: a JSON list of ``[id, id]`` pairs of strings.

    Raises:
        DatasetError: unreadable JSON or another shape; the message names the file.
    """
    data = read_json(path, "FF++ split file")
    if not isinstance(data, list):
        raise DatasetError(f'{path}: expected a JSON list of id pairs like [["071", "054"], ...]')
    pairs = []
    for i, item in enumerate(data):
        ok = isinstance(item, list) and len(item) == 2 and all(isinstance(v, str) and v for v in item)
        if not ok or item[0] == item[1]:
            raise DatasetError(
                f'{path}: entry {i} is {item!r}, expected a pair of two different ids like ["071", "054"]'
            )
        pairs.append((item[0], item[1]))
    return pairs


def find_splits_dir(root: Path, splits_dir: Path | None) -> Path:
    """The folder holding train.json, val.json and test.json: ``splits_dir``, else ROOT, else ROOT/splits."""
    candidates = [Path(splits_dir)] if splits_dir is not None else [root, root / "splits"]
    for folder in candidates:
        if all((folder / name).is_file() for name in SPLIT_FILES):
            return folder
    where = " or ".join(str(c) for c in candidates)
    raise DatasetError(
        f"FF++ split files {', '.join(SPLIT_FILES)} not found in {where}; pass --splits-dir (they are in the "
        "FaceForensics repository, dataset/splits/)"
    )


def _split_table(folder: Path) -> dict[str, tuple[str, str]]:
    """id -> (split, group) from the three split files; an id in two places is an error."""
    table: dict[str, tuple[str, str]] = {}
    for split in SPLITS:
        for a, b in read_split_file(folder / f"{split}.json"):
            group = f"{a}_{b}"
            for vid in (a, b):
                if vid in table:
                    raise DatasetError(
                        f"FF++ id {vid} is in {table[vid][0]}.json ({table[vid][1]}) and in {split}.json ({group}): "
                        "each id belongs to one pair"
                    )
                table[vid] = (split, group)
    return table


def scan_faceforensics(
    root: Path | str,
    compression: str = "c23",
    methods: tuple[str, ...] | list[str] = METHODS,
    splits_dir: Path | str | None = None,
) -> LayoutScan:
    """Records for the originals and the asked methods at one compression, split by the official pairs.

    Args:
        root: the FaceForensics++ folder (with ``original_sequences/`` and ``manipulated_sequences/``).
        compression: raw, c23 or c40.
        methods: manipulation folders to use; methods on disk but not asked for are left out (and noted).
        splits_dir: folder with train/val/test.json (default: ROOT, then ROOT/splits).

    Raises:
        DatasetError: ROOT, the originals folder or an asked method's folder is missing (the message names the
            path), malformed split files, an id in two pairs.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DatasetError(f"FaceForensics++ root {root} does not exist")
    if compression not in COMPRESSIONS:
        raise DatasetError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise DatasetError("no manipulation method asked for (--methods)")
    folders = {"youtube": original_dir(root, compression)}
    folders.update({m: manipulated_dir(root, m, compression) for m in methods})
    absent = [str(f) for f in folders.values() if not f.is_dir()]
    if absent:
        raise DatasetError(f"FF++ folder(s) missing at compression {compression}: {', '.join(absent)}")
    splits_folder = find_splits_dir(root, Path(splits_dir) if splits_dir is not None else None)
    table = _split_table(splits_folder)

    records: list[VideoRecord] = []
    missing: list[Problem] = []
    unlisted: list[Problem] = []
    for source, folder in folders.items():
        label = 0 if source == "youtube" else 1
        expected: dict[str, tuple[str, str]] = {}
        for vid, (split, group) in table.items():
            if label == 0:
                expected[vid] = (split, group)
            else:
                a, b = group.split("_")
                partner = b if vid == a else a
                expected[f"{vid}_{partner}"] = (split, group)  # target_source: both directions over the pair
        on_disk = {p.stem: p for p in mp4_files(folder)}
        for stem, (split, group) in sorted(expected.items()):
            if stem in on_disk:
                records.append(VideoRecord(on_disk[stem], label, split, group, source))
            else:
                missing.append(Problem(str(folder / f"{stem}.mp4"), f"in {split}.json but not on disk"))
        unlisted.extend(
            Problem(str(p), "in no split file") for stem, p in sorted(on_disk.items()) if stem not in expected
        )
    check_groups(records)

    present = sorted(
        d.name
        for d in (root / "manipulated_sequences").iterdir()
        if d.is_dir() and d.name not in methods and (d / compression / "videos").is_dir()
    )
    notes = []
    if present:
        notes.append(f"methods on disk but not asked for (left out): {', '.join(present)}")
    records.sort(key=lambda r: str(r.path))
    options = {"compression": compression, "methods": methods, "methods_left_out": present,
               "splits_dir": str(splits_folder.resolve())}  # fmt: skip
    return LayoutScan("faceforensics", root, records, missing, unlisted, options, notes)
