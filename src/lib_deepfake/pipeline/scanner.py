"""The scan itself: decoded videos -> batched face detection -> identities -> crops -> batched classification ->
aggregation -> one row per video.

Three layers, so that the CLI, the benchmark and a Ray actor share every line that decides a result:

- :class:`ScanPipeline` - the in-process stages over :class:`~lib_deepfake.pipeline.decode.DecodeResult` items.
  Detection batches take frames from several videos (same frame size), classification batches take crops from
  several videos; a video's frames are freed as soon as its crops exist. Device-agnostic: CPU tensors on the CPU
  path, CUDA tensors (DALI frames, GPU detector, GPU crops, GPU engine) on the GPU path.
- :class:`Scanner` - a decode pool (worker processes on CPU, DALI threads on GPU) feeding the pipeline, with decode
  of the next videos overlapping detection/classification of the current ones. ``scan(paths)`` yields
  :class:`VideoOutcome` (row + faces + report data) as videos finish.
- :class:`VideoScanner` - a stateful callable for scale-out (Ray ``map_batches``): engines loaded once,
  ``scanner(paths) -> rows``.
"""

from __future__ import annotations

import base64
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.pipeline.aggregate import aggregate
from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.decode import DecodeResult, DecodeSettings, ProcessDecodePool, ThreadDecodePool
from lib_deepfake.pipeline.results import build_row, one_line

logger = logging.getLogger(__name__)

STAGES = ("decode", "detect", "crop", "classify")


@dataclass
class VideoOutcome:
    """Everything one video produced: its row, its faces (faces.jsonl lines) and its report data."""

    row: dict[str, Any]
    faces: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] | None = None


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


@dataclass
class Components:
    """The loaded engines and what was chosen, with the reason for every automatic choice."""

    engine: Any
    detector: Any
    resolved: dict[str, Any]


def resolve_choices(config: ScanConfig) -> dict[str, Any]:
    """Engine and decoder names with the reason for each (no heavy import)."""
    from lib_deepfake._optional import is_installed
    from lib_deepfake.engines import engine_for_artifact

    if config.engine == "auto":
        engine = engine_for_artifact(config.model)
        engine_why = f"auto: {config.model.suffix.lower()} artifacts run on {engine}"
    else:
        engine, engine_why = config.engine, "explicit (--engine)"
    if config.decoder == "auto":
        if config.on_cuda and is_installed("nvidia.dali"):
            decoder, decoder_why = "dali", "auto: CUDA device and DALI installed (NVDEC)"
        else:
            decoder = "pyav"
            decoder_why = "auto: " + ("DALI not installed" if config.on_cuda else "CPU device") + ", PyAV (libavcodec)"
    else:
        decoder, decoder_why = config.decoder, "explicit (--decoder)"
    return {"engine": engine, "engine_choice": engine_why, "decoder": decoder, "decoder_choice": decoder_why}


def load_components(config: ScanConfig, *, engine: Any = None, detector: Any = None) -> Components:
    """Create and load the classifier engine and the face detector (``engine``/``detector``: ready-made ones,
    e.g. fakes in tests).

    Raises:
        LibDeepfakeError subclasses: unknown engine, missing runtime, unreadable artifact, missing GPU provider.
    """
    resolved = resolve_choices(config)
    if resolved["decoder"] == "dali":
        from lib_deepfake._optional import require

        # Fail before the first file: a missing DALI is a broken setup, not one bad file per row.
        require("nvidia.dali", purpose="decoding video with DALI (--decoder dali); use --decoder pyav")
    if engine is None:
        import torch

        from lib_deepfake.engines import create_engine

        name = resolved["engine"]
        opts: dict[str, Any] = {"device": config.device}
        if name == "onnxrt":
            opts["threads"] = config.threads if not config.on_cuda else None
            opts["allow_cpu_fallback"] = config.allow_cpu_fallback or None
            # Decode workers share the cores: busy-waiting ORT threads would take their CPU (~3 % of a scan).
            opts["spin"] = False if not config.on_cuda else None
        if name == "torch" and not config.on_cuda:
            torch.set_num_threads(config.resolved_threads())
        engine = create_engine(name, config.model, **opts)
        engine.load()
    if detector is None:
        from lib_deepfake.faces.base import DetectorConfig
        from lib_deepfake.faces.registry import create_detector

        det_cfg = DetectorConfig(
            score_threshold=config.detector_threshold, max_side=config.detector_max_side,
            batch_size=config.detect_batch, device="cuda" if config.on_cuda else "cpu",
            allow_cpu_fallback=config.allow_cpu_fallback, threads=config.resolved_threads(), spin=config.on_cuda,
        )  # fmt: skip
        detector = create_detector(config.detector, det_cfg, config.detector_model)
        _warm_detector(detector, config)
    info = engine.info() if hasattr(engine, "info") else None
    resolved.update(
        {
            "engine_label": engine.describe() if hasattr(engine, "describe") else str(engine),
            "engine_runtime": getattr(info, "runtime", {}) if info is not None else {},
            "precision": getattr(engine, "precision", None),
            "input_size": int(engine.input_size),
            "device": config.device,
            "provider": _provider_of(engine),
            "detector": getattr(detector, "name", type(detector).__name__),
            "detector_provider": getattr(detector, "provider", None),
            "workers": config.resolved_workers(),
            "threads": config.resolved_threads(),
            "crop_backend": _crop_backend(config),
        }
    )
    return Components(engine, detector, resolved)


def _crop_backend(config: ScanConfig) -> str:
    from lib_deepfake.faces.crop import crop_backend

    return str(crop_backend(config.torch_device()))


def _provider_of(engine: Any) -> str | None:
    try:
        providers = engine.info().runtime.get("providers")
    except Exception:  # noqa: BLE001 - descriptive only
        providers = None
    if providers:
        return str(providers[0])
    return {"torch": "torch", "trt": "TensorRT"}.get(getattr(engine, "name", ""))


def _warm_detector(detector: Any, config: ScanConfig) -> None:
    # Creates the ONNX Runtime session now (so the provider is known for run.json and a missing GPU provider fails
    # before any file is touched) on a tiny blank frame.
    import torch

    frames = torch.zeros((1, 64, 64, 3), dtype=torch.uint8, device=config.device)
    detector.detect(frames)


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
        engine: a loaded classifier engine (``infer(uint8 [N,S,S,3]) -> float32 [N]``, ``input_size``).
        detector: a face detector (``detect(uint8 [T,H,W,3]) -> list[Detections]``).
    """

    def __init__(self, config: ScanConfig, engine: Any, detector: Any) -> None:
        from lib_deepfake.faces.tracking import TrackingConfig

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
        t0 = time.perf_counter()
        try:
            dets = self.detector.detect(batch)
            failure = None
        except (LibDeepfakeError, RuntimeError, ValueError, MemoryError) as exc:
            dets, failure = None, exc
        dt = time.perf_counter() - t0
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
        except (LibDeepfakeError, RuntimeError, ValueError, MemoryError) as exc:
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
        t0 = time.perf_counter()
        try:
            probs = self.engine.infer(batch.contiguous()).float().cpu().numpy()  # .cpu() synchronises a CUDA engine
            failure = None
        except (LibDeepfakeError, RuntimeError, ValueError, MemoryError) as exc:
            probs, failure = None, exc
        dt = time.perf_counter() - t0
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
    def _base(self, v: _Video) -> dict[str, Any]:
        return {
            "info": v.res.info,
            "frames_sampled": v.n,
            "analysis_scale": v.res.scale,
            "decoder": v.res.decoder,
            "timings": v.times,
            "missing_frames": v.res.missing,
        }

    def _error(self, res: DecodeResult, reason: str, kind: str | None, v: _Video | None = None) -> VideoOutcome:
        self.totals.videos += 1
        extra = self._base(v) if v is not None else {"info": res.info, "decoder": res.decoder,
                                                     "timings": {"decode_s": res.decode_s}}  # fmt: skip
        row = build_row(res.key, status="error", threshold=self.config.threshold, error=reason,
                        error_kind=kind or "error", **extra)  # fmt: skip
        return VideoOutcome(row, [], {"path": res.key, "thumbs": [], "timeline": []})

    def _no_face(self, v: _Video) -> VideoOutcome:
        self.totals.videos += 1
        row = build_row(v.res.key, status="no_face", threshold=self.config.threshold,
                        error=f"no face found in {v.n} sampled frame(s)", **self._base(v))  # fmt: skip
        timeline = [[int(i), round(float(t), 3), None] for i, t in zip(v.res.indices, v.res.times_s)]
        return VideoOutcome(row, [], {"path": v.res.key, "thumbs": [], "timeline": timeline})

    def _finish(self, v: _Video) -> VideoOutcome:
        cfg = self.config
        self.totals.videos += 1
        vs = aggregate(v.identity, v.scores, rule=cfg.aggregation, min_faces=cfg.min_faces, top_k=cfg.top_k)
        idents = [{"identity": x.identity, "faces": x.faces, "score": round(x.score, 6),
                   "max_score": round(x.max_score, 6), "eligible": x.eligible} for x in vs.identities]  # fmt: skip
        frames_with_faces = len(np.unique(v.positions))
        row = build_row(v.res.key, status="ok", threshold=cfg.threshold, score=vs.score,
                        frames_with_faces=frames_with_faces, faces=v.num_faces, identity_scores=idents,
                        top_identity=vs.top_identity, **self._base(v))  # fmt: skip
        scale = v.res.scale or 1.0
        idx, times = v.res.indices, v.res.times_s
        faces = [
            {
                "path": v.res.key,
                "frame": int(idx[p]),
                "time_s": round(float(times[p]), 4),
                "identity": int(i),
                "box": [round(float(c) / scale, 2) for c in b],
                "det_score": round(float(ds), 4),
                "box_source": "interpolated" if v.interpolated[p] else "detector",
                "score": round(float(s), 6),
            }
            for p, i, b, ds, s in zip(v.positions, v.identity, v.boxes, v.det_scores, v.scores)
        ]
        per_frame = np.full(v.n, np.nan)
        for p, s in zip(v.positions, v.scores):
            per_frame[p] = s if np.isnan(per_frame[p]) else max(per_frame[p], s)
        timeline = [[int(i), round(float(t), 3), None if np.isnan(s) else round(float(s), 4)]
                    for i, t, s in zip(idx, times, per_frame)]  # fmt: skip
        report = {"path": v.res.key, "thumbs": self._thumbs(v), "timeline": timeline}
        v.crops = None
        return VideoOutcome(row, faces, report)

    def _thumbs(self, v: _Video) -> list[dict[str, Any]]:
        n = min(self.config.thumbnails, v.num_faces)
        if n == 0 or v.crops is None:
            return []
        import torch

        top = np.argsort(-v.scores, kind="stable")[:n]
        crops = v.crops[torch.as_tensor(top, device=v.crops.device)].cpu().numpy()
        out = []
        for j, c in zip(top, crops):
            out.append({"jpeg": encode_thumbnail(c), "score": round(float(v.scores[j]), 4),
                        "frame": int(v.res.indices[v.positions[j]]), "identity": int(v.identity[j]),
                        "time_s": round(float(v.res.times_s[v.positions[j]]), 3)})  # fmt: skip
        return out


def _select_frames(frames: Any, positions: list[int]) -> Any:
    """``frames[positions]``: a view for a run of consecutive positions, a gathered copy otherwise."""
    a, b = positions[0], positions[-1] + 1
    if b - a == len(positions):
        return frames[a:b]
    import torch

    return frames.index_select(0, torch.as_tensor(positions, device=frames.device))


def encode_thumbnail(crop: np.ndarray, max_side: int = 112) -> str:
    """Base64 JPEG of a uint8 [S, S, 3] RGB crop, at most ``max_side`` pixels (report thumbnails)."""
    import cv2

    img = crop
    if max(img.shape[:2]) > max_side:
        img = cv2.resize(img, (max_side, max_side), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else ""


class Scanner:
    """Scans files: a decode pool feeding a :class:`ScanPipeline`; see the module docstring.

    Args:
        config: the scan settings.
        engine, detector: ready-made components (tests, the benchmark); default: built from ``config``.
        decode_fn: "module:function" replacing the worker's decode function (test hooks).
        prefetch: decoded videos allowed to wait for the detector besides those being decoded (memory bound).
        in_process: decode PyAV files on threads in this process instead of worker processes: no start-up cost,
            but no protection against a decoder that crashes or hangs (tests; callers that isolate themselves).

    Use as a context manager (or call :meth:`close`): the decode workers live until then, so repeated
    :meth:`scan` calls (Ray batches) reuse them and the loaded engines.
    """

    def __init__(self, config: ScanConfig, *, engine: Any = None, detector: Any = None,
                 decode_fn: str | None = None, prefetch: int = 2, in_process: bool = False) -> None:  # fmt: skip
        self.config = config
        self.components = load_components(config, engine=engine, detector=detector)
        self.resolved = self.components.resolved
        self.pipeline = ScanPipeline(config, self.components.engine, self.components.detector)
        self.decode_fn = decode_fn
        self.prefetch = max(0, int(prefetch))
        self.in_process = in_process
        self._pool: ProcessDecodePool | ThreadDecodePool | None = None

    @property
    def totals(self) -> StageTotals:
        return self.pipeline.totals

    def decode_settings(self) -> DecodeSettings:
        cfg = self.config
        decoder = self.resolved["decoder"]
        device = ("gpu" if cfg.on_cuda else "cpu") if decoder == "dali" else None
        return DecodeSettings(plan=cfg.plan, timeout_s=cfg.timeout_s, max_pixels=cfg.max_pixels,
                              max_analysis_side=cfg.max_analysis_side, max_frame_bytes=cfg.max_frame_bytes,
                              threads=1, allow_truncated=bool(cfg.extra.get("allow_truncated", False)),
                              decoder=decoder, device=device, decode_fn=self.decode_fn)  # fmt: skip

    def warm_up(self) -> None:
        """Start the decode workers and run the classifier once, so that timed scans exclude start-up."""
        import torch

        self._ensure_pool().wait_ready()
        size = self.pipeline.size
        self.components.engine.infer(torch.zeros((2, size, size, 3), dtype=torch.uint8, device=self.pipeline.device))

    def peak_worker_rss_mib(self) -> float:
        """Largest peak RSS of a decode worker process so far (0 for thread decoding)."""
        return self._pool.peak_worker_rss_mib() if self._pool is not None else 0.0

    def _ensure_pool(self) -> ProcessDecodePool | ThreadDecodePool:
        if self._pool is None:
            settings = self.decode_settings()
            workers = self.config.resolved_workers()
            if settings.decoder == "dali" or self.in_process:
                self._pool = ThreadDecodePool(settings, workers).start()
            else:
                # The worker's own in-loop deadline fires first for slow decodes; the kill is for true hangs.
                grace = min(10.0, max(1.0, 0.25 * self.config.timeout_s))
                self._pool = ProcessDecodePool(settings, workers, grace_s=grace).start()
        return self._pool

    def scan(self, paths: Iterable[str | Path]) -> Iterator[VideoOutcome]:
        """Scan files; yields one :class:`VideoOutcome` per file as it finishes (not in input order)."""
        todo = deque(str(p) for p in paths)
        if not todo:
            return
        pool = self._ensure_pool()
        pipe = self.pipeline
        limit = pool.workers + self.prefetch
        while todo or pool.pending or pipe.busy:
            while todo and pool.pending + pipe.holding_frames < limit:
                pool.submit(todo.popleft())
            has_work = pipe.busy
            t0 = time.perf_counter()
            results = pool.poll(0.0 if has_work else 0.5)
            if not has_work:
                pipe.totals.wait_s += time.perf_counter() - t0
            for res in results:
                yield from pipe.add(res)
            if pipe.has_detect_work():
                yield from pipe.step_detect()
            elif pipe.has_classify_work():
                # A full batch always runs; a partial one runs when nothing else is ready (idle main = lost time).
                yield from pipe.step_classify(force=not results)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoScanner:
    """Stateful per-worker scanner for scale-out (a Ray ``map_batches`` actor): engines load once in ``__init__``.

    ``scanner(paths)`` (a list of paths, or a dict with a ``"path"`` list as Ray batches are) returns the rows in
    input order, built by the same code as ``lib-infer``. :meth:`outcomes` also returns faces and report data.
    """

    def __init__(self, config: ScanConfig, **kwargs: Any) -> None:
        self.scanner = Scanner(config, **kwargs)

    def outcomes(self, paths: Iterable[str | Path]) -> list[VideoOutcome]:
        keys = [str(p) for p in paths]
        got = {o.row["path"]: o for o in self.scanner.scan(keys)}
        return [got[k] for k in keys if k in got]

    def __call__(self, batch: Any) -> list[dict[str, Any]]:
        paths = batch["path"] if isinstance(batch, dict) else batch
        return [o.row for o in self.outcomes(list(paths))]

    def close(self) -> None:
        self.scanner.close()


__all__ = ["Components", "STAGES", "ScanPipeline", "Scanner", "StageTotals", "VideoOutcome", "VideoScanner",
           "encode_thumbnail", "load_components", "resolve_choices"]  # fmt: skip
