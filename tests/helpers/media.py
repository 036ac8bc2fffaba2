"""Shared test-clip generator for all tests (video, faces, prep, infer).

``make_clip`` writes a small clip with PyAV (64x48, 30 frames by default; a few ms). Every frame of the default
content carries its index as an 8-cell black/white code in a top band (``read_index_code``), so a test can check
that a decoder returned exactly the frame it claims. Pass ``content=fn(index, width, height) -> uint8 [H, W, 3]``
for your own frames (e.g. a face photo pasted on a background); call ``draw_index_code(img, index)`` inside it to
keep the code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lib_deepfake.video.synth import (
    VFR_PATTERN_MS,
    SyntheticFrames,
    draw_index_code,
    read_index_code,
    write_audio_only,
    write_clip,
)

# The shared test-clip writer is the library's own (lib-bench and the GPU kit generate clips with it too); see
# lib_deepfake.video.synth.write_clip for codecs, pixel formats, rotation, VFR and the frame-index code.
make_clip = write_clip


def paste_content(image: np.ndarray, *, background: int = 40, move: int = 2) -> Callable[[int, int, int], np.ndarray]:
    """A content function that pastes ``image`` (uint8 [h, w, 3] RGB, e.g. a face photo) on a flat background,
    drifting ``move`` pixels right per frame, with the index code on top."""
    img = np.asarray(image, np.uint8)

    def fn(index: int, width: int, height: int) -> np.ndarray:
        out = np.full((height, width, 3), background, np.uint8)
        ih, iw = min(img.shape[0], height), min(img.shape[1], width)
        x0 = min((index * move) % max(width - iw + 1, 1), width - iw)
        y0 = max((height - ih) // 2, 0)
        out[y0 : y0 + ih, x0 : x0 + iw] = img[:ih, :iw]
        draw_index_code(out, index)
        return out

    return fn


__all__ = [
    "VFR_PATTERN_MS",
    "SyntheticFrames",
    "draw_index_code",
    "make_clip",
    "paste_content",
    "read_index_code",
    "write_audio_only",
]
