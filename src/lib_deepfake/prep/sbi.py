"""``lib-prep sbi``: self-blended pseudo-fakes from the real crops of a prepared dataset.

Reads ``ROOT/SOURCE/<split>_real.txt`` and each listed folder's ``landmarks.json`` (written by ``lib-prep videos``),
blends every real crop with a transformed copy of itself (:func:`lib_deepfake.prep.blend.self_blend`, one fresh
draw per crop, seeded by ``seed``, folder and file name, so reruns are identical) and writes a new dataset
``ROOT/OUTPUT``:

- ``<split>_real.txt``: the source's real lines (the real crops are not copied);
- ``<split>_fake.txt``: for the ``splits`` asked for, one line per real folder pointing at its pseudo-fake copy in
  ``ROOT/OUTPUT/crops/...``; for the other splits, the source's own fake list (so a user with real videos only
  can train on SBI and still test on genuine fakes, when they have any).

Resumable: a folder whose ``.done.json`` marker exists with the same seed and strength is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib_deepfake._optional import require
from lib_deepfake.atomic import write_json_atomic
from lib_deepfake.errors import ContractError, DatasetError
from lib_deepfake.prep.blend import sample_blend_params, self_blend
from lib_deepfake.prep.dataset import SPLITS, ListEntry, list_file, read_list_file, write_list_files

logger = logging.getLogger(__name__)

__all__ = ["make_sbi_dataset"]

_DONE = ".done.json"


def _folder_key(src_dir: Path, crops_root: Path | None) -> str:
    """Where a source folder's pseudo-fakes go: its path under the source ``crops/`` or ``name-<hash>``."""
    if crops_root is not None:
        try:
            return src_dir.resolve().relative_to(crops_root.resolve()).as_posix()
        except ValueError:
            pass
    return f"_external/{src_dir.name}-{hashlib.sha256(str(src_dir.resolve()).encode()).hexdigest()[:8]}"


def _seed_for(seed: int, key: str, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{key}/{name}".encode()).digest()[:8], "little")


def _blend_folder(src: Path, dst: Path, key: str, seed: int, strength: float) -> int:
    cv2 = require("cv2", purpose="reading and writing PNG crops")
    meta_path = src / "landmarks.json"
    if not meta_path.is_file():
        raise DatasetError(f"{src}: no landmarks.json (prepare the dataset with lib-prep videos)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    crops: dict[str, Any] = meta.get("crops", {})
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    written = 0
    out_meta: dict[str, Any] = {**meta, "crops": {}, "sbi": {"seed": seed, "strength": strength, "source": str(src)}}
    for name in sorted(crops):
        bgr = cv2.imread(str(src / name), cv2.IMREAD_COLOR)
        if bgr is None:
            logger.warning("%s: cannot read %s, skipped", src, name)
            continue
        rgb = bgr[..., ::-1]
        lms = np.asarray(crops[name]["landmarks"], np.float32)
        params = sample_blend_params(np.random.default_rng(_seed_for(seed, key, name)), strength)
        fake, _ = self_blend(rgb, lms, params)
        if not cv2.imwrite(str(dst / name), np.ascontiguousarray(fake[..., ::-1])):
            raise DatasetError(f"cannot write {dst / name}")
        out_meta["crops"][name] = crops[name]
        written += 1
    write_json_atomic(dst / "landmarks.json", out_meta)
    write_json_atomic(dst / _DONE, {"seed": seed, "strength": strength, "frames": written})
    return written


def make_sbi_dataset(
    root: Path | str,
    source: str,
    output: str,
    splits: Sequence[str] = ("train", "val"),
    seed: int = 0,
    strength: float = 1.0,
    on_folder: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Build the SBI dataset ``root/output`` from the real crops of ``root/source``.

    Args:
        root: dataset root.
        source: prepared dataset name (``lib-prep videos``).
        output: new dataset name.
        splits: splits whose fake list becomes the SBI pseudo-fakes.
        seed: base seed of the blend draws.
        strength: scale of the colour/geometry perturbations (1: paper-like).
        on_folder: called after each folder (progress bars).

    Returns:
        Summary dict (also written to ``ROOT/OUTPUT/sbi_summary.json``).
    """
    root = Path(root)
    src_dir, out_dir = root / source, root / output
    if source == output:
        raise ContractError("the SBI dataset needs its own name (--output-dataset differs from --dataset)")
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ContractError(f"unknown split(s) {bad}; choose from {', '.join(SPLITS)}")
    if not src_dir.is_dir():
        raise DatasetError(f"dataset not found: {src_dir}")
    crops_root = src_dir / "crops"
    entries: list[tuple[str, ListEntry]] = []
    failures: list[dict[str, str]] = []
    made = skipped = 0
    for split in SPLITS:
        real_path, fake_path = list_file(src_dir, split, 0), list_file(src_dir, split, 1)
        reals = read_list_file(real_path) if real_path.is_file() else []
        entries += [(split, e) for e in reals]
        if split not in splits:
            entries += [(split, e) for e in (read_list_file(fake_path) if fake_path.is_file() else [])]
            continue
        for e in reals:
            key = _folder_key(e.dir, crops_root)
            dst = out_dir / "crops" / key
            marker = dst / _DONE
            try:
                done = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else {}
            except (OSError, ValueError):
                done = {}
            try:
                if done.get("seed") == seed and done.get("strength") == strength:
                    n, skipped = int(done["frames"]), skipped + 1
                else:
                    n, made = _blend_folder(e.dir, dst, key, seed, strength), made + 1
                if n:
                    entries.append((split, ListEntry(1, dst.resolve(), n)))
            except (DatasetError, OSError, ValueError) as exc:
                failures.append({"dir": str(e.dir), "error": " ".join(str(exc).split())})
                logger.warning("%s: %s", e.dir, exc)
            if on_folder:
                on_folder(e.dir)
    lines = write_list_files(out_dir, entries)
    summary = {
        "dataset": str(out_dir.resolve()),
        "source": str(src_dir.resolve()),
        "sbi_splits": list(splits),
        "folders_made": made,
        "folders_skipped": skipped,
        "failed": len(failures),
        "failures": failures,
        "seed": seed,
        "strength": strength,
        "list_files": lines,
    }
    write_json_atomic(out_dir / "sbi_summary.json", summary)
    return summary
