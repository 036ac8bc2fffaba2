"""The face-detector interface, per-frame detections, shared decode helpers and the test detectors.

Every detector takes a batch of frames (uint8 [T, H, W, 3] RGB) and returns one :class:`Detections` per frame
with boxes in the pixel coordinates of the *original* frame, whatever size the network saw. Detectors are
constructed cheaply and load their weights on the first call; nothing is downloaded, ever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lib_deepfake.errors import ContractError

__all__ = [
    "CenterCropDetector",
    "DetectorConfig",
    "Detections",
    "FaceDetector",
    "FixedBoxDetector",
    "box_iou",
    "canonical_landmarks",
    "frames_to_numpy",
    "nms",
    "plan_input_size",
]

# CenterFace finds faces down to about 10-12 px tall in the image it is fed (stride-4 heatmap); 20 px is the
# size we treat as reliable (faces.md: 24 px faces 3/3 at native size, 12-16 px after a 2x shrink 0-2/3).
MODEL_MIN_FACE_PX = 20.0


@dataclass(frozen=True)
class DetectorConfig:
    """Options shared by the neural detectors.

    Attributes:
        score_threshold: keep heatmap peaks / boxes scoring above this (0..1).
        nms_iou: IoU above which the lower-scoring of two boxes is suppressed.
        max_side: downscale frames so the long side is at most this many pixels (None: never downscale) ...
        min_face_size: ... unless that would shrink faces of this many *original* pixels below what the network
            detects reliably (:data:`MODEL_MIN_FACE_PX`); None: only ``max_side`` counts.
        batch_size: frames per network call.
        device: ``"cpu"`` or ``"cuda"`` (ONNX Runtime CUDA execution provider).
        allow_cpu_fallback: with ``device="cuda"``, run on CPU (with a warning) instead of raising when the CUDA
            provider is not active.
        threads: intra-op threads for the CPU provider (None: ONNX Runtime's default, all cores).
        spin: idle intra-op threads busy-wait (ONNX Runtime's default); False leaves the cores to other processes.
        max_candidates: cap on heatmap cells passed to NMS per batch (guards against a degenerate heatmap).
    """

    score_threshold: float = 0.5
    nms_iou: float = 0.3
    max_side: int | None = 640
    min_face_size: float | None = None
    batch_size: int = 8
    device: str = "cpu"
    allow_cpu_fallback: bool = False
    threads: int | None = None
    spin: bool = True
    max_candidates: int = 4096

    def __post_init__(self) -> None:
        if not 0.0 < self.score_threshold < 1.0:
            raise ContractError(f"score_threshold must be in (0, 1), got {self.score_threshold}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ContractError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        if self.max_side is not None and self.max_side < 32:
            raise ContractError(f"max_side must be >= 32 pixels, got {self.max_side}")
        if self.min_face_size is not None and self.min_face_size <= 0:
            raise ContractError(f"min_face_size must be > 0 pixels, got {self.min_face_size}")
        if self.batch_size < 1:
            raise ContractError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.device not in ("cpu", "cuda"):
            raise ContractError(f"device must be 'cpu' or 'cuda', got {self.device!r}")


@dataclass
class Detections:
    """The faces found in one frame.

    Attributes:
        boxes: float32 [K, 4] (x1, y1, x2, y2) in original frame pixels, x2/y2 exclusive edges.
        scores: float32 [K] detector confidence, sorted descending.
        landmarks: float32 [K, 5, 2] (x, y): left eye, right eye, nose, left mouth corner, right mouth corner
            (left/right as seen in the image).
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.landmarks = np.asarray(self.landmarks, np.float32).reshape(-1, 5, 2)
        if not len(self.boxes) == len(self.scores) == len(self.landmarks):
            raise ContractError(
                f"Detections need equal counts, got boxes {len(self.boxes)}, scores {len(self.scores)}, "
                f"landmarks {len(self.landmarks)}"
            )

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, index: Any) -> Detections:
        """A new Detections holding ``boxes[index]`` etc. (index: int array, bool mask or slice)."""
        return Detections(self.boxes[index], self.scores[index], self.landmarks[index])

    @property
    def areas(self) -> np.ndarray:
        """float32 [K] box areas in pixels."""
        return (self.boxes[:, 2] - self.boxes[:, 0]).clip(0) * (self.boxes[:, 3] - self.boxes[:, 1]).clip(0)


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in a batch of frames."""

    name: str

    def detect(self, frames: Any) -> list[Detections]:
        """Find faces.

        Args:
            frames: uint8 [T, H, W, 3] RGB, a numpy array or a torch tensor (CPU or CUDA).

        Returns:
            T Detections, one per frame, boxes in the coordinates of ``frames``.
        """
        ...


def frames_to_numpy(frames: Any) -> np.ndarray:
    """uint8 [T, H, W, 3] numpy view/copy of a numpy array or torch tensor (any device); checks the contract."""
    if hasattr(frames, "detach"):  # torch tensor; avoid importing torch for numpy callers
        frames = frames.detach().cpu().numpy()
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ContractError(f"frames must be uint8 [T, H, W, 3] RGB, got {arr.dtype} {list(arr.shape)}")
    return arr


def plan_input_size(
    height: int, width: int, max_side: int | None, min_face_size: float | None, multiple: int = 32
) -> tuple[float, int, int, int, int]:
    """The downscaling policy: how big the network input is for a frame of ``height`` x ``width``.

    The frame is scaled by ``s = min(1, max_side / long_side)`` so large frames cost what a 640-px frame costs.
    When ``min_face_size`` is set, ``s`` is raised to at least ``MODEL_MIN_FACE_PX / min_face_size`` (never above
    1, frames are not upscaled) so that faces of that many original pixels stay detectable. The scaled frame is
    then zero-padded at the right/bottom to a multiple of ``multiple`` (the network's stride), which keeps the
    aspect ratio exact instead of stretching.

    Returns:
        (scale, resized_h, resized_w, padded_h, padded_w).
    """
    if height < 1 or width < 1:
        raise ContractError(f"frame size must be positive, got {height}x{width}")
    scale = 1.0
    if max_side is not None:
        scale = min(1.0, max_side / max(height, width))
    if min_face_size is not None:
        scale = max(scale, min(1.0, MODEL_MIN_FACE_PX / min_face_size))
    rh, rw = max(1, round(height * scale)), max(1, round(width * scale))
    ph, pw = math.ceil(rh / multiple) * multiple, math.ceil(rw / multiple) * multiple
    return scale, rh, rw, ph, pw


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix float32 [N, M] of xyxy boxes a [N, 4] and b [M, 4]."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clip(0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, groups: np.ndarray | None = None) -> np.ndarray:
    """Greedy non-maximum suppression, optionally independent per group (e.g. per frame of a batch).

    The IoU matrix is computed once, vectorised; the greedy pass walks boxes by descending score and drops every
    later box overlapping a kept one by more than ``iou_threshold``. Boxes of different ``groups`` never suppress
    each other (the IoU entries between them are zeroed).

    Args:
        boxes: float32 [N, 4] xyxy.
        scores: float32 [N].
        iou_threshold: suppression threshold.
        groups: int [N] group id per box, or None for one group.

    Returns:
        int64 [K] indices of kept boxes, by descending score (stable for ties).
    """
    n = len(boxes)
    if n == 0:
        return np.zeros((0,), np.int64)
    order = np.argsort(-np.asarray(scores, np.float32), kind="stable")
    iou = box_iou(boxes[order], boxes[order])
    if groups is not None:
        g = np.asarray(groups)[order]
        iou = np.where(g[:, None] == g[None, :], iou, 0.0)
    overlap = np.triu(iou > iou_threshold, k=1)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if keep[i]:
            keep &= ~overlap[i]
    return order[keep].astype(np.int64)


def canonical_landmarks(boxes: np.ndarray) -> np.ndarray:
    """float32 [K, 5, 2] plausible frontal-face landmarks for xyxy boxes [K, 4] (for box-only detectors)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    # Fractions of a detector-style face box (forehead to chin); close to CenterFace's output on frontal faces.
    rel = np.array([[0.32, 0.40], [0.68, 0.40], [0.50, 0.58], [0.36, 0.76], [0.64, 0.76]], np.float32)
    wh = (boxes[:, 2:] - boxes[:, :2])[:, None, :]
    return (boxes[:, None, :2] + rel[None] * wh).astype(np.float32)


def _frame_shape(frames: Any) -> tuple[int, int, int]:
    """(T, H, W) of uint8 [T, H, W, 3] frames without copying them off their device."""
    shape = tuple(getattr(frames, "shape", ()))
    if len(shape) != 4 or shape[-1] != 3:
        raise ContractError(f"frames must be uint8 [T, H, W, 3] RGB, got shape {list(shape)}")
    return int(shape[0]), int(shape[1]), int(shape[2])


class FixedBoxDetector:
    """Returns the same boxes for every frame (tests, fakes, pre-cropped footage).

    Args:
        boxes: float32 [K, 4] xyxy in frame pixels.
        score: the score reported for each box.
    """

    name = "fixed"

    def __init__(self, boxes: Any, score: float = 1.0) -> None:
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.score = float(score)

    def detect(self, frames: Any) -> list[Detections]:
        t = _frame_shape(frames)[0]
        lms = canonical_landmarks(self.boxes)
        return [Detections(self.boxes.copy(), np.full(len(self.boxes), self.score, np.float32), lms) for _ in range(t)]


class CenterCropDetector:
    """One square box in the middle of every frame, ``fraction`` of the short side (tests and fakes).

    Args:
        fraction: side of the box relative to the frame's short side (0..1].
    """

    name = "center"

    def __init__(self, fraction: float = 0.5) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ContractError(f"fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction

    def detect(self, frames: Any) -> list[Detections]:
        t, h, w = _frame_shape(frames)
        side = self.fraction * min(h, w)
        box = np.array([[(w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2]], np.float32)
        return [Detections(box.copy(), np.ones(1, np.float32), canonical_landmarks(box)) for _ in range(t)]
