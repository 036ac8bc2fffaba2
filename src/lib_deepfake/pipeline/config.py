"""The resolved settings of one scan (``lib-infer`` builds it from its options; Ray and the bench build it directly).

A :class:`ScanConfig` is composed of the small configs that own their settings, each default written once:

- :class:`DecodeSettings` - how each file is decoded (plan, decoder, time limit, memory limits, truncated files);
  the decode workers receive it (with the decoder resolved);
- :class:`~lib_deepfake.faces.base.DetectorConfig` - the face detector's thresholds, input size and batch;
- the scan's own fields - model, engine, device, batching, aggregation, outputs.

The settings of the small configs also have **flat names** - the keys of run.json's ``"config"`` section and the
``lib-infer`` options - which :class:`ScanConfig` accepts as keywords and offers as attributes
(``ScanConfig(model, plan="uniform:8", detector_max_side=320).plan``); each is still stored once, in the small config
that owns it. :meth:`ScanConfig.to_dict` is what ``run.json`` records (so ``ScanConfig(**run["config"])`` rebuilds
the config), and :meth:`ScanConfig.fingerprint` is what ``--resume`` compares so that a scan is never continued with
another model or sampling plan (rows made with different settings would be mixed silently otherwise).

All frozen and validated on construction.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib_deepfake.engines.registry import list_engines
from lib_deepfake.errors import ContractError
from lib_deepfake.faces.base import DetectorConfig
from lib_deepfake.video.sampling import DEFAULT_NUM_FRAMES

if TYPE_CHECKING:
    from lib_deepfake.pipeline.engine_choice import EngineChoice

AGGREGATIONS = ("identity-max", "mean", "topk")
DECODER_CHOICES = ("auto", "pyav", "dali")
ENGINE_CHOICES = ("auto", *list_engines())

#: The sampling plan of a scan: the field's protocol, evenly spaced frames.
DEFAULT_PLAN = f"uniform:{DEFAULT_NUM_FRAMES}"
#: Per-file decode time limit of a scan; the worker decoding a file is killed past it (plus a grace period).
DEFAULT_TIMEOUT_S = 120.0
#: Frames whose long side exceeds this are downscaled (area filter) before detection and cropping: a 4K frame
#: costs 25 MB, and 32 of them 800 MB per video in flight, while a face that is large in 4K is still large at 1920.
DEFAULT_MAX_ANALYSIS_SIDE = 1920
#: A video whose sampled frames would need more memory than this (after the downscale above) is refused with an
#: error row rather than risking the machine: ``--frames 2000`` on a 1080p clip is 12 GB.
DEFAULT_MAX_FRAME_BYTES = 1536 << 20


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class DecodeSettings:
    """How each file of a scan is decoded (picklable: the decode workers receive it).

    Attributes:
        plan: sampling plan spec (``lib_deepfake.video.parse_plan``), e.g. "uniform:32".
        decoder: "auto" (DALI on a CUDA device when DALI is installed, else PyAV), "pyav" or "dali"; the scanner
            resolves "auto" before the settings reach a worker.
        timeout_s: per-file limit (in-loop deadline inside the worker; the parent kills at timeout + grace).
        max_pixels: refuse videos whose frames have more pixels than this, before decoding (None: the video
            package default).
        max_analysis_side: area-downscale frames whose long side exceeds this before detection and crops (None:
            never).
        max_frame_bytes: refuse videos whose sampled frames would need more memory than this.
        allow_truncated: decode what a truncated file holds instead of an error row.
        threads: decoder threads per worker (0: libavcodec's choice).
        device: DALI device ("gpu"/"cpu"), set by the scanner; unused by PyAV.
        decode_fn: "module:function" used instead of the worker's decode function (test hooks; must be
            importable).
    """

    plan: str = DEFAULT_PLAN
    decoder: str = "auto"
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_pixels: int | None = None
    max_analysis_side: int | None = DEFAULT_MAX_ANALYSIS_SIDE
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    allow_truncated: bool = False
    threads: int = 1
    device: str | None = None
    decode_fn: str | None = None

    def __post_init__(self) -> None:
        if self.decoder not in DECODER_CHOICES:
            raise ContractError(f"decoder must be one of {', '.join(DECODER_CHOICES)}, got {self.decoder!r}")
        if self.timeout_s <= 0:
            raise ContractError(f"timeout must be > 0 s, got {self.timeout_s}")
        if self.max_analysis_side is not None and self.max_analysis_side < 64:
            raise ContractError(f"max_analysis_side must be >= 64 pixels, got {self.max_analysis_side}")
        from lib_deepfake.video import parse_plan

        parse_plan(self.plan)  # raises PlanError with the reason


#: The flat names of the settings that live in the small configs: flat name -> (ScanConfig field, its field).
NESTED_SETTINGS: dict[str, tuple[str, str]] = {
    "decoder": ("decode", "decoder"),
    "plan": ("decode", "plan"),
    "timeout_s": ("decode", "timeout_s"),
    "max_analysis_side": ("decode", "max_analysis_side"),
    "max_frame_bytes": ("decode", "max_frame_bytes"),
    "max_pixels": ("decode", "max_pixels"),
    "allow_truncated": ("decode", "allow_truncated"),
    "detect_batch": ("detection", "batch_size"),
    "detector_max_side": ("detection", "max_side"),
    "detector_threshold": ("detection", "score_threshold"),
}

#: run.json ``"config"`` keys, in the order earlier versions wrote them.
_RUN_JSON_KEYS = (
    "model", "engine", "decoder", "device", "plan", "threshold", "batch_size", "detect_batch", "workers", "timeout_s",
    "aggregation", "min_faces", "top_k", "detector", "detector_model", "detector_max_side", "detector_threshold",
    "detect_every", "interpolate_iou", "min_face_px", "crop_scale", "max_analysis_side", "max_frame_bytes",
    "max_pixels", "threads", "faces_jsonl", "report", "thumbnails", "allow_cpu_fallback", "allow_truncated",
)  # fmt: skip

#: What decides a row's content, hashed by :meth:`ScanConfig.fingerprint` (besides the model file's identity).
_FINGERPRINT_KEYS = ("engine", "plan", "threshold", "aggregation", "min_faces", "top_k", "detector",
                     "detector_max_side", "detector_threshold", "min_face_px", "crop_scale",
                     "max_analysis_side")  # fmt: skip


@dataclass(frozen=True, init=False)
class ScanConfig:
    """Everything that decides what a scan computes and how.

    Construct with the scan's own fields and either the small configs (``decode=``, ``detection=``) or the flat
    names of their settings (:data:`NESTED_SETTINGS`; flat names override the small config given with them, which
    is how :func:`dataclasses.replace` works on them too).

    Attributes:
        model: classifier artifact: a checkpoint (.pth/.pt), an ONNX model (.onnx) or a TensorRT plan (.plan).
        engine: a registered engine ("torch", "onnxrt", "trt", "openvino", "aoti") or "auto": on a CPU with a
            checkpoint, the fastest engine and precision whose accuracy gate passes (probed at the start,
            :mod:`~lib_deepfake.pipeline.engine_choice`); otherwise the engine of the artifact's suffix.
        device: "cpu" or "cuda[:N]" for the detector, crops and classifier.
        threshold: verdict "fake" when score >= threshold; None: the model's calibrated threshold (its model card),
            else 0.5 (settled before a scan by :func:`~lib_deepfake.pipeline.scan_threshold.resolve_scan_threshold`).
        batch_size: classifier batch (face crops from several videos share a batch).
        workers: decode worker processes (0: automatic, one per spare core, at least 1).
        aggregation: "identity-max" (per-identity mean, max over identities with >= ``min_faces`` faces),
            "mean" (all faces) or "topk" (mean of the ``top_k`` highest face scores).
        min_faces: K of "identity-max".
        top_k: k of "topk".
        detector: registered face detector name ("centerface"; "center" is a fixed centre box for tests).
        detector_model: detector weights file (None: the detector's default).
        detect_every: run the detector on every K-th sampled frame and interpolate the boxes in between where the
            two ends agree (``faces.sparse_detect``); 1 = every sampled frame.
        interpolate_iou: the agreement threshold of ``detect_every`` (matched faces need at least this IoU).
        min_face_px: detections smaller than this (box side, in analysed-frame pixels) are ignored.
        crop_scale: face box expansion before the crop (docs/ARCHITECTURE.md "Crop geometry").
        threads: intra-op threads of the detector and classifier on CPU (None: all usable cores).
        faces_jsonl: also write faces.jsonl (one line per face).
        report: write report.html at the end.
        thumbnails: highest-scoring face crops kept per video for the report.
        allow_cpu_fallback: ONNX Runtime / detector: run on CPU when the GPU provider is missing (recorded).
        candidates: other artifacts of ``model`` that ``engine="auto"`` may choose (default: those beside the
            checkpoint whose manifest names it).
        engine_pin: an engine already chosen (:func:`~lib_deepfake.pipeline.engine_choice.pin_engine`): used as
            it is, nothing is probed (what a Ray driver hands its workers).
        decode: how files are decoded (flat names: plan, decoder, timeout_s, max_pixels, max_analysis_side,
            max_frame_bytes, allow_truncated).
        detection: the face detector's settings (flat names: detector_threshold, detector_max_side, detect_batch);
            where it runs (device, threads, fallback) follows the scan's fields, see :meth:`detector_config`.
    """

    model: Path
    engine: str = "auto"
    device: str = "cpu"
    threshold: float | None = None
    batch_size: int = 32
    workers: int = 0
    aggregation: str = "identity-max"
    min_faces: int = 3
    top_k: int = 5
    detector: str = "centerface"
    detector_model: Path | None = None
    detect_every: int = 1
    interpolate_iou: float = 0.5
    min_face_px: float = 8.0
    crop_scale: float = 1.3
    threads: int | None = None
    faces_jsonl: bool = False
    report: bool = True
    thumbnails: int = 4
    allow_cpu_fallback: bool = False
    candidates: tuple[Path, ...] = ()
    engine_pin: EngineChoice | None = None
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    detection: DetectorConfig = field(default_factory=DetectorConfig)

    # Read access by flat name to the settings of the small configs (NESTED_SETTINGS).
    decoder = property(lambda self: self.decode.decoder)
    plan = property(lambda self: self.decode.plan)
    timeout_s = property(lambda self: self.decode.timeout_s)
    max_analysis_side = property(lambda self: self.decode.max_analysis_side)
    max_frame_bytes = property(lambda self: self.decode.max_frame_bytes)
    max_pixels = property(lambda self: self.decode.max_pixels)
    allow_truncated = property(lambda self: self.decode.allow_truncated)
    detect_batch = property(lambda self: self.detection.batch_size)
    detector_max_side = property(lambda self: self.detection.max_side)
    detector_threshold = property(lambda self: self.detection.score_threshold)

    def __init__(self, model: Path | str, *, decode: DecodeSettings | None = None,
                 detection: DetectorConfig | None = None, **settings: Any) -> None:  # fmt: skip
        nested: dict[str, dict[str, Any]] = {"decode": {}, "detection": {}}
        for flat in [k for k in settings if k in NESTED_SETTINGS]:
            part, name = NESTED_SETTINGS[flat]
            nested[part][name] = settings.pop(flat)
        own = {f.name: f for f in fields(self)}
        unknown = sorted(set(settings) - set(own))
        if unknown:
            raise TypeError(f"ScanConfig got unexpected keyword argument(s): {', '.join(unknown)}")
        put = object.__setattr__
        put(self, "model", Path(model))
        for name, f in own.items():
            if name not in ("model", "decode", "detection"):
                put(self, name, settings.get(name, f.default))
        if self.detector_model is not None:
            put(self, "detector_model", Path(self.detector_model))
        put(self, "candidates", tuple(Path(p) for p in self.candidates or ()))
        put(self, "decode", replace(decode or DecodeSettings(), **nested["decode"]))
        put(self, "detection", replace(detection or DetectorConfig(), **nested["detection"]))
        self._validate()

    def _validate(self) -> None:
        if self.engine != "auto" and self.engine not in list_engines():
            raise ContractError(f"engine must be auto or one of {', '.join(list_engines())}, got {self.engine!r}")
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise ContractError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ContractError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.batch_size < 1:
            raise ContractError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.workers < 0:
            raise ContractError(f"workers must be >= 0 (0 = automatic), got {self.workers}")
        if self.aggregation not in AGGREGATIONS:
            raise ContractError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {self.aggregation!r}")
        if self.min_faces < 1 or self.top_k < 1:
            raise ContractError("min_faces and top_k must be >= 1")
        if self.detect_every < 1:
            raise ContractError(f"detect_every must be >= 1, got {self.detect_every}")
        if not 0.0 < self.interpolate_iou <= 1.0:
            raise ContractError(f"interpolate_iou must be in (0, 1], got {self.interpolate_iou}")
        if self.thumbnails < 0:
            raise ContractError("thumbnails must be >= 0")
        if not 0.0 < self.crop_scale <= 4.0:
            raise ContractError(f"crop_scale must be in (0, 4], got {self.crop_scale}")

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def torch_device(self) -> Any:
        """The ``torch.device`` the scan runs on, with an explicit index ("cuda" means "cuda:0")."""
        import torch

        return torch.device("cuda:0" if self.device == "cuda" else self.device)

    def resolved_workers(self) -> int:
        """Decode processes: one per core left after the main process (which runs detector and classifier)."""
        return self.workers or max(1, min(usable_cores() - 1, 8))

    def resolved_threads(self) -> int:
        return self.threads or usable_cores()

    def detector_config(self) -> DetectorConfig:
        """:attr:`detection` with where the detector runs taken from the scan: device, CPU threads, the CPU fallback,
        and no busy-waiting threads on CPU (the decode workers need those cores)."""
        return replace(self.detection, device="cuda" if self.on_cuda else "cpu", threads=self.resolved_threads(),
                       allow_cpu_fallback=self.allow_cpu_fallback, spin=self.on_cuda)  # fmt: skip

    def aggregation_rule(self) -> str:
        """The aggregation rule in words (written to run.json, the report and the CLI summary)."""
        if self.aggregation == "identity-max":
            return (
                f"identity-max: faces are linked into identities across sampled frames; an identity's score is the "
                f"mean P(fake) of its faces; the video score is the maximum over identities with at least "
                f"{self.min_faces} face(s) (over all identities when none has that many)"
            )
        if self.aggregation == "mean":
            return "mean: the video score is the mean P(fake) over all detected faces of all sampled frames"
        return f"topk: the video score is the mean of the {self.top_k} highest face P(fake) values"

    def to_dict(self) -> dict[str, Any]:
        """The flat settings, as run.json records them (paths as strings)."""
        d = {k: getattr(self, k) for k in _RUN_JSON_KEYS}
        d["model"] = str(self.model)
        d["detector_model"] = str(self.detector_model) if self.detector_model is not None else None
        if self.candidates:  # only then: run.json of other scans keeps the keys of earlier versions
            d["candidates"] = [str(p) for p in self.candidates]
        return d

    def fingerprint(self) -> str:
        """Hash of what decides a row's content (model bytes identity, plan, detector, aggregation, threshold)."""
        try:
            st = self.model.stat()
            model_id = [str(self.model.resolve()), st.st_size, int(st.st_mtime)]
        except OSError:
            model_id = [str(self.model)]
        payload = {"model": model_id, **{k: getattr(self, k) for k in _FINGERPRINT_KEYS},
                   "detector_model": str(self.detector_model) if self.detector_model else None}  # fmt: skip
        if self.detect_every != 1:  # only then: dense scans keep the fingerprints of earlier versions
            payload.update(detect_every=self.detect_every, interpolate_iou=self.interpolate_iou)
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


__all__ = [
    "AGGREGATIONS", "DECODER_CHOICES", "DEFAULT_MAX_ANALYSIS_SIDE", "DEFAULT_MAX_FRAME_BYTES", "DEFAULT_PLAN",
    "DEFAULT_TIMEOUT_S", "ENGINE_CHOICES", "NESTED_SETTINGS", "DecodeSettings", "ScanConfig", "usable_cores",
]  # fmt: skip
