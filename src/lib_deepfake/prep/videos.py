"""``lib-prep videos``: decode N frames per video, detect and track faces, write PNG crops and list files.

Per video: a uniform N-frame plan is decoded (:mod:`lib_deepfake.video`), faces are detected on every sampled
frame, linked into tracks by IoU (:mod:`lib_deepfake.faces.tracking`), and the chosen track(s) are cropped with
:func:`lib_deepfake.faces.crop.crop_faces` (the same crop inference uses). ``faces="largest"`` keeps the track
with the largest total box area (length x mean area: the main subject); ``faces="all"`` keeps every track of at
least ``min_track_frames`` detections, one folder per identity (``face0``, ``face1``, ...; all get the video's
label, so only use it when every face of a fake video is fake).

Resumable: a video whose ``.done.json`` marker matches the current settings is skipped. Parallel: a process pool
of ``workers`` processes, each with its own detector session. A failing video is recorded in ``prep_report.jsonl``
with its error and kind (missing, unreadable, no_face, error) and does not stop the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lib_deepfake._optional import require
from lib_deepfake.atomic import atomic_open, write_json_atomic
from lib_deepfake.errors import ContractError, DatasetError, LibDeepfakeError
from lib_deepfake.faces.base import DetectorConfig, FaceDetector
from lib_deepfake.faces.tracking import FaceTrack, TrackingConfig, link_tracks
from lib_deepfake.prep.dataset import ListEntry, VideoItem, write_list_files

logger = logging.getLogger(__name__)

__all__ = [
    "NoFaceError",
    "PrepConfig",
    "VideoResult",
    "crop_landmarks",
    "decode_uniform",
    "prepare_video",
    "prepare_videos",
]

DONE_MARKER = ".done.json"
LANDMARKS_FILE = "landmarks.json"


@dataclass(frozen=True)
class PrepConfig:
    """Settings of a ``lib-prep videos`` run.

    Attributes:
        frames: frames sampled uniformly over each video.
        size: side of the square crops in pixels.
        scale: crop box = the face box squared and scaled by this factor (docs/ARCHITECTURE.md, crop geometry).
        faces: ``"largest"`` (one track per video) or ``"all"`` (one folder per track).
        min_track_frames: with ``faces="all"``, tracks with fewer detections are dropped.
        detector: registered detector name.
        detector_model: optional model file for the detector.
        detector_config: thresholds, downscaling, batch size, device.
        tracking: track linking options.
    """

    frames: int = 32
    size: int = 224
    scale: float = 1.3
    faces: str = "largest"
    min_track_frames: int = 2
    detector: str = "centerface"
    detector_model: Path | None = None
    detector_config: DetectorConfig = field(default_factory=DetectorConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ContractError(f"frames must be >= 1, got {self.frames}")
        if self.size < 8:
            raise ContractError(f"size must be >= 8 pixels, got {self.size}")
        if self.scale <= 0:
            raise ContractError(f"scale must be > 0, got {self.scale}")
        if self.faces not in ("largest", "all"):
            raise ContractError(f"faces must be 'largest' or 'all', got {self.faces!r}")

    def key(self) -> str:
        """Hash of every setting that changes the output (the resume marker must match it)."""
        d = asdict(self)
        d["detector_model"] = str(self.detector_model) if self.detector_model else None
        for k in ("batch_size", "threads", "device", "allow_cpu_fallback"):  # speed knobs, not results
            d["detector_config"].pop(k, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


class NoFaceError(DatasetError):
    """No face track in the sampled frames of a video."""


@dataclass
class VideoResult:
    """Outcome for one video. ``status``: done | skipped (resumed) | failed; ``error_kind`` (failed only):
    missing (no such file), unreadable (decoding failed), no_face, error (anything else)."""

    video: str
    label: int
    split: str
    status: str
    folders: list[dict[str, Any]] = field(default_factory=list)
    sampled: int = 0
    detected: int = 0
    error: str | None = None
    seconds: float = 0.0
    error_kind: str | None = None


def decode_uniform(path: Path, n: int, threads: int = 0) -> tuple[Any, list[int]]:
    """Decode ``n`` frames spread uniformly over the video (the project's PyAV source, same picks as lib-infer).

    Args:
        path: the video file.
        n: frames wanted.
        threads: decoder threads (0: libavcodec picks).

    Returns:
        (frames uint8 [T, H, W, 3] RGB CPU torch tensor, their frame indices), T <= n.

    Raises:
        lib_deepfake.errors.VideoError: unreadable, empty or unsupported video.
    """
    from lib_deepfake.video.pyav_source import PyAVSource
    from lib_deepfake.video.sampling import uniform

    with PyAVSource(path, threads=threads) as src:
        batch = src.read(uniform(n))
    if len(batch) == 0:
        raise DatasetError(f"{path}: no frames decoded")
    return batch.frames, [int(i) for i in batch.indices]


def crop_landmarks(boxes: np.ndarray, landmarks: np.ndarray, size: int, scale: float) -> np.ndarray:
    """Landmarks [M, 5, 2] of frame pixels mapped into the crops made from ``boxes`` [M, 4] (crop pixels).

    Uses the crop geometry of docs/ARCHITECTURE.md: window ``[c - side/2, c + side/2]`` with
    ``side = max(w, h) * scale`` maps linearly onto ``[0, size]``.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * scale
    origin = c - side[:, None] / 2
    return ((np.asarray(landmarks, np.float32) - origin[:, None, :]) * (size / side)[:, None, None]).astype(np.float32)


def _select_tracks(tracks: list[FaceTrack], config: PrepConfig) -> list[FaceTrack]:
    if not tracks:
        return []
    if config.faces == "largest":
        return tracks[:1]
    kept = [t for t in tracks if len(t) >= config.min_track_frames]
    return kept or tracks[:1]


def _write_folder(folder: Path, frames: Any, track: FaceTrack, config: PrepConfig) -> int:
    """Crop ``track`` out of ``frames`` (uint8 [T, H, W, 3] RGB CPU tensor) into PNGs + landmarks.json."""
    import torch

    from lib_deepfake.faces.crop import crop_faces

    cv2 = require("cv2", purpose="writing PNG crops")
    boxes, scores, lms = track.as_arrays()
    # track.positions index the decoded batch, which is what crop_faces' frame_index column refers to
    rows = np.concatenate([np.asarray(track.positions, np.float32)[:, None], boxes], 1)
    crops = crop_faces(frames, torch.from_numpy(rows), config.size, scale=config.scale).cpu().numpy()
    crop_lms = crop_landmarks(boxes, lms, config.size, config.scale)
    folder.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"size": config.size, "scale": config.scale, "crops": {}}
    for k, fidx in enumerate(track.frame_indices):
        name = f"{fidx:06d}.png"
        # cv2 writes BGR arrays as true-colour PNGs; the official loader's cv2.imread then yields BGR as expected.
        if not cv2.imwrite(str(folder / name), np.ascontiguousarray(crops[k][..., ::-1])):
            raise DatasetError(f"cannot write {folder / name}")
        meta["crops"][name] = {
            "frame_index": int(fidx),
            "box": [round(float(v), 2) for v in boxes[k]],
            "score": round(float(scores[k]), 4),
            "landmarks": np.round(crop_lms[k], 2).tolist(),
        }
    write_json_atomic(folder / LANDMARKS_FILE, meta)
    return len(track)


def prepare_video(
    item: VideoItem, crops_dir: Path, config: PrepConfig, detector: FaceDetector, decoder_threads: int = 0
) -> VideoResult:
    """Process one video into ``crops_dir/<item.key>`` (skipped when its done marker matches ``config``)."""
    t0 = time.perf_counter()
    out = crops_dir / item.key
    marker = out / DONE_MARKER
    key = config.key()
    result = VideoResult(str(item.path), item.label, item.split, "done")
    if marker.is_file():
        try:
            done = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            done = {}
        if done.get("config_key") == key:
            result.status = "skipped"
            result.folders = done.get("folders", [])
            result.sampled, result.detected = done.get("sampled", 0), done.get("detected", 0)
            return result
    if out.exists():  # partial or stale output of an earlier run: start clean
        shutil.rmtree(out)
    stage = "missing"
    try:
        if not item.path.is_file():
            raise DatasetError(f"video not found: {item.path}")
        stage = "unreadable"
        frames, indices = decode_uniform(item.path, config.frames, threads=decoder_threads)
        stage = "error"
        dets = detector.detect(frames)
        result.sampled = len(indices)
        result.detected = sum(1 for d in dets if len(d))
        tracks = _select_tracks(link_tracks(dets, indices, config.tracking), config)
        if not tracks:
            raise NoFaceError(f"no face found in {len(indices)} sampled frames")
        for k, track in enumerate(tracks):
            folder = out if config.faces == "largest" else out / f"face{k}"
            n = _write_folder(folder, frames, track, config)
            result.folders.append({"dir": str(folder.resolve()), "frames": n})
        write_json_atomic(
            marker,
            {
                "config_key": key,
                "folders": result.folders,
                "sampled": result.sampled,
                "detected": result.detected,
            },
        )
    except Exception as exc:  # one bad video (decoder, codec, disk) must not stop a long batch run
        result.status = "failed"
        result.error_kind = "no_face" if isinstance(exc, NoFaceError) else stage
        result.error = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, LibDeepfakeError):
            result.error = f"{type(exc).__name__}: {result.error}"
        logger.warning("%s: %s", item.path, result.error)
        logger.debug("traceback for %s", item.path, exc_info=True)
    result.seconds = time.perf_counter() - t0
    return result


# ---- process pool -------------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(config: PrepConfig, threads: int) -> None:
    import torch

    from lib_deepfake.faces.registry import create_detector

    # Each worker gets its share of the cores; oversubscribed ORT/torch pools are slower than fewer threads.
    torch.set_num_threads(threads)
    det_cfg = config.detector_config
    if det_cfg.threads is None:
        from dataclasses import replace

        det_cfg = replace(det_cfg, threads=threads)
    _WORKER["detector"] = create_detector(config.detector, det_cfg, config.detector_model)
    _WORKER["config"] = config
    _WORKER["threads"] = threads


def _work(item: VideoItem, crops_dir: Path) -> VideoResult:
    return prepare_video(item, crops_dir, _WORKER["config"], _WORKER["detector"], _WORKER["threads"])


def prepare_videos(
    items: list[VideoItem],
    root: Path | str,
    name: str,
    config: PrepConfig | None = None,
    workers: int = 1,
    on_result: Callable[[VideoResult], None] | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Prepare a dataset ``root/name`` from labelled videos.

    Args:
        items: videos (see :func:`lib_deepfake.prep.dataset.read_labels`).
        root: dataset root (``ROOT``).
        name: dataset name (``NAME``).
        config: crop/detector settings.
        workers: processes (1: in this process).
        on_result: called with each finished :class:`VideoResult` (progress bars).
        provenance: where the videos came from (importer, source root, ``synthetic`` for the demo corpus),
            recorded in the summary so model cards can say what a model was trained on.

    Returns:
        Summary dict (also written to ``prep_summary.json``): counts, list-file line counts, detection rate.
    """
    cfg = config or PrepConfig()
    if not name or "/" in name or name.startswith("."):
        raise ContractError(f"invalid dataset name {name!r}")
    dataset_dir = Path(root) / name
    crops_dir = dataset_dir / "crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: list[VideoResult] = []
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(workers, len(items)))
    threads = max(1, cpus // workers)
    if workers == 1:
        _init_worker(cfg, threads)
        # Fail fast on setup errors (missing model file, CUDA provider not active) instead of failing every video.
        _WORKER["detector"].detect(np.zeros((1, 32, 32, 3), np.uint8))
        for item in items:
            r = _work(item, crops_dir)
            results.append(r)
            if on_result:
                on_result(r)
    else:
        import multiprocessing as mp

        from lib_deepfake.faces.registry import create_detector

        # The same fail-fast check in the parent (each worker makes its own session).
        probe = create_detector(cfg.detector, cfg.detector_config, cfg.detector_model)
        probe.detect(np.zeros((1, 32, 32, 3), np.uint8))
        del probe

        # spawn, not fork: forking a process that already runs ORT/torch thread pools can deadlock the child.
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(cfg, threads)) as pool:  # fmt: skip
            futures = {pool.submit(_work, item, crops_dir): item for item in items}
            for fut in as_completed(futures):
                item = futures[fut]
                try:
                    r = fut.result()
                except Exception as exc:  # a worker crash must not lose the other videos' results
                    r = VideoResult(str(item.path), item.label, item.split, "failed", error=f"worker crashed: {exc}",
                                    error_kind="error")  # fmt: skip
                results.append(r)
                if on_result:
                    on_result(r)
    results.sort(key=lambda r: r.video)
    entries = [
        (r.split, ListEntry(r.label, Path(f["dir"]), int(f["frames"])))
        for r in results
        if r.status in ("done", "skipped")
        for f in r.folders
    ]
    lines = write_list_files(dataset_dir, entries)
    with atomic_open(dataset_dir / "prep_report.jsonl") as fh:
        for r in results:
            fh.write(json.dumps(asdict(r)) + "\n")
    sampled = sum(r.sampled for r in results if r.status != "failed")
    detected = sum(r.detected for r in results if r.status != "failed")
    summary = {
        "dataset": str(dataset_dir.resolve()),
        "videos": len(results),
        "done": sum(r.status == "done" for r in results),
        "skipped": sum(r.status == "skipped" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "failures": [
            {"video": r.video, "error": r.error, "kind": r.error_kind} for r in results if r.status == "failed"
        ],
        "sampled_frames": sampled,
        "frames_with_face": detected,
        "detection_rate": round(detected / sampled, 4) if sampled else None,
        "list_files": lines,
        "config": {**asdict(cfg), "detector_model": str(cfg.detector_model) if cfg.detector_model else None},
        "workers": workers,
        "wall_s": round(time.perf_counter() - t0, 2),
        "provenance": provenance or {},
    }
    write_json_atomic(dataset_dir / "prep_summary.json", summary)
    return summary
