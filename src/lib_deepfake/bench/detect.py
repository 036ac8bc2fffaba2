"""Face-detector throughput: frames/s at 640x360 on CPU (or CUDA via ONNX Runtime), with the machine described.

Frames are a synthetic 640x360 clip of a bundled portrait (one face, moving), made in memory - no video decoding,
so the number is the detector alone: pre-processing (resize/pad), the network, decode and NMS. Warm-up calls
(session creation included) are excluded from the timed steady state. The configurations (max side x batch size)
take turns over the ``repeats`` rounds, the order reversed every other round, and each is compared with the first
one round by round (median and min-max of the ratio), under the benchmark protocol.

Run: ``lib-bench detect --max-sides 640,320 --json bench/results/detector-cpu-<machine>.json`` (which waits for a
quiet machine or refuses, see :mod:`lib_deepfake.bench.protocol`); ``python -m lib_deepfake.bench.detect --out ...``
measures at once and marks a busy machine's result noisy.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

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
from lib_deepfake.faces.base import DetectorConfig

__all__ = ["run_detector_bench"]


def _frames(n: int, width: int, height: int) -> np.ndarray:
    from lib_deepfake.prep.synth import ClipSpec, render_clip

    spec = ClipSpec(name="bench", label=0, split="test", portraits=("astronaut",), flip=False, tint=(1.0, 1.0, 1.0),
                    face_fraction=0.35, zoom=0.1, pan=0.05, roll_deg=2.0, drift=0.0, phase=0.0, noise_sigma=2.0,
                    seed=0)  # fmt: skip
    return np.stack([f for f, _, _ in render_clip(spec, width, height, n)])


def run_detector_bench(
    detector: str = "centerface",
    width: int = 640,
    height: int = 360,
    batch_sizes: tuple[int, ...] = (1, 8),
    frames: int = 32,
    repeats: int = 3,
    warmup: int = 1,
    config: DetectorConfig | None = None,
    model_path: Path | str | None = None,
    max_sides: tuple[int | None, ...] | None = None,
    protocol: BenchProtocol | None = None,
) -> dict[str, Any]:
    """Time ``detector.detect`` on ``frames`` frames of ``width`` x ``height``, per batch size.

    Args:
        detector: registered detector name.
        width, height: frame size.
        batch_sizes: detector batch sizes to time.
        frames: frames per timed pass (one pass = ``detect`` over all of them, in batches).
        repeats: interleaved rounds, one timed pass of every configuration each (median and best reported).
        warmup: untimed passes first (session creation, allocator warm-up).
        config: detector options (thresholds, threads, device, max_side); batch_size is overridden.
        model_path: detector model file.
        max_sides: downscaling limits to time (each gives its own runs); None: ``config.max_side`` only.
        protocol: the benchmark protocol (default: the current one), started after the detectors are warm.

    Returns:
        JSON-serialisable dict: per configuration frames/s (median, best), ms/frame, faces found per frame and
        ``speed_vs_first`` (per-round frames/s ratio to the first configuration: median, min-max), plus the
        configuration, the active ORT provider, :func:`machine_info`, ``protocol`` and ``noisy``.
    """
    from lib_deepfake.faces.registry import create_detector

    base = config or DetectorConfig()
    clip = _frames(frames, width, height)
    from lib_deepfake.faces.base import plan_input_size

    provider = None
    sides = max_sides if max_sides is not None else (base.max_side,)
    configs = [(side, bs) for side in sides for bs in batch_sizes]
    detectors = {}
    for side, bs in configs:
        det = create_detector(detector, replace(base, batch_size=bs, max_side=side), model_path)
        for _ in range(warmup):
            det.detect(clip)
        detectors[side, bs] = det
        provider = getattr(det, "provider", None) or provider
    times: dict[tuple[int | None, int], list[float]] = {key: [] for key in configs}
    found: dict[tuple[int | None, int], int] = {}
    started = (protocol or current_protocol()).start()
    for r in range(repeats):
        for key in interleaved(configs, r):
            t0 = time.perf_counter()
            dets = detectors[key].detect(clip)
            times[key].append(time.perf_counter() - t0)
            found[key] = sum(1 for d in dets if len(d) == 1)
    record = started.finish()
    runs = []
    for side, bs in configs:
        _, _, _, ph, pw = plan_input_size(height, width, side, base.min_face_size)
        passes = times[side, bs]
        med, best = statistics.median(passes), min(passes)
        runs.append(
            {
                "max_side": side,
                "network_input": [pw, ph],
                "batch_size": bs,
                "fps_median": round(frames / med, 2),
                "fps_best": round(frames / best, 2),
                "ms_per_frame_median": round(1000 * med / frames, 2),
                "speed_vs_first": ratio_stats([1 / t for t in passes], [1 / t for t in times[configs[0]]], digits=2),
                "frames_with_one_face": found[side, bs],
                "frames": frames,
                "pass_s": [round(t, 4) for t in passes],
            }
        )
    result = {
        "bench": "detector",
        "detector": detector,
        "frame_size": [width, height],
        "device": base.device,
        "provider": provider,
        "threads": base.threads,
        "score_threshold": base.score_threshold,
        "runs": runs,
        "machine": machine_info("cpu"),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return mark(result, record)


def _to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"# Face detector throughput: {result['detector']} at {result['frame_size'][0]}x{result['frame_size'][1]}"
        + (" - NOISY" if noisy_tag(result.get("protocol")) else ""),
        "",
        f"Machine: {describe_machine(m, ('onnxruntime', 'onnx', 'numpy'))}; "
        f"provider {result['provider']}, threads {result['threads'] or 'ORT default'}; measured "
        f"{result['time_utc']}. Detector only (frames "
        "already in memory: resize/pad, network, decode, NMS); the configurations take turns over the rounds.",
        "",
        markdown_line(result.get("protocol")),
        "",
        "| max side | network input | batch | frames/s (median) | frames/s (best) | ms/frame (median) "
        "| x first row: median (min-max) | frames with 1 face |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tag = noisy_tag(result.get("protocol"))
    for r in result["runs"]:
        lines.append(
            f"| {r['max_side']} | {r['network_input'][0]}x{r['network_input'][1]} | {r['batch_size']} "
            f"| {r['fps_median']}{tag} | {r['fps_best']} | {r['ms_per_frame_median']} | "
            f"{format_ratio(r.get('speed_vs_first'))} | {r['frames_with_one_face']}/{r['frames']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    from lib_deepfake.atomic import atomic_open, write_json_atomic

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="JSON path (a .md table is written beside it)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--max-sides", default="640,320", help="downscaling limits to time, comma-separated")
    args = p.parse_args(argv)
    cfg = DetectorConfig(threads=args.threads, device=args.device)
    res = run_detector_bench(batch_sizes=tuple(int(b) for b in args.batch_sizes.split(",")), frames=args.frames,
                             repeats=args.repeats, config=cfg,
                             max_sides=tuple(int(s) for s in args.max_sides.split(",")))  # fmt: skip
    write_json_atomic(args.out, res)
    with atomic_open(args.out.with_suffix(".md")) as fh:
        fh.write(_to_markdown(res))
    print(json.dumps(res["runs"], indent=1))  # noqa: T201 - script entry point


if __name__ == "__main__":
    main()
