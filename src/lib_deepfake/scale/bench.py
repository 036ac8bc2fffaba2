"""Ray scan vs local scan on one machine: wall time, start-up overhead, per-video rate, and row agreement.

Run (CPU here, or a GPU machine with ``--device cuda``)::

    python -m lib_deepfake.scale.bench --videos 16 --out bench/results
    python -m lib_deepfake.scale.bench --videos 64 --device cuda --workers 1 --backbone resnet34 --size 224 \\
        --allow-cpu-fallback --out bench/results

It writes a synthetic corpus (public-domain portraits drifting over a grey background, PyAV/libx264), a random
calibrated LIB checkpoint (``--backbone``/``--size``/``--width``), scans the corpus once with
:func:`lib_deepfake.pipeline.run.run_scan` and once with :func:`lib_deepfake.scale.ray_scan.scan_with_ray`
(``address="local"``), and records both timings, Ray's start-up (``ray.init``) and first-row latency, and the
largest score difference between the two scans, to ``ray-<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _portrait_clip(path: Path, frames: int, size: tuple[int, int], seed: int) -> Path:
    import cv2
    import numpy as np

    from lib_deepfake.prep.portraits import PORTRAIT_NAMES, load_portrait
    from lib_deepfake.video.synth import write_clip

    p = load_portrait(PORTRAIT_NAMES[seed % 2])
    w, h = size
    face_h = int(h * 0.8)
    scale = face_h / p.image.shape[0]
    face = cv2.resize(np.ascontiguousarray(p.image), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    face = face[:, : min(face.shape[1], w - 8)]

    def content(index: int, width: int, height: int) -> np.ndarray:
        img = np.full((height, width, 3), 90 + 10 * (seed % 5), np.uint8)
        x0 = (seed * 7 + index) % max(1, width - face.shape[1])
        y0 = (height - face.shape[0]) // 2
        img[y0 : y0 + face.shape[0], x0 : x0 + face.shape[1]] = face
        return img

    return write_clip(path, frames=frames, size=size, content=content, gop=30)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lib_deepfake.bench.machine import device_slug, machine_info
    from lib_deepfake.model.testing import write_test_checkpoint
    from lib_deepfake.pipeline.config import ScanConfig
    from lib_deepfake.pipeline.results import RESULTS_JSONL, read_jsonl
    from lib_deepfake.pipeline.run import run_scan
    from lib_deepfake.scale.ray_scan import connect, scan_with_ray

    tmp = Path(tempfile.mkdtemp(prefix="lib-ray-bench-"))
    w, h = (int(x) for x in args.frame_size.split("x"))
    t0 = time.perf_counter()
    for i in range(args.videos):
        _portrait_clip(tmp / "videos" / f"v{i:04d}.mp4", args.frames, (w, h), i)
    corpus_s = time.perf_counter() - t0
    model = write_test_checkpoint(tmp / "model.pth", backbone=args.backbone, size=args.size, width_mult=args.width)
    config = ScanConfig(model=model, device=args.device, plan=args.plan, detector=args.detector, threads=args.threads,
                        workers=args.decode_workers, allow_cpu_fallback=args.allow_cpu_fallback, thumbnails=1,
                        batch_size=args.batch_size)  # fmt: skip
    local_first: list[float] = []

    def on_local(row: dict[str, Any], done: int, total: int) -> None:
        if not local_first:
            local_first.append(time.perf_counter())

    t0 = time.perf_counter()
    local = run_scan(config, [tmp / "videos"], tmp / "local", on_outcome=on_local)
    local_s = time.perf_counter() - t0
    local_first_s = local_first[0] - t0 if local_first else None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    t0 = time.perf_counter()
    conn = connect("local", object_store_memory=args.object_store_mb << 20)
    init_s = time.perf_counter() - t0
    first: list[float] = []

    def on_outcome(row: dict[str, Any], done: int, total: int) -> None:
        if not first:
            first.append(time.perf_counter())

    t0 = time.perf_counter()
    try:
        ray_summary = scan_with_ray(config, [tmp / "videos"], tmp / "ray", address="local", workers=args.workers,
                                    cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
                                    videos_per_call=args.videos_per_call, on_outcome=on_outcome)  # fmt: skip
        ray_s = time.perf_counter() - t0
    finally:
        conn.close()
    loc_rows = {r["path"]: r for r in read_jsonl(tmp / "local" / RESULTS_JSONL)[0]}
    ray_rows = {r["path"]: r for r in read_jsonl(tmp / "ray" / RESULTS_JSONL)[0]}
    diffs = [abs(ray_rows[p]["score"] - r["score"]) for p, r in loc_rows.items()
             if r["status"] == "ok" and ray_rows.get(p, {}).get("status") == "ok"]  # fmt: skip
    same_status = all(ray_rows.get(p, {}).get("status") == r["status"] for p, r in loc_rows.items())
    first_row_s = (first[0] - t0) if first else None
    machine = machine_info(args.device)
    result = {
        "benchmark": "ray-vs-local",
        "machine": machine,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "corpus": {
            "videos": args.videos,
            "frames": args.frames,
            "frame_size": args.frame_size,
            "write_s": round(corpus_s, 2),
        },  # fmt: skip
        "local": {
            "wall_s": round(local_s, 2),
            "videos_per_s": round(args.videos / local_s, 3),
            "first_row_s": round(local_first_s, 2) if local_first_s is not None else None,
            "steady_videos_per_s": _steady(args.videos, local_s, local_first_s),
            "status": local["status"],
            "stages": local.get("stages"),
        },  # fmt: skip
        "ray": {
            "init_s": round(init_s, 2),
            "wall_s": round(ray_s, 2),
            "first_row_s": round(first_row_s, 2) if first_row_s is not None else None,
            "steady_videos_per_s": _steady(args.videos, ray_s, first_row_s),
            "videos_per_s": round(args.videos / ray_s, 3),
            "plan": ray_summary["ray"].get("plan"),
            "stages": ray_summary.get("stages"),
            "status": ray_summary["status"],
        },  # fmt: skip
        "agreement": {
            "same_status": same_status,
            "scored": len(diffs),
            "max_abs_score_diff": max(diffs) if diffs else None,
        },  # fmt: skip
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"ray-{device_slug(machine, args.device)}" + (f"-{args.tag}" if args.tag else "")
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / f"{name}.md").write_text(_markdown(result))
    logger.info("wrote %s", out / f"{name}.md")
    return result


def _steady(videos: int, wall_s: float, first_row_s: float | None) -> float | None:
    """Videos per second after the first row (start-up excluded): (videos - 1) / (wall - first row).

    None when the rows came back in one burst (the first row after 75% of the wall time: a Ray call of many
    videos returns its rows together), where this ratio would mean nothing."""
    if first_row_s is None or videos < 2 or wall_s - first_row_s < 0.25 * wall_s:
        return None
    return round((videos - 1) / (wall_s - first_row_s), 3)


def _markdown(r: dict[str, Any]) -> str:
    m, s, loc, ray, ag = r["machine"], r["settings"], r["local"], r["ray"], r["agreement"]
    gpu = m.get("gpu") or {}
    dev = f"{gpu.get('name')}" if s["device"].startswith("cuda") and gpu else f"{m['cpu']} ({m['cpu_cores']} cores)"
    plan = ray.get("plan") or {}
    lines = [
        f"### Ray scan vs local scan on {dev}",
        "",
        f"Corpus: {r['corpus']['videos']} synthetic clips, {r['corpus']['frames']} frames {r['corpus']['frame_size']} "
        f"(libx264); sampling {s['plan']}; detector {s['detector']}; classifier LIB {s['backbone']} x{s['width']} at "
        f"{s['size']} px (random weights); device {s['device']}. Load average {m.get('load_average')}.",
        "",
        "| run | wall s | videos/s | notes |",
        "|---|---|---|---|",
        f"| local `run_scan` | {loc['wall_s']} | {loc['videos_per_s']} | first row after {loc['first_row_s']} s "
        f"(engine load, decode processes); after it {loc['steady_videos_per_s'] or 'n/a (one burst)'} videos/s |",
        f"| Ray `scan_with_ray`, {plan.get('workers')} actor(s) x ({plan.get('cpus_per_worker')} CPU, "
        f"{plan.get('gpus_per_worker')} GPU) | {ray['wall_s']} | {ray['videos_per_s']} | first row after "
        f"{ray['first_row_s']} s (actor start: imports, engine load, decode process); after it "
        f"{ray['steady_videos_per_s'] or 'n/a (one burst)'} videos/s |",
        f"| `ray.init` (local cluster) | {ray['init_s']} | | once per scan |",
        "",
        f"Rows: same status for every video: {ag['same_status']}; largest score difference over {ag['scored']} scored "
        f"videos: {ag['max_abs_score_diff']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=16)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--frame-size", default="320x240")
    p.add_argument("--plan", default="uniform:16")
    p.add_argument("--detector", default="centerface")
    p.add_argument("--backbone", default="mobilenet")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--decode-workers", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="Ray actors")
    p.add_argument("--cpus-per-worker", type=float, default=None)
    p.add_argument("--gpus-per-worker", type=float, default=None)
    p.add_argument("--object-store-mb", type=int, default=512)
    p.add_argument("--allow-cpu-fallback", action="store_true")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--tag", default="", help="suffix of the result file names")
    p.add_argument("--videos-per-call", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    res = run(args)
    print(json.dumps({k: res[k] for k in ("local", "ray", "agreement")}, indent=1, default=str))


if __name__ == "__main__":
    main()
