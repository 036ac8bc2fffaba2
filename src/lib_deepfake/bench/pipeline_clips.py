"""The clips ``lib-bench pipeline`` scans, generated on the machine: synthetic face clips (half real, half
self-blended fake, from ``lib-prep synth``'s renderer) encoded with libx264, with a ``labels.csv`` beside them.

Named sets (``--clip-set``) fix size, length, frame rate and GOP structure, so that runs on different machines
scan the same kind of file:

- ``720p``: 1280x720, 10 s at 30 fps, x264's default GOP (keyint 250 with scene-cut) and B-frames - the CPU set;
- ``1080p-gop250`` / ``1080p-gop30``: 1920x1080, 10 s at 30 fps, 3 B-frames, a fixed GOP of 250 (one keyframe per
  clip: a sparse decoder must decode from the start) or 30 (a keyframe every second) - the GPU-scan sets, where
  the decoder's work per video depends on the GOP;
- ``4k``: 3840x2160, 3 s at 30 fps - the memory run.

``--size``/``--seconds`` make a custom set (x264 defaults) under the name ``WxH-Ss``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib_deepfake.errors import ContractError


@dataclass(frozen=True)
class ClipSet:
    """A kind of benchmark clip.

    Attributes:
        name: folder name under the clip directory (and ``--clip-set`` value).
        width, height: frame size.
        seconds, fps: length and frame rate.
        gop: fixed keyframe interval (scene-cut off); None: x264's default (keyint 250, scene-cut on).
        bframes: maximum consecutive B-frames (None: the x264 preset's default, 3 for veryfast).
    """

    name: str
    width: int
    height: int
    seconds: float = 10.0
    fps: int = 30
    gop: int | None = None
    bframes: int | None = None

    @property
    def frames(self) -> int:
        return max(2, round(self.seconds * self.fps))

    def describe(self) -> str:
        gop = f"GOP {self.gop}" if self.gop else "x264 default GOP (keyint 250, scene-cut)"
        bf = f"{self.bframes} B-frames" if self.bframes is not None else "preset B-frames"
        return f"{self.width}x{self.height}, {self.seconds:g} s at {self.fps} fps, H.264 {gop}, {bf}"


#: Not 0, the seed of ``lib-prep synth`` and ``make demo``: with seed 0 the first real clips would be the demo
#: corpus's own (same motion, tint and noise draws); with this one a model trained on the demo corpus is scored on
#: clips it never saw (the portraits are the same few bundled ones either way).
BENCH_CLIP_SEED = 20261

CLIP_SETS: dict[str, ClipSet] = {
    "720p": ClipSet("720p", 1280, 720),
    "1080p-gop250": ClipSet("1080p-gop250", 1920, 1080, gop=250, bframes=3),
    "1080p-gop30": ClipSet("1080p-gop30", 1920, 1080, gop=30, bframes=3),
    "4k": ClipSet("4k", 3840, 2160, seconds=3.0),
}


def clip_set(name: str) -> ClipSet:
    """The named set, or a custom ``WxH-Ss`` one (``1280x720-10s``).

    Raises:
        ContractError: an unknown name.
    """
    if name in CLIP_SETS:
        return CLIP_SETS[name]
    try:
        size, seconds = name.lower().split("-")
        w, h = (int(v) for v in size.split("x"))
        if not seconds.endswith("s"):
            raise ValueError(seconds)
        return ClipSet(name.lower(), w, h, seconds=float(seconds[:-1]))
    except ValueError:
        raise ContractError(
            f"unknown clip set {name!r}; use one of {', '.join(CLIP_SETS)} or WxH-Ss (e.g. 1280x720-10s)"
        ) from None


def _content_of(spec: object, clip: ClipSet) -> Callable[[int, int, int], np.ndarray]:
    """``write_clip``'s frame function over the renderer, which draws frames in order only."""
    from lib_deepfake.prep.synth import render_clip

    frames = render_clip(spec, clip.width, clip.height, clip.frames)  # type: ignore[arg-type]

    def content(index: int, width: int, height: int) -> np.ndarray:
        return next(frames)[0]

    return content


def make_bench_clips(out_dir: Path | str, count: int, clips: ClipSet, seed: int = BENCH_CLIP_SEED) -> list[Path]:
    """``count`` clips of the set (half real, half fake) in ``out_dir/<set name>/``, reused when present; writes
    ``out_dir/labels.csv`` (``path,label``, paths relative to ``out_dir``) covering every set generated there.

    Returns:
        The clip paths, reals first.
    """
    from lib_deepfake.prep.synth import SynthConfig, plan_clips
    from lib_deepfake.video.synth import write_clip

    if count < 1:
        raise ContractError(f"need at least one clip, got {count}")
    out = Path(out_dir)
    folder = out / clips.name
    folder.mkdir(parents=True, exist_ok=True)
    cfg = SynthConfig(videos=max(count, 2), seconds=clips.seconds, fps=clips.fps, width=clips.width,
                      height=clips.height, seed=seed)  # fmt: skip
    paths, labels = [], {}
    for spec in plan_clips(cfg)[:count]:
        path = folder / f"{spec.name}.mp4"
        if not path.is_file():
            partial = path.with_name(f".{path.stem}.partial.mp4")
            options = {"crf": "23"}
            if clips.gop is not None:
                options["x264-params"] = f"keyint={clips.gop}:min-keyint={clips.gop}:scenecut=0"
            write_clip(partial, frames=clips.frames, size=(clips.width, clips.height), fps=clips.fps,
                       codec="libx264", gop=clips.gop, bframes=clips.bframes,
                       content=_content_of(spec, clips), options=options)  # fmt: skip
            os.replace(partial, path)
        paths.append(path)
        labels[f"{clips.name}/{path.name}"] = spec.label
    _merge_labels(out / "labels.csv", labels)
    return paths


def _merge_labels(path: Path, labels: dict[str, int]) -> None:
    from lib_deepfake.atomic import atomic_open

    known: dict[str, int] = {}
    if path.is_file():
        with open(path, encoding="utf-8", newline="") as fh:
            known = {rec["path"]: int(rec["label"]) for rec in csv.DictReader(fh)}
    known.update(labels)
    with atomic_open(path) as fh:
        fh.write("path,label\n" + "".join(f"{p},{y}\n" for p, y in sorted(known.items())))


__all__ = ["CLIP_SETS", "ClipSet", "clip_set", "make_bench_clips"]
