"""The resolved settings of one scan (``lib-infer`` builds it from its options; Ray and the bench build it directly).

Frozen and validated in ``__post_init__``; :meth:`ScanConfig.to_dict` is what ``run.json`` records, and
:meth:`ScanConfig.fingerprint` is what ``--resume`` compares so that a scan is never continued with another model
or sampling plan (rows made with different settings would be mixed silently otherwise).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lib_deepfake.errors import ContractError

AGGREGATIONS = ("identity-max", "mean", "topk")
DECODER_CHOICES = ("auto", "pyav", "dali")
ENGINE_CHOICES = ("auto", "torch", "onnxrt", "trt")

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
class ScanConfig:
    """Everything that decides what a scan computes and how.

    Attributes:
        model: classifier artifact: a checkpoint (.pth/.pt), an ONNX model (.onnx) or a TensorRT plan (.plan).
        engine: "auto" (from the artifact suffix), "torch", "onnxrt" or "trt".
        decoder: "auto" (DALI on a CUDA device when DALI is installed, else PyAV), "pyav" or "dali".
        device: "cpu" or "cuda[:N]" for the detector, crops and classifier.
        plan: sampling plan spec (``lib_deepfake.video.parse_plan``), e.g. "uniform:32".
        threshold: verdict "fake" when score >= threshold.
        batch_size: classifier batch (face crops from several videos share a batch).
        detect_batch: detector batch in frames (frames of several videos of the same size share a batch).
        workers: decode worker processes (0: automatic, one per spare core, at least 1).
        timeout_s: per-file decode time limit; the worker is killed when it passes.
        aggregation: "identity-max" (per-identity mean, max over identities with >= ``min_faces`` faces),
            "mean" (all faces) or "topk" (mean of the ``top_k`` highest face scores).
        min_faces: K of "identity-max".
        top_k: k of "topk".
        detector: registered face detector name ("centerface"; "center" is a fixed centre box for tests).
        detector_model: detector weights file (None: the detector's default).
        detector_max_side: the detector sees frames downscaled to this long side (None: full resolution).
        detector_threshold: detector confidence threshold.
        detect_every: run the detector on every K-th sampled frame and interpolate the boxes in between where the
            two ends agree (``faces.sparse_detect``); 1 = every sampled frame.
        interpolate_iou: the agreement threshold of ``detect_every`` (matched faces need at least this IoU).
        min_face_px: detections smaller than this (box side, in analysed-frame pixels) are ignored.
        crop_scale: face box expansion before the crop (docs/ARCHITECTURE.md "Crop geometry").
        max_analysis_side: frames are downscaled to this long side before detection and crops (None: never).
        max_frame_bytes: refuse a video whose sampled frames would need more memory than this.
        max_pixels: refuse videos whose frames have more pixels than this (checked before decoding).
        threads: intra-op threads of the detector and classifier on CPU (None: all usable cores).
        faces_jsonl: also write faces.jsonl (one line per face).
        report: write report.html at the end.
        thumbnails: highest-scoring face crops kept per video for the report.
        allow_cpu_fallback: ONNX Runtime / detector: run on CPU when the GPU provider is missing (recorded).
    """

    model: Path
    engine: str = "auto"
    decoder: str = "auto"
    device: str = "cpu"
    plan: str = "uniform:32"
    threshold: float = 0.5
    batch_size: int = 32
    detect_batch: int = 8
    workers: int = 0
    timeout_s: float = 120.0
    aggregation: str = "identity-max"
    min_faces: int = 3
    top_k: int = 5
    detector: str = "centerface"
    detector_model: Path | None = None
    detector_max_side: int | None = 640
    detector_threshold: float = 0.5
    detect_every: int = 1
    interpolate_iou: float = 0.5
    min_face_px: float = 8.0
    crop_scale: float = 1.3
    max_analysis_side: int | None = DEFAULT_MAX_ANALYSIS_SIDE
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_pixels: int | None = None
    threads: int | None = None
    faces_jsonl: bool = False
    report: bool = True
    thumbnails: int = 4
    allow_cpu_fallback: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", Path(self.model))
        if self.detector_model is not None:
            object.__setattr__(self, "detector_model", Path(self.detector_model))
        if self.engine not in ENGINE_CHOICES:
            raise ContractError(f"engine must be one of {', '.join(ENGINE_CHOICES)}, got {self.engine!r}")
        if self.decoder not in DECODER_CHOICES:
            raise ContractError(f"decoder must be one of {', '.join(DECODER_CHOICES)}, got {self.decoder!r}")
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise ContractError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ContractError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.batch_size < 1 or self.detect_batch < 1:
            raise ContractError("batch sizes must be >= 1")
        if self.workers < 0:
            raise ContractError(f"workers must be >= 0 (0 = automatic), got {self.workers}")
        if self.timeout_s <= 0:
            raise ContractError(f"timeout must be > 0 s, got {self.timeout_s}")
        if self.aggregation not in AGGREGATIONS:
            raise ContractError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {self.aggregation!r}")
        if self.min_faces < 1 or self.top_k < 1:
            raise ContractError("min_faces and top_k must be >= 1")
        if self.max_analysis_side is not None and self.max_analysis_side < 64:
            raise ContractError(f"max_analysis_side must be >= 64 pixels, got {self.max_analysis_side}")
        if self.detect_every < 1:
            raise ContractError(f"detect_every must be >= 1, got {self.detect_every}")
        if not 0.0 < self.interpolate_iou <= 1.0:
            raise ContractError(f"interpolate_iou must be in (0, 1], got {self.interpolate_iou}")
        if self.thumbnails < 0:
            raise ContractError("thumbnails must be >= 0")
        if not 0.0 < self.crop_scale <= 4.0:
            raise ContractError(f"crop_scale must be in (0, 4], got {self.crop_scale}")
        from lib_deepfake.video import parse_plan

        parse_plan(self.plan)  # raises PlanError with the reason

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
        d = asdict(self)
        d["model"] = str(self.model)
        d["detector_model"] = str(self.detector_model) if self.detector_model is not None else None
        return d

    def fingerprint(self) -> str:
        """Hash of what decides a row's content (model bytes identity, plan, detector, aggregation, threshold)."""
        try:
            st = self.model.stat()
            model_id = [str(self.model.resolve()), st.st_size, int(st.st_mtime)]
        except OSError:
            model_id = [str(self.model)]
        keys = ("engine", "plan", "threshold", "aggregation", "min_faces", "top_k", "detector", "detector_max_side",
                "detector_threshold", "min_face_px", "crop_scale", "max_analysis_side")  # fmt: skip
        payload = {"model": model_id, **{k: getattr(self, k) for k in keys},
                   "detector_model": str(self.detector_model) if self.detector_model else None}  # fmt: skip
        if self.detect_every != 1:  # only then: dense scans keep the fingerprints of earlier versions
            payload.update(detect_every=self.detect_every, interpolate_iou=self.interpolate_iou)
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


__all__ = ["AGGREGATIONS", "DECODER_CHOICES", "ENGINE_CHOICES", "ScanConfig", "usable_cores"]
