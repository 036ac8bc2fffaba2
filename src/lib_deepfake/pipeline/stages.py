"""The in-process stages of a scan over decoded videos: batched face detection -> identities -> crops -> batched
classification -> aggregation -> one :class:`~lib_deepfake.pipeline.outcomes.VideoOutcome` per video.

Detection batches take frames from several videos (same frame size), classification batches take crops from several
videos; a video's frames are freed as soon as its crops exist. Device-agnostic: CPU tensors on the CPU path, CUDA
tensors (DALI frames, GPU detector, GPU crops, GPU engine) on the GPU path. :class:`ScanPipeline` only schedules;
turning what the stages found into rows, faces.jsonl lines and report data is ``outcomes`` (pure functions), and
feeding it decoded videos is ``scanner``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.pipeline.aggregate import aggregate
from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.decode import DecodeResult
from lib_deepfake.pipeline.outcomes import (
    VideoOutcome,
    error_outcome,
    face_lines,
    identity_entries,
    score_timeline,
    thumbnails,
    video_fields,
    video_row,
)
from lib_deepfake.pipeline.results import one_line

if TYPE_CHECKING:
    from lib_deepfake.engines.base import Engine
    from lib_deepfake.faces.base import FaceDetector

STAGES = ("decode", "detect", "crop", "classify")

#: What a failed detector, crop or classifier call may raise; it costs the videos of that batch their rows.
STAGE_FAILURES = (LibDeepfakeError, RuntimeError, ValueError, MemoryError)


@dataclass
class StageTotals:
    """Wall seconds spent per stage in the main process (decode: summed worker time), and work counts."""

    decode_s: float = 0.0
    detect_s: float = 0.0
    crop_s: float = 0.0
    classify_s: float = 0.0
    wait_s: float = 0.0
    videos: int = 0
    frames: int = 0
    faces: int = 0
    frames_detected: int = 0  # frames the detector saw (fewer than ``frames`` with --detect-every > 1)
    frames_interpolated: int = 0
    detect_batches: int = 0
    classify_batches: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Video:
    """A video in flight through the pipeline."""

    def __init__(self, res: DecodeResult, frames: Any, detect_every: int = 1) -> None:
        from lib_deepfake.faces.sparse_detect import first_pass_positions

        self.res = res
        self.frames = frames  # uint8 [T, h, w, 3] torch tensor; None once cropped
        self.n = len(res.indices)
        self.dets: list[Any] = [None] * self.n
        # Detector schedule (faces.sparse_detect): first pass on every K-th position, then the gaps whose ends
        # disagree; ``gaps_done`` once the second pass has been planned.
        self.todo = first_pass_positions(self.n, detect_every)
        self.cursor = 0
        self.gaps_done = detect_every == 1
        self.interpolated = np.zeros(self.n, bool)
        self.times = {"decode_s": float(res.decode_s), "detect_s": 0.0, "crop_s": 0.0, "classify_s": 0.0}
        self.identity = np.zeros(0, np.int64)
        self.positions = np.zeros(0, np.int64)
        self.boxes = np.zeros((0, 4), np.float32)
        self.det_scores = np.zeros(0, np.float32)
        self.crops: Any = None
        self.scores = np.zeros(0, np.float32)
        self.next_classify = 0

    @property
    def num_faces(self) -> int:
        return len(self.identity)


class ScanPipeline:
    """Detection, tracking, crops, classification and aggregation for decoded videos (see the module docstring).

    Args:
        config: the scan settings.
        engine: a loaded classifier engine (only ``infer`` and ``input_size`` are used here).
        detector: a face detector.
    """

    def __init__(self, config: ScanConfig, engine: Engine, detector: FaceDetector) -> None:
        from lib_deepfake.faces.tracking import TrackingConfig

        if config.threshold is None:  # the model's: a session settles it earlier and records where it came from
            from lib_deepfake.pipeline.scan_threshold import resolve_scan_threshold

            config, _ = resolve_scan_threshold(config)
        self.config = config
        self.engine = engine
        self.detector = detector
        self.device = config.torch_device()
        self.size = int(engine.input_size)
        self.tracking = TrackingConfig()
        self.detect_queue: deque[_Video] = deque()
        self.classify_queue: deque[_Video] = deque()
        self.totals = StageTotals()

    # -- queue state -----------------------------------------------------------------------------------------------
    @property
    def holding_frames(self) -> int:
        """Videos whose frames are in memory (waiting for or in detection)."""
        return len(self.detect_queue)

    def has_detect_work(self) -> bool:
        return bool(self.detect_queue)

    def pending_crops(self) -> int:
        return sum(v.num_faces - v.next_classify for v in self.classify_queue)

    def has_classify_work(self) -> bool:
        return bool(self.classify_queue)

    @property
    def busy(self) -> bool:
        return bool(self.detect_queue or self.classify_queue)

    # -- entry -----------------------------------------------------------------------------------------------------
    def add(self, res: DecodeResult) -> list[VideoOutcome]:
        """Queue a decoded video; an error result (or an empty decode) finishes at once."""
        import torch

        self.totals.decode_s += float(res.decode_s)
        if res.error is not None:
            return [self._error(res, res.error, res.error_kind)]
        if len(res.indices) == 0:
            return [self._error(res, "no frame of the sampling plan could be decoded", "EmptyVideoError")]
        frames = res.frames
        if isinstance(frames, np.ndarray):
            frames = torch.from_numpy(frames)
        if frames.device != self.device:
            frames = frames.to(self.device)
        res.frames = None
        self.detect_queue.append(_Video(res, frames, self.config.detect_every))
        self.totals.frames += len(res.indices)
        return []

    def drain(self) -> Iterator[VideoOutcome]:
        """Run every queued video to the end."""
        while self.busy:
            if self.detect_queue:
                yield from self.step_detect()
            else:
                yield from self.step_classify(force=True)

    # -- detection ---------------------------------------------------------------------------------------------------
    def step_detect(self) -> list[VideoOutcome]:
        """One detector call on up to ``detect_batch`` frames (several videos of one frame size)."""
        import torch

        parts: list[tuple[_Video, list[int]]] = []
        shape = None
        n = 0
        for v in self.detect_queue:
            if shape is None:
                shape = tuple(v.frames.shape[1:])
            elif tuple(v.frames.shape[1:]) != shape:
                break
            take = min(self.config.detect_batch - n, len(v.todo) - v.cursor)
            if take > 0:
                parts.append((v, v.todo[v.cursor : v.cursor + take]))
                n += take
            if n >= self.config.detect_batch:
                break
        out: list[VideoOutcome] = []
        if n == 0:  # only videos with every frame detected remain (cannot happen, but never spin)
            while self.detect_queue and self.detect_queue[0].cursor >= len(self.detect_queue[0].todo):
                out.extend(self._after_detect(self.detect_queue.popleft()))
            return out
        batch = torch.cat([_select_frames(v.frames, pos) for v, pos in parts]) if len(parts) > 1 else _select_frames(
            parts[0][0].frames, parts[0][1])  # fmt: skip
        dets, failure, dt = _timed(self.detector.detect, batch)
        self.totals.detect_s += dt
        self.totals.detect_batches += 1
        self.totals.frames_detected += n
        k = 0
        for v, pos in parts:
            v.times["detect_s"] += dt * len(pos) / n
            if dets is not None:
                for p, d in zip(pos, dets[k : k + len(pos)]):
                    v.dets[p] = d
            k += len(pos)
            v.cursor += len(pos)
        for v in {id(v): v for v, _ in parts}.values():
            if failure is not None:
                self._remove(self.detect_queue, v)
                out.append(self._error(v.res, f"face detection failed: {one_line(failure)}", type(failure).__name__,
                                       v))  # fmt: skip
            elif v.cursor >= len(v.todo) and not self._plan_gaps(v):
                self._remove(self.detect_queue, v)
                out.extend(self._after_detect(v))
        return out

    def _plan_gaps(self, v: _Video) -> bool:
        """After the first pass of sparse detection: interpolate the gaps whose ends agree and queue the others for
        the detector. True when the video needs the detector again."""
        if v.gaps_done:
            return False
        from lib_deepfake.faces.sparse_detect import fill_gaps

        v.gaps_done = True
        # Still the first pass's positions (ascending): the second pass replaces ``todo`` only below.
        filled, refine = fill_gaps(v.dets, v.todo, self.config.interpolate_iou)
        for p, d in filled.items():
            v.dets[p] = d
            v.interpolated[p] = True
        self.totals.frames_interpolated += len(filled)
        if not refine:
            return False
        v.todo, v.cursor = refine, 0
        return True

    @staticmethod
    def _remove(queue: deque, v: _Video) -> None:
        for i, x in enumerate(queue):
            if x is v:
                del queue[i]
                return

    def _after_detect(self, v: _Video) -> list[VideoOutcome]:
        import torch

        from lib_deepfake.faces.crop import crop_faces
        from lib_deepfake.faces.tracking import link_tracks

        t0 = time.perf_counter()
        dets = []
        for d in v.dets:
            if len(d):
                side = np.maximum(d.boxes[:, 2] - d.boxes[:, 0], d.boxes[:, 3] - d.boxes[:, 1])
                d = d.select(np.flatnonzero(side >= self.config.min_face_px))
            dets.append(d)
        tracks = link_tracks(dets, [int(i) for i in v.res.indices], self.tracking)
        ident, pos, boxes, dscores = [], [], [], []
        for rank, tr in enumerate(tracks):
            for p, box, s in zip(tr.positions, tr.boxes, tr.scores):
                ident.append(rank)
                pos.append(p)
                boxes.append(box)
                dscores.append(s)
        v.identity = np.asarray(ident, np.int64)
        v.positions = np.asarray(pos, np.int64)
        v.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        v.det_scores = np.asarray(dscores, np.float32)
        if v.num_faces == 0:
            v.frames = None
            v.times["crop_s"] += time.perf_counter() - t0
            return [self._no_face(v)]
        order = np.lexsort((v.identity, v.positions))  # frame order: crops of one frame are neighbours in memory
        v.identity, v.positions, v.boxes, v.det_scores = (v.identity[order], v.positions[order], v.boxes[order],
                                                          v.det_scores[order])  # fmt: skip
        boxes5 = torch.from_numpy(np.concatenate([v.positions[:, None].astype(np.float32), v.boxes], axis=1))
        try:
            v.crops = crop_faces(v.frames, boxes5, self.size, self.config.crop_scale)
        except STAGE_FAILURES as exc:
            v.frames = None
            return [self._error(v.res, f"face crop failed: {one_line(exc)}", type(exc).__name__, v)]
        finally:
            dt = time.perf_counter() - t0
            v.times["crop_s"] += dt
            self.totals.crop_s += dt
        v.frames = None  # the frames are no longer needed: free them before classification
        v.scores = np.zeros(v.num_faces, np.float32)
        self.totals.faces += v.num_faces
        self.classify_queue.append(v)
        return []

    # -- classification ----------------------------------------------------------------------------------------------
    def step_classify(self, force: bool = False) -> list[VideoOutcome]:
        """One classifier call on up to ``batch_size`` crops (several videos); with ``force`` a partial batch too."""
        import torch

        pending = self.pending_crops()
        if pending == 0 or (pending < self.config.batch_size and not force):
            return []
        parts: list[tuple[_Video, int, int]] = []
        n = 0
        for v in self.classify_queue:
            take = min(self.config.batch_size - n, v.num_faces - v.next_classify)
            if take > 0:
                parts.append((v, v.next_classify, v.next_classify + take))
                n += take
            if n >= self.config.batch_size:
                break
        batch = parts[0][0].crops[parts[0][1] : parts[0][2]] if len(parts) == 1 else torch.cat(
            [v.crops[a:b] for v, a, b in parts])  # fmt: skip
        # .cpu() synchronises a CUDA engine, so the time is the classifier's
        probs, failure, dt = _timed(lambda crops: self.engine.infer(crops.contiguous()).float().cpu().numpy(), batch)
        self.totals.classify_s += dt
        self.totals.classify_batches += 1
        out: list[VideoOutcome] = []
        k = 0
        for v, a, b in parts:
            v.times["classify_s"] += dt * (b - a) / n
            if probs is not None:
                v.scores[a:b] = probs[k : k + (b - a)]
            k += b - a
            v.next_classify = b
        for v, _, _ in parts:
            if failure is not None:
                self._remove(self.classify_queue, v)
                out.append(self._error(v.res, f"classifier failed: {one_line(failure)}", type(failure).__name__, v))
            elif v.next_classify >= v.num_faces:
                self._remove(self.classify_queue, v)
                out.append(self._finish(v))
        return out

    # -- outcomes ----------------------------------------------------------------------------------------------------
    def _fields(self, v: _Video) -> dict[str, Any]:
        return video_fields(v.res, frames_sampled=v.n, timings=v.times)

    def _error(self, res: DecodeResult, reason: str, kind: str | None, v: _Video | None = None) -> VideoOutcome:
        self.totals.videos += 1
        fields = self._fields(v) if v is not None else {"info": res.info, "decoder": res.decoder,
                                                        "timings": {"decode_s": res.decode_s}}  # fmt: skip
        return error_outcome(res.key, reason, kind or "error", threshold=self.config.threshold, **fields)

    def _no_face(self, v: _Video) -> VideoOutcome:
        self.totals.videos += 1
        row = video_row(v.res.key, threshold=self.config.threshold, **self._fields(v))
        return VideoOutcome(row, [], {"path": v.res.key, "thumbs": [],
                                      "timeline": score_timeline(v.res.indices, v.res.times_s)})  # fmt: skip

    def _finish(self, v: _Video) -> VideoOutcome:
        cfg, res = self.config, v.res
        self.totals.videos += 1
        vs = aggregate(v.identity, v.scores, rule=cfg.aggregation, min_faces=cfg.min_faces, top_k=cfg.top_k)
        row = video_row(res.key, threshold=cfg.threshold, score=vs.score, frames_with_faces=len(np.unique(v.positions)),
                        faces=v.num_faces, identity_scores=identity_entries(vs), top_identity=vs.top_identity,
                        **self._fields(v))  # fmt: skip
        faces = face_lines(res.key, res.indices, res.times_s, v.positions, v.identity, v.boxes, v.det_scores, v.scores,
                           v.interpolated, res.scale or 1.0)  # fmt: skip
        report = {"path": res.key,
                  "thumbs": thumbnails(v.crops, v.scores, res.indices, res.times_s, v.positions, v.identity,
                                       cfg.thumbnails),
                  "timeline": score_timeline(res.indices, res.times_s, v.positions, v.scores)}  # fmt: skip
        v.crops = None
        return VideoOutcome(row, faces, report)


def _timed(fn: Callable[[Any], Any], batch: Any) -> tuple[Any, BaseException | None, float]:
    """``(fn(batch), None, seconds)``, or ``(None, the failure, seconds)`` when a stage fails on a batch (its videos
    get error rows; the scan goes on)."""
    t0 = time.perf_counter()
    try:
        return fn(batch), None, time.perf_counter() - t0
    except STAGE_FAILURES as exc:
        return None, exc, time.perf_counter() - t0


def _select_frames(frames: Any, positions: list[int]) -> Any:
    """``frames[positions]``: a view for a run of consecutive positions, a gathered copy otherwise."""
    a, b = positions[0], positions[-1] + 1
    if b - a == len(positions):
        return frames[a:b]
    import torch

    return frames.index_select(0, torch.as_tensor(positions, device=frames.device))


__all__ = ["STAGES", "STAGE_FAILURES", "ScanPipeline", "StageTotals"]
