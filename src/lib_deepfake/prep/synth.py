"""A small synthetic real/fake video corpus built offline from public-domain portraits (``lib-prep synth``).

Real clips: a bundled portrait (astronaut, grace_hopper, camera; optionally mirrored and colour-tinted) moves
over a face-free background (the photo squashed to 4x4 and blown up, never a reflected border, which would
create extra faces) with a slow zoom, pan and roll plus sensor noise. Fake clips: the same kind of clip whose
face region is self-blended on every frame (:mod:`lib_deepfake.prep.blend`): one transform draw per clip with a
small per-frame jitter, so the artifact is consistent like a face-swap's, but flickers a little. Clips are
encoded H.264 (libx264, yuv420p, CRF 23) with PyAV. ``labels.csv`` (path,label,split) and ``ground_truth.json``
(per-frame face box of every clip, from the known warp) are written beside them. Deterministic for a seed.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from lib_deepfake._optional import require
from lib_deepfake.atomic import atomic_open, write_bytes_atomic, write_json_atomic
from lib_deepfake.errors import ContractError
from lib_deepfake.prep.blend import BlendParams, sample_blend_params, self_blend
from lib_deepfake.prep.portraits import PORTRAIT_NAMES, Portrait, flip_landmarks, load_portrait

logger = logging.getLogger(__name__)

__all__ = ["ClipSpec", "SynthConfig", "build_synth_corpus", "encode_h264", "plan_clips", "render_clip"]


@dataclass(frozen=True)
class SynthConfig:
    """Corpus options.

    Attributes:
        videos: number of clips, half real and half fake (an odd count gets one more real clip).
        seconds: clip length.
        fps: frame rate.
        width, height: frame size (even numbers, H.264 4:2:0).
        face_fraction: face box height relative to the frame height (varied by +-25 % per clip).
        seed: everything random derives from it.
        crf, preset: libx264 quality and speed.
        test_fraction, val_fraction: share of each class held out (at least one clip each once a class has 3).
    """

    videos: int = 24
    seconds: float = 2.0
    fps: int = 15
    width: int = 320
    height: int = 240
    face_fraction: float = 0.4
    seed: int = 0
    crf: int = 23
    preset: str = "veryfast"
    test_fraction: float = 0.25
    val_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.videos < 2:
            raise ContractError(f"need at least 2 videos (one real, one fake), got {self.videos}")
        if self.width % 2 or self.height % 2 or self.width < 64 or self.height < 64:
            raise ContractError(f"frame size must be even and >= 64x64, got {self.width}x{self.height}")
        if self.seconds <= 0 or self.fps < 1:
            raise ContractError("seconds and fps must be positive")
        if not 0.1 <= self.face_fraction <= 0.9:
            raise ContractError(f"face_fraction must be in [0.1, 0.9], got {self.face_fraction}")

    @property
    def frames(self) -> int:
        return max(2, round(self.seconds * self.fps))


@dataclass(frozen=True)
class ClipSpec:
    """Everything that defines one clip (JSON-serialisable).

    Attributes:
        name: file stem.
        label: 0 real, 1 fake.
        split: train | val | test.
        portraits: portrait names placed left to right (usually one).
        flip: mirror the portraits.
        tint: float [3] per-channel gain on the portrait.
        face_fraction: face height / frame height.
        zoom, pan, roll_deg, drift: motion amplitudes (zoom over the clip, pan fraction, roll degrees, vertical drift).
        phase: motion phase.
        noise_sigma: sensor noise standard deviation in grey levels.
        seed: per-clip seed (noise, blend jitter).
        blend: SBI transform draw for fake clips, None for real ones.
    """

    name: str
    label: int
    split: str
    portraits: tuple[str, ...]
    flip: bool
    tint: tuple[float, float, float]
    face_fraction: float
    zoom: float
    pan: float
    roll_deg: float
    drift: float
    phase: float
    noise_sigma: float
    seed: int
    blend: BlendParams | None = None


def _splits(n: int, test_fraction: float, val_fraction: float) -> list[str]:
    if n < 3:
        return ["train"] * n
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * val_fraction)) if n - n_test >= 2 else 0
    return ["train"] * (n - n_test - n_val) + ["val"] * n_val + ["test"] * n_test


def plan_clips(config: SynthConfig) -> list[ClipSpec]:
    """The deterministic list of clips for ``config`` (reals first, then fakes)."""
    rng = np.random.default_rng(config.seed)
    n_real = (config.videos + 1) // 2
    n_fake = config.videos - n_real
    specs = []
    for label, count in ((0, n_real), (1, n_fake)):
        splits = _splits(count, config.test_fraction, config.val_fraction)
        for i in range(count):
            kind = "real" if label == 0 else "fake"
            specs.append(
                ClipSpec(
                    name=f"{kind}_{i:03d}",
                    label=label,
                    split=splits[i],
                    # Offsetting fakes by one portrait keeps every identity in both classes of each split.
                    portraits=(PORTRAIT_NAMES[(i + label) % len(PORTRAIT_NAMES)],),
                    flip=bool(rng.random() < 0.5),
                    tint=tuple(float(v) for v in rng.uniform(0.85, 1.15, 3)),  # type: ignore[arg-type]
                    face_fraction=float(config.face_fraction * rng.uniform(0.75, 1.25)),
                    zoom=float(rng.uniform(0.05, 0.2)),
                    pan=float(rng.uniform(0.02, 0.08)),
                    roll_deg=float(rng.uniform(0.5, 4.0)),
                    drift=float(rng.uniform(-0.05, 0.05)),
                    phase=float(rng.uniform(0, 2 * np.pi)),
                    noise_sigma=float(rng.uniform(1.0, 3.0)),
                    seed=int(rng.integers(0, 2**31 - 1)),
                    blend=sample_blend_params(rng) if label == 1 else None,
                )
            )
    return specs


def _jitter(p: BlendParams, rng: np.random.Generator) -> BlendParams:
    """Small per-frame changes of a clip's blend draw (real face swaps flicker slightly from frame to frame)."""
    return replace(
        p,
        rgb_shift=tuple(float(v) for v in np.asarray(p.rgb_shift) + rng.normal(0, 1.5, 3)),  # type: ignore[arg-type]
        shift=(p.shift[0] + float(rng.normal(0, 0.004)), p.shift[1] + float(rng.normal(0, 0.004))),
        mask_scale=(p.mask_scale[0] * float(rng.normal(1, 0.01)), p.mask_scale[1] * float(rng.normal(1, 0.01))),
    )


def render_clip(
    spec: ClipSpec, width: int, height: int, frames: int, portraits: dict[str, Portrait] | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Render a clip frame by frame.

    Yields:
        (frame uint8 [H, W, 3] RGB, boxes float32 [P, 4] xyxy of every face, landmarks float32 [P, 5, 2]).
    """
    cv2 = require("cv2", purpose="rendering synthetic clips")
    portraits = portraits if portraits is not None else {}
    people = []
    for name in spec.portraits:
        p = portraits.get(name) or load_portrait(name)
        img = (p.image.astype(np.float32) * np.asarray(spec.tint, np.float32)).clip(0, 255).astype(np.uint8)
        box, lms = p.box.copy(), p.landmarks.copy()
        if spec.flip:
            w = img.shape[1]
            img = np.ascontiguousarray(img[:, ::-1])
            box = np.array([w - box[2], box[1], w - box[0], box[3]], np.float32)
            lms = flip_landmarks(lms, w)
        people.append((img, box, lms))
    rng = np.random.default_rng(spec.seed)
    # Face-free background: the first portrait squashed to 4x4 and blown up (a smooth colour field).
    small = cv2.resize(people[0][0], (4, 4), interpolation=cv2.INTER_AREA)
    background = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    # A pool of noise frames reused cyclically: generating fresh Gaussian noise per frame costs more than the warp.
    noise_pool = rng.normal(0, spec.noise_sigma, (4, height, width, 3)).astype(np.float32)
    n = len(people)
    for f in range(frames):
        t = f / max(frames - 1, 1)
        wave = np.sin(2 * np.pi * t + spec.phase)
        canvas = background.copy()
        all_boxes, all_lms = [], []
        for k, (img, box, lms) in enumerate(people):
            ph, pw = img.shape[:2]
            s = spec.face_fraction * height / float(box[3] - box[1]) * (1 + spec.zoom * t)
            fc = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            target = np.array(
                [width * (k + 0.5) / n + spec.pan * width * wave, height * (0.5 + spec.drift * np.cos(np.pi * t))]
            )
            m = cv2.getRotationMatrix2D((float(fc[0]), float(fc[1])), spec.roll_deg * wave, s)
            m[:, 2] += target - fc
            warped = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR)
            alpha = cv2.warpAffine(np.ones((ph, pw), np.float32), m, (width, height), flags=cv2.INTER_LINEAR)
            canvas = warped.astype(np.float32) * alpha[..., None] + canvas * (1 - alpha[..., None])
            lm_t = lms @ m[:, :2].T + m[:, 2]
            side = np.array([box[2] - box[0], box[3] - box[1]]) * s
            c = fc @ m[:, :2].T + m[:, 2]
            all_boxes.append([c[0] - side[0] / 2, c[1] - side[1] / 2, c[0] + side[0] / 2, c[1] + side[1] / 2])
            all_lms.append(lm_t)
        frame = canvas.clip(0, 255).astype(np.uint8)
        lms_arr = np.asarray(all_lms, np.float32)
        if spec.blend is not None:
            for lm_t in lms_arr:
                frame, _ = self_blend(frame, lm_t, _jitter(spec.blend, rng))
        frame = (frame.astype(np.float32) + noise_pool[f % len(noise_pool)]).clip(0, 255).astype(np.uint8)
        yield frame, np.asarray(all_boxes, np.float32), lms_arr


def encode_h264(
    frames: Iterator[np.ndarray] | list[np.ndarray], fps: int, crf: int = 23, preset: str = "veryfast"
) -> bytes:
    """Encode uint8 [H, W, 3] RGB frames to an in-memory H.264 MP4 (libx264, yuv420p)."""
    av = require("av", purpose="encoding synthetic clips")
    import io

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = None
        for i, frame in enumerate(frames):
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                # Byte-identical output for a seed needs one encoder thread (set on the codec context; an x264
                # "threads" option did not do it) and no macroblock-tree rate control (measured: with mbtree on,
                # repeated encodes of the same frames differed).
                stream.options = {"crf": str(crf), "preset": preset, "x264-params": "mbtree=0"}
                stream.codec_context.thread_count = 1
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            # Explicit timestamps: left unset, the muxer guesses them and the output bytes vary from run to run.
            vf.pts, vf.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(vf))
        if stream is None:
            raise ContractError("no frames to encode")
        container.mux(stream.encode())
    return buf.getvalue()


def build_synth_corpus(
    outdir: Path | str, config: SynthConfig | None = None, on_clip: Callable[[ClipSpec], None] | None = None
) -> Path:
    """Write the corpus: ``videos/*.mp4``, ``labels.csv``, ``ground_truth.json``, ``synth_config.json``.

    Args:
        outdir: output folder (created).
        config: corpus options.
        on_clip: called after each clip is written (progress bars in the CLI).

    Returns:
        Path of ``labels.csv``.
    """
    cfg = config or SynthConfig()
    out = Path(outdir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    portraits = {name: load_portrait(name) for name in PORTRAIT_NAMES}
    truth: dict[str, dict] = {}
    rows = []
    for spec in plan_clips(cfg):
        frames, boxes = [], []
        for frame, b, _ in render_clip(spec, cfg.width, cfg.height, cfg.frames, portraits):
            frames.append(frame)
            boxes.append(np.round(b, 1).tolist())
        rel = f"videos/{spec.name}.mp4"
        write_bytes_atomic(out / rel, encode_h264(frames, cfg.fps, cfg.crf, cfg.preset))
        truth[rel] = {"label": spec.label, "split": spec.split, "portraits": list(spec.portraits), "boxes": boxes}
        rows.append((rel, spec.label, spec.split))
        logger.debug("wrote %s (%d frames)", rel, len(frames))
        if on_clip is not None:
            on_clip(spec)
    write_json_atomic(out / "ground_truth.json", truth)
    write_json_atomic(out / "synth_config.json", {"config": asdict(cfg), "clips": [asdict(s) for s in plan_clips(cfg)]})
    labels = out / "labels.csv"
    with atomic_open(labels) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return labels
