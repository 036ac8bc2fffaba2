"""``lib-bench decode``: what sparse decoding saves against decoding and converting every frame.

For each clip and sampling plan it reports frames decoded, frames converted to RGB and wall time, against the
baseline the field's preprocessing uses: decode every frame and convert every frame to RGB, then pick. The plan
times include opening the file (probe + packet index), so the comparison is end to end per video.

Clips are generated (:func:`make_bench_clips`): 720p H.264 (x264 veryfast, CRF 23, B-frames), 10 s with GOP 250 and
60 s with GOP 60, synthetic moving content with noise blocks so that the bitrate is realistic (several Mbit/s).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib_deepfake.bench.machine import describe_machine, machine_info
from lib_deepfake.bench.protocol import (
    BenchProtocol,
    current_protocol,
    format_ratio,
    interleaved,
    mark,
    markdown_line,
    noisy_tag,
    ratio_stats,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchClip:
    """A generated benchmark clip."""

    name: str
    seconds: int
    gop: int
    fps: int = 30
    size: tuple[int, int] = (1280, 720)

    @property
    def frames(self) -> int:
        return self.seconds * self.fps

    @property
    def filename(self) -> str:
        return f"{self.name}.mp4"


BENCH_CLIPS = (
    BenchClip("h264-720p-10s-gop250", seconds=10, gop=250),
    BenchClip("h264-720p-60s-gop60", seconds=60, gop=60),
)

#: Plans benchmarked by default and the speed-up each must reach on each clip (None: reported, no target).
DEFAULT_PLANS = ("uniform:32", "gop:32", "keyframes", "fps:1", "every:30")
TARGETS: dict[tuple[str, str], float] = {
    ("uniform:32", "h264-720p-60s-gop60"): 2.0,
    ("gop:32", "h264-720p-60s-gop60"): 5.0,
    ("keyframes", "h264-720p-60s-gop60"): 10.0,
    ("keyframes", "h264-720p-10s-gop250"): 10.0,
}


def make_bench_clips(out_dir: str | Path, clips: Sequence[BenchClip] = BENCH_CLIPS, force: bool = False) -> list[Path]:
    """Write the benchmark clips into ``out_dir`` (reused when present with the right frame count)."""
    from lib_deepfake.video.index import build_index
    from lib_deepfake.video.synth import write_clip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for clip in clips:
        path = out / clip.filename
        if path.exists() and not force:
            try:
                if build_index(path).frame_count == clip.frames:
                    paths.append(path)
                    continue
            except Exception:  # noqa: BLE001 - a broken cached clip is simply rewritten
                pass
        t0 = time.perf_counter()
        write_clip(path, frames=clip.frames, size=clip.size, fps=clip.fps, codec="libx264", gop=clip.gop, noise=True)
        logger.info("wrote %s (%d frames) in %.1f s", path, clip.frames, time.perf_counter() - t0)
        paths.append(path)
    return paths


def full_decode(path: str | Path, *, threads: int = 0) -> dict[str, Any]:
    """The PyAV baseline: decode every frame and convert every frame to RGB (as a cv2/PyAV read loop does)."""
    import av

    t0, c0 = time.perf_counter(), time.process_time()
    decoded = converted = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        for frame in container.decode(stream):
            decoded += 1
            frame.to_ndarray(format="rgb24")
            converted += 1
    return {"frames_decoded": decoded, "frames_converted": converted, "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0}  # fmt: skip


def plan_decode(path: str | Path, plan: str, *, decoder: str = "pyav", threads: int = 0) -> dict[str, Any]:
    """Open (probe + index) and read one plan; wall time covers both."""
    from lib_deepfake.video import open_video

    t0, c0 = time.perf_counter(), time.process_time()
    with open_video(path, decoder=decoder, threads=threads) as src:
        t_open = time.perf_counter() - t0
        batch = src.read(plan)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    st = batch.stats
    return {
        "frames_returned": len(batch),
        "frames_decoded": st.frames_decoded,
        "frames_converted": st.frames_converted,
        "seeks": st.seeks,
        "open_s": t_open,
        "wall_s": wall,
        "cpu_s": cpu,
        "max_pick_shift": int(batch.plan.max_shift),
        "mean_pick_shift": float(abs(batch.shifts).mean()) if len(batch) else 0.0,
    }


def run_decode_bench(
    clip_dir: str | Path = "bench/clips",
    *,
    plans: Sequence[str] = DEFAULT_PLANS,
    repeats: int = 2,
    decoder: str = "pyav",
    threads: int = 0,
    clips: Sequence[BenchClip] = BENCH_CLIPS,
    protocol: BenchProtocol | None = None,
) -> dict[str, Any]:
    """Run the decode benchmark and return a JSON-serialisable dict.

    Args:
        clip_dir: where the generated clips live (created when missing).
        plans: sampling plan strings.
        repeats: interleaved rounds: per clip, the full decode and every plan take turns (the order reversed every
            other round); each row keeps its fastest wall and CPU time, and its speed-up is the median (with the
            min-max) of the per-round ratios.
        decoder: "pyav" (DALI only where it can decode H.264, i.e. on a GPU).
        threads: decoder threads (0 = automatic).
        clips: which clips.
        protocol: the benchmark protocol (default: the current one), started after the clips are written.

    Returns:
        ``{"machine": {...}, "decoder": ..., "repeats": ..., "clips": [...], "rows": [...], "protocol": {...},
        "noisy": ...}``; one row per (clip, plan) with frames_decoded, frames_converted, wall_s, speedup_vs_full
        (median), speedup_stats and cpu_speedup_stats (median, min-max), max_pick_shift, target and meets_target;
        the "full" row per clip is the baseline.
    """
    paths = make_bench_clips(clip_dir, clips)
    started = (protocol or current_protocol()).start(logger.info)
    # Import torch (frames are torch tensors) and open one clip before timing: one-off costs are not per video.
    import torch  # noqa: F401

    plan_decode(paths[0], "keyframes:1", decoder=decoder, threads=threads)
    rows: list[dict[str, Any]] = []
    clip_meta = []
    for clip, path in zip(clips, paths, strict=True):
        clip_meta.append(
            {"name": clip.name, "frames": clip.frames, "gop": clip.gop, "fps": clip.fps, "size": list(clip.size),
             "bytes": path.stat().st_size, "mbit_s": round(path.stat().st_size * 8 / clip.seconds / 1e6, 2)}
        )  # fmt: skip
        # The full decode and the plans take turns, the order reversed every other round, so that load changes on
        # a shared machine hit every row alike.
        runs: dict[str, list[dict[str, Any]]] = {"full": [], **{p: [] for p in plans}}
        for r in range(max(repeats, 1)):
            for plan in interleaved(["full", *plans], r):
                if plan != "full":
                    runs[plan].append(plan_decode(path, plan, decoder=decoder, threads=threads))
                elif decoder == "pyav":
                    runs["full"].append(full_decode(path, threads=threads))
                else:  # the same decoder's every-frame read is its baseline (NVDEC decodes and converts every frame)
                    runs["full"].append(plan_decode(path, "all", decoder=decoder, threads=threads))
        full = _best(runs["full"])
        rows.append({"clip": clip.name, "plan": "full", **full, "frames_returned": full["frames_converted"],
                     "speedup_vs_full": 1.0, "cpu_speedup_vs_full": 1.0, "max_pick_shift": 0, "target": None,
                     "meets_target": None})  # fmt: skip
        for plan in plans:
            best = _best(runs[plan])
            wall = _speedups(runs["full"], runs[plan], "wall_s")
            cpu = _speedups(runs["full"], runs[plan], "cpu_s")
            target = TARGETS.get((plan, clip.name))
            rows.append({"clip": clip.name, "plan": plan, **best, "speedup_vs_full": wall["median"],
                         "speedup_stats": wall, "cpu_speedup_vs_full": cpu["median"], "cpu_speedup_stats": cpu,
                         "target": target,
                         "meets_target": None if target is None else wall["median"] >= target})  # fmt: skip
            logger.info("%s %s: %.3f s, %s", clip.name, plan, best["wall_s"], format_ratio(wall))
    return mark(
        {
            "benchmark": "decode",
            "machine": machine_info("cpu"),
            "decoder": decoder,
            "threads": threads,
            "repeats": repeats,
            "clips": clip_meta,
            "rows": rows,
        },
        started.finish(),
    )


def _speedups(full: list[dict[str, Any]], plan: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Per-round ``full / plan`` time ratios (a speed-up) as :func:`~lib_deepfake.bench.protocol.ratio_stats`."""

    def rates(runs: list[dict[str, Any]]) -> list[float | None]:
        return [1 / r[key] if r[key] > 0 else None for r in runs]

    return ratio_stats(rates(plan), rates(full), digits=2)


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = dict(min(runs, key=lambda r: r["wall_s"]))
    best["cpu_s"] = min(r["cpu_s"] for r in runs)
    best["wall_s_runs"] = [round(r["wall_s"], 4) for r in runs]
    return best


def format_markdown(result: dict[str, Any]) -> str:
    """A Markdown table of :func:`run_decode_bench`'s result."""
    m = result["machine"]
    lines = [
        f"# Decode benchmark ({result['decoder']}, {result['repeats']} interleaved rounds)"
        + (" - NOISY" if noisy_tag(result.get("protocol")) else ""),
        "",
        f"Machine: {describe_machine(m, ('av', 'torch'))}.",
        "",
        markdown_line(result.get("protocol")),
        "",
        "Baseline `full` = decode every frame and convert every frame to RGB. Plan rows include opening the file "
        "(probe + packet index). Wall and CPU time (all threads of the process) are each the best of the rounds; "
        "the speed-ups are the median (min-max) of the per-round ratios. On a shared machine the CPU-time ratio is "
        "the steadier measure of work saved.",
        "",
        "| clip | plan | frames returned | frames decoded | frames converted | wall s | speed-up vs full (wall) | "
        "CPU s | speed-up (CPU) | max pick shift | target (wall) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tag = noisy_tag(result.get("protocol"))
    for r in result["rows"]:
        tgt = "" if r["target"] is None else f">= {r['target']:g}x: {'met' if r['meets_target'] else 'MISSED'}"
        wall, cpu = (_ratio_cell(r, key) + tag for key in ("speedup", "cpu_speedup"))
        lines.append(
            f"| {r['clip']} | {r['plan']} | {r['frames_returned']} | {r['frames_decoded']} | {r['frames_converted']} "
            f"| {r['wall_s']:.3f} | {wall} | {r['cpu_s']:.3f} | {cpu} | {r['max_pick_shift']} | {tgt} |"
        )
    lines.append("")
    for c in result["clips"]:
        lines.append(f"- {c['name']}: {c['frames']} frames, {c['size'][0]}x{c['size'][1]} @ {c['fps']} fps, GOP "
                     f"{c['gop']}, {c['mbit_s']} Mbit/s")  # fmt: skip
    return "\n".join(lines) + "\n"


def _ratio_cell(row: dict[str, Any], key: str) -> str:
    # Results from before the protocol carry one ratio; the baseline row has no statistics either.
    stats = row.get(f"{key}_stats")
    return format_ratio(stats) if stats else f"{row[f'{key}_vs_full']:.1f}x"


def write_results(result: dict[str, Any], out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.json`` and ``.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jp, mp = out / f"{name}.json", out / f"{name}.md"
    jp.write_text(json.dumps(result, indent=2) + "\n")
    mp.write_text(format_markdown(result))
    return jp, mp


__all__ = [
    "BENCH_CLIPS",
    "DEFAULT_PLANS",
    "TARGETS",
    "BenchClip",
    "format_markdown",
    "full_decode",
    "make_bench_clips",
    "plan_decode",
    "run_decode_bench",
    "write_results",
]
