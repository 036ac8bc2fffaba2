"""Self-blended images (SBI, Shiohara & Yamasaki, CVPR 2022), built from 5 landmarks.

A face is blended with a slightly transformed copy of itself inside a deformed, blurred face mask. The copy
differs in colour (RGB/HSV shifts, brightness/contrast), in frequency content (down/up-sampling blur or
sharpening) and in geometry (a few % shift and scale), so the result shows the blending boundary and the
statistical mismatch that face-swap methods leave, without any identity change. SBI uses a 68-point hull; with
5 landmarks the mask is an ellipse fitted to the eyes and mouth (forehead to chin), deformed by smooth radial
noise, randomly eroded or dilated and blurred.

Everything here is pure numpy + OpenCV and deterministic for a given ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib_deepfake._optional import require

__all__ = ["BlendParams", "face_mask", "sample_blend_params", "self_blend"]


@dataclass(frozen=True)
class BlendParams:
    """One draw of the SBI transforms (all relative, so the same draw can drive every frame of a clip).

    Attributes:
        rgb_shift: float [3] added to the copy, in grey levels.
        hue_shift, sat_scale, val_scale: HSV changes of the copy (hue in OpenCV units 0..180).
        contrast, brightness: ``x * contrast + brightness`` on the copy.
        resample: < 1: the copy is downsampled by this factor and upsampled back (blur); 1: unchanged.
        sharpen: unsharp-mask amount applied to the copy (0: none).
        shift: (dx, dy) translation of the copy as a fraction of the face size.
        zoom: scale of the copy about the face centre.
        mask_scale: (sx, sy) scale of the face ellipse.
        mask_noise: amplitude of the radial deformation of the ellipse (fraction of its radius).
        mask_seed: seed of the deformation pattern.
        blur_frac: mask blur kernel as a fraction of the face size.
        ratio: blending ratio (1: the copy fully replaces the face inside the mask).
        copy_is_source: True: the transformed copy is pasted onto the original; False: the other way round.
    """

    rgb_shift: tuple[float, float, float]
    hue_shift: float
    sat_scale: float
    val_scale: float
    contrast: float
    brightness: float
    resample: float
    sharpen: float
    shift: tuple[float, float]
    zoom: float
    mask_scale: tuple[float, float]
    mask_noise: float
    mask_seed: int
    blur_frac: float
    ratio: float
    copy_is_source: bool


def sample_blend_params(rng: np.random.Generator, strength: float = 1.0) -> BlendParams:
    """Draw SBI transform parameters; ``strength`` scales the colour/geometry perturbations (1: paper-like)."""
    s = float(strength)
    freq = rng.random()
    return BlendParams(
        rgb_shift=tuple(float(v) for v in rng.uniform(-20, 20, 3) * s),  # type: ignore[arg-type]
        hue_shift=float(rng.uniform(-5, 5) * s),
        sat_scale=float(1 + rng.uniform(-0.2, 0.2) * s),
        val_scale=float(1 + rng.uniform(-0.15, 0.15) * s),
        contrast=float(1 + rng.uniform(-0.15, 0.15) * s),
        brightness=float(rng.uniform(-12, 12) * s),
        resample=float(rng.uniform(0.35, 0.75)) if freq < 0.6 else 1.0,
        sharpen=float(rng.uniform(0.5, 1.5) * s) if freq >= 0.8 else 0.0,
        shift=(float(rng.uniform(-0.03, 0.03) * s), float(rng.uniform(-0.03, 0.03) * s)),
        zoom=float(1 + rng.uniform(-0.05, 0.05) * s),
        mask_scale=(float(rng.uniform(0.85, 1.1)), float(rng.uniform(0.85, 1.1))),
        mask_noise=float(rng.uniform(0.02, 0.08)),
        mask_seed=int(rng.integers(0, 2**31 - 1)),
        blur_frac=float(rng.uniform(0.05, 0.2)),
        ratio=float(rng.choice([0.5, 0.75, 1.0, 1.0, 1.0])),
        copy_is_source=bool(rng.random() < 0.5),
    )


def _face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """(centre [2], angle_deg, half_width, half_height) of a forehead-to-chin face ellipse from 5 landmarks."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes, mouth = lm[:2].mean(0), lm[3:].mean(0)
    iod = float(np.linalg.norm(lm[1] - lm[0]))
    v = float(np.linalg.norm(mouth - eyes))
    scale = max(iod, v, 1.0)
    iod, v = max(iod, 0.3 * scale), max(v, 0.3 * scale)  # profiles squeeze one of them towards 0
    angle = float(np.degrees(np.arctan2(lm[1, 1] - lm[0, 1], lm[1, 0] - lm[0, 0])))
    # Eyes sit ~0.4 of the way from the forehead-to-chin centre line's top; the mouth ~0.6 eye-mouth below.
    centre = eyes + (mouth - eyes) * 0.4
    return centre, angle, max(1.15 * iod, 0.9 * v), 1.3 * v


def face_mask(
    shape: tuple[int, int],
    landmarks: np.ndarray,
    scale: tuple[float, float] = (1.0, 1.0),
    noise: float = 0.0,
    seed: int = 0,
    blur_frac: float = 0.1,
) -> np.ndarray:
    """A soft face mask float32 [H, W] in 0..1 from 5 landmarks (x, y) in that image's pixels.

    Args:
        shape: (H, W) of the mask.
        landmarks: float [5, 2].
        scale: (sx, sy) factors on the ellipse's half axes.
        noise: radial deformation amplitude (fraction of the radius), smooth along the contour.
        seed: seed of the deformation.
        blur_frac: Gaussian blur kernel size as a fraction of the face height (0: hard edge).
    """
    cv2 = require("cv2", purpose="building face masks")
    h, w = shape
    centre, angle, a, b = _face_frame(landmarks)
    n = 48
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radial = np.ones(n)
    if noise > 0:
        rng = np.random.default_rng(seed)
        # A few low-frequency harmonics keep the deformation smooth (no star-shaped spikes).
        for k in range(1, 5):
            radial += noise / k * rng.uniform(-1, 1) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    pts = np.stack([np.cos(t) * a * scale[0] * radial, np.sin(t) * b * scale[1] * radial], -1)
    rad = np.radians(angle)
    rot = np.array([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]])
    pts = pts @ rot.T + centre
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    out = mask.astype(np.float32) / 255.0
    k = int(round(blur_frac * 2 * b))
    if k >= 3:
        k += 1 - k % 2
        out = cv2.GaussianBlur(out, (k, k), 0)
    return out


def _transform_copy(image: np.ndarray, landmarks: np.ndarray, p: BlendParams) -> np.ndarray:
    cv2 = require("cv2", purpose="self-blended images")
    h, w = image.shape[:2]
    x = image.astype(np.float32)
    x = x * p.contrast + p.brightness + np.asarray(p.rgb_shift, np.float32)
    x = np.clip(x, 0, 255).astype(np.uint8)
    if p.hue_shift or p.sat_scale != 1 or p.val_scale != 1:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + p.hue_shift) % 180
        hsv[..., 1] *= p.sat_scale
        hsv[..., 2] *= p.val_scale
        x = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    if p.resample < 1:
        sw, sh = max(1, round(w * p.resample)), max(1, round(h * p.resample))
        x = cv2.resize(cv2.resize(x, (sw, sh), interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_LINEAR)
    if p.sharpen > 0:
        blur = cv2.GaussianBlur(x, (0, 0), 1.5)
        x = cv2.addWeighted(x, 1 + p.sharpen, blur, -p.sharpen, 0)
    centre, _, _, b = _face_frame(landmarks)
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, p.zoom)
    m[:, 2] += (p.shift[0] * 2 * b, p.shift[1] * 2 * b)
    return cv2.warpAffine(x, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def self_blend(
    image: np.ndarray, landmarks: np.ndarray, params: BlendParams | None = None, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Make a self-blended pseudo-fake of ``image``.

    Args:
        image: uint8 [H, W, 3] RGB.
        landmarks: float [5, 2] (x, y) in ``image`` pixels.
        params: the transform draw; None: drawn from ``rng`` (default: a fresh ``default_rng(0)``).
        rng: random generator used when ``params`` is None.

    Returns:
        (blended uint8 [H, W, 3] RGB, mask float32 [H, W] 0..1 actually used, ratio applied).
    """
    if params is None:
        params = sample_blend_params(rng if rng is not None else np.random.default_rng(0))
    image = np.ascontiguousarray(image, np.uint8)
    copy = _transform_copy(image, landmarks, params)
    mask = face_mask(
        image.shape[:2], landmarks, params.mask_scale, params.mask_noise, params.mask_seed, params.blur_frac
    )
    mask *= params.ratio
    src, dst = (copy, image) if params.copy_is_source else (image, copy)
    m = mask[..., None]
    out = src.astype(np.float32) * m + dst.astype(np.float32) * (1 - m)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), mask
