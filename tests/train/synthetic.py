"""A small face-crop dataset with a real forgery signal, in the official layout, generated in the test.

"Videos" are sequences of jittered crops of scikit-image's public-domain sample photos. A fake video is the same
kind of crop, self-blended: inside a soft elliptical mask the crop is replaced by a shifted, colour-shifted and
blurred copy of itself (the visual trace of blending-based forgeries: a blur/colour seam along an ellipse). The
label is therefore visible in the pixels, not in any metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "camera", "coins", "page", "moon")


def _base_images() -> list[np.ndarray]:
    from skimage import data

    images = []
    for name in _SOURCES:
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        images.append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
    return images


def _crop(img: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    side = min(side, h, w)
    x0 = int(np.clip(cx - side / 2, 0, w - side))
    y0 = int(np.clip(cy - side / 2, 0, h - side))
    patch = img[y0 : y0 + int(side), x0 : x0 + int(side)]
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)


def self_blend(face: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Blend a transformed copy of ``face`` (uint8 [S, S, 3] RGB) into itself inside a soft ellipse."""
    import cv2

    s = face.shape[0]
    src = face.astype(np.float32)
    shift = rng.uniform(-0.04, 0.04, size=2) * s
    m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    src = cv2.warpAffine(src, m, (s, s), borderMode=cv2.BORDER_REFLECT)
    sigma = rng.uniform(0.8, 1.6) * strength
    src = cv2.GaussianBlur(src, (0, 0), sigma)
    src = src + rng.uniform(-18, 18, size=3).astype(np.float32) * strength
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    cx, cy = s / 2 + rng.uniform(-0.06, 0.06) * s, s / 2 + rng.uniform(-0.06, 0.06) * s
    rx, ry = rng.uniform(0.22, 0.34) * s, rng.uniform(0.26, 0.4) * s
    mask = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1).astype(np.float32)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.6, s / 48))[..., None]
    out = mask * src + (1 - mask) * face.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def make_dataset(
    root: Path,
    name: str = "synth",
    *,
    videos: dict[str, int] | None = None,
    frames: int = 5,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write ``root/name/{split}_{real,fake}.txt`` and PNG folders; returns ``root``.

    Args:
        videos: videos per class per split, default ``{"train": 30, "val": 10, "test": 10}`` (500 crops with 5
            frames per video).
        frames: crops per video.
        size: crop side in pixels.
    """
    import cv2

    videos = videos or {"train": 30, "val": 10, "test": 10}
    rng = np.random.default_rng(seed)
    bases = _base_images()
    root = Path(root)
    for split, count in videos.items():
        for label, cls in ((0, "real"), (1, "fake")):
            lines = []
            for v in range(count):
                img = bases[int(rng.integers(len(bases)))]
                h, w = img.shape[:2]
                side = rng.uniform(0.3, 0.6) * min(h, w)
                cx, cy = rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)
                blend_seed = int(rng.integers(2**31))
                rel = Path(name) / "frames" / split / cls / f"{v:03d}.mp4"
                folder = root / rel
                folder.mkdir(parents=True, exist_ok=True)
                for f in range(frames):
                    jx, jy = rng.normal(0, 0.02 * side, size=2)
                    face = _crop(img, cx + jx, cy + jy, side * rng.uniform(0.97, 1.03), size)
                    if label == 1:
                        # One blend per video (fixed parameters), like a face swap that is consistent over time.
                        face = self_blend(face, np.random.default_rng(blend_seed))
                    cv2.imwrite(str(folder / f"{f:04d}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
                lines.append(f"{label},{rel.as_posix()},{frames}")
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / f"{split}_{cls}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
