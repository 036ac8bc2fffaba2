"""Public-domain portraits that ship inside installed wheels (no downloads), with their face geometry.

- ``astronaut``: Eileen Collins, NASA (public domain), ``skimage.data.astronaut()``.
- ``grace_hopper``: Grace Hopper, US Navy photo (public domain), matplotlib's ``sample_data/grace_hopper.jpg``.
- ``camera``: a man with a camera, 3/4 profile, greyscale (CC0), ``skimage.data.camera()``.

The boxes and landmarks below were measured once with CenterFace at native resolution (faces.md §4 lists the
hand-checked boxes they agree with) and are fixed here so that synthesising a corpus never needs a detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib_deepfake._optional import require

__all__ = ["PORTRAIT_NAMES", "Portrait", "flip_landmarks", "load_portrait"]

PORTRAIT_NAMES = ("astronaut", "grace_hopper", "camera")

# name -> (box xyxy, landmarks [5, 2] left eye, right eye, nose, left mouth, right mouth), image pixels
_GEOMETRY: dict[str, tuple[tuple[float, ...], tuple[tuple[float, float], ...]]] = {
    "astronaut": (
        (181.5, 58.2, 269.9, 177.8),
        ((203.2, 101.7), (247.0, 104.5), (223.3, 125.1), (203.4, 142.3), (241.3, 144.4)),
    ),
    "grace_hopper": (
        (174.8, 131.5, 357.0, 336.3),
        ((221.4, 200.0), (304.3, 192.2), (265.9, 237.4), (235.9, 279.7), (304.0, 273.1)),
    ),
    "camera": (
        (202.3, 118.9, 257.6, 196.9),
        ((236.8, 149.0), (250.8, 151.7), (248.9, 166.4), (230.1, 178.0), (240.6, 180.5)),
    ),
}


@dataclass(frozen=True)
class Portrait:
    """A bundled photo and its face.

    Attributes:
        name: one of :data:`PORTRAIT_NAMES`.
        image: uint8 [H, W, 3] RGB.
        box: float32 [4] face box xyxy.
        landmarks: float32 [5, 2] (x, y).
    """

    name: str
    image: np.ndarray
    box: np.ndarray
    landmarks: np.ndarray


def load_portrait(name: str) -> Portrait:
    """Load a bundled portrait (scikit-image and matplotlib must be installed: the ``faces`` extra)."""
    if name not in _GEOMETRY:
        raise ValueError(f"unknown portrait {name!r}; choose from {', '.join(PORTRAIT_NAMES)}")
    if name == "grace_hopper":
        cv2 = require("cv2", purpose="decoding the bundled portrait")
        cbook = require("matplotlib.cbook", purpose="the bundled grace_hopper.jpg portrait", extra="faces")
        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            data = np.frombuffer(fh.read(), np.uint8)
        image = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    else:
        skdata = require("skimage.data", purpose="the bundled astronaut/camera portraits", extra="faces")
        image = getattr(skdata, name)()
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
    box, lms = _GEOMETRY[name]
    return Portrait(name, np.ascontiguousarray(image, np.uint8), np.array(box, np.float32), np.array(lms, np.float32))


def flip_landmarks(landmarks: np.ndarray, width: float) -> np.ndarray:
    """Landmarks [..., 5, 2] of the horizontally mirrored image of ``width`` pixels (left/right swapped)."""
    out = np.array(landmarks, np.float32, copy=True)
    out[..., 0] = width - out[..., 0]
    return out[..., [1, 0, 2, 4, 3], :]
