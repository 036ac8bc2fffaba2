"""Ray scan vs local scan on one machine: wall time, start-up overhead, per-video rate, and row agreement.

Run through ``lib-bench ray`` (CPU here, or a GPU machine with ``--device cuda``)::

    lib-bench ray --videos 16 --out bench/results
    lib-bench ray --videos 64 --device cuda --workers 1 --backbone resnet34 --size 224 --allow-cpu-fallback \\
        --out bench/results

It writes a synthetic corpus (public-domain portraits drifting over a grey background, PyAV/libx264), a random
calibrated LIB checkpoint (``--backbone``/``--size``/``--width``), scans the corpus once with
:func:`lib_deepfake.pipeline.run.run_scan` and once with :func:`lib_deepfake.scale.ray_scan.scan_with_ray`
(``address="local"``), and records both timings, Ray's start-up (``ray.init``) and first-row latency, and the
largest score difference between the two scans, to ``ray-<device>.json`` and ``.md``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayBenchConfig:
    """Settings of a Ray-vs-local run (``lib-bench ray``'s options; recorded as ``settings`` in the result).

    Attributes:
        videos, frames, frame_size: the synthetic corpus (clip count, frames per clip, ``WxH``).
        plan, detector, batch_size, device, threads, decode_workers, allow_cpu_fallback: the scan (both drivers).
        backbone, size, width: the random calibrated LIB checkpoint.
        workers, cpus_per_worker, gpus_per_worker, videos_per_call, object_store_mb: the Ray side (None: its default).
        tag: suffix of the result file names.
    """

    videos: int = 16
    frames: int = 60
    frame_size: str = "320x240"
    plan: str = "uniform:16"
    detector: str = "centerface"
    backbone: str = "mobilenet"
    size: int = 64
    width: float = 0.5
    batch_size: int = 32
    device: str = "cpu"
    threads: int | None = None
    decode_workers: int = 0
    workers: int | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None
    object_store_mb: int = 512
    allow_cpu_fallback: bool = False
    tag: str = ""
    videos_per_call: int | None = None


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


def run_ray_bench(cfg: RayBenchConfig, out: Path) -> dict[str, Any]:
    """Write the corpus and model to a temporary folder, scan it locally and with Ray, and write
    ``ray-<device>[-tag].json`` and ``.md`` into ``out``; returns the result."""
    from lib_deepfake.atomic import atomic_open, write_json_atomic
    from lib_deepfake.bench.machine import device_slug, machine_info
    from lib_deepfake.model.testing import write_test_checkpoint
    from lib_deepfake.pipeline.config import ScanConfig
    from lib_deepfake.pipeline.results import RESULTS_JSONL, read_jsonl
    from lib_deepfake.pipeline.run import run_scan
    from lib_deepfake.scale.ray_connection import connect
    from lib_deepfake.scale.ray_scan import scan_with_ray

    tmp = Path(tempfile.mkdtemp(prefix="lib-ray-bench-"))
    w, h = (int(x) for x in cfg.frame_size.split("x"))
    t0 = time.perf_counter()
    for i in range(cfg.videos):
        _portrait_clip(tmp / "videos" / f"v{i:04d}.mp4", cfg.frames, (w, h), i)
    corpus_s = time.perf_counter() - t0
    model = write_test_checkpoint(tmp / "model.pth", backbone=cfg.backbone, size=cfg.size, width_mult=cfg.width)
    config = ScanConfig(model=model, engine="torch", device=cfg.device, plan=cfg.plan, detector=cfg.detector,
                        threads=cfg.threads, workers=cfg.decode_workers, allow_cpu_fallback=cfg.allow_cpu_fallback,
                        thumbnails=1, batch_size=cfg.batch_size)  # fmt: skip
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
    conn = connect("local", object_store_memory=cfg.object_store_mb << 20)
    init_s = time.perf_counter() - t0
    first: list[float] = []

    def on_outcome(row: dict[str, Any], done: int, total: int) -> None:
        if not first:
            first.append(time.perf_counter())

    t0 = time.perf_counter()
    try:
        ray_summary = scan_with_ray(config, [tmp / "videos"], tmp / "ray", address="local", workers=cfg.workers,
                                    cpus_per_worker=cfg.cpus_per_worker, gpus_per_worker=cfg.gpus_per_worker,
                                    videos_per_call=cfg.videos_per_call, on_outcome=on_outcome)  # fmt: skip
        ray_s = time.perf_counter() - t0
    finally:
        conn.close()
    loc_rows = {r["path"]: r for r in read_jsonl(tmp / "local" / RESULTS_JSONL)[0]}
    ray_rows = {r["path"]: r for r in read_jsonl(tmp / "ray" / RESULTS_JSONL)[0]}
    diffs = [abs(ray_rows[p]["score"] - r["score"]) for p, r in loc_rows.items()
             if r["status"] == "ok" and ray_rows.get(p, {}).get("status") == "ok"]  # fmt: skip
    same_status = all(ray_rows.get(p, {}).get("status") == r["status"] for p, r in loc_rows.items())
    first_row_s = (first[0] - t0) if first else None
    machine = machine_info(cfg.device)
    result = {
        "benchmark": "ray-vs-local",
        "machine": machine,
        "settings": asdict(cfg),
        "corpus": {
            "videos": cfg.videos,
            "frames": cfg.frames,
            "frame_size": cfg.frame_size,
            "write_s": round(corpus_s, 2),
        },  # fmt: skip
        "local": {
            "wall_s": round(local_s, 2),
            "videos_per_s": round(cfg.videos / local_s, 3),
            "first_row_s": round(local_first_s, 2) if local_first_s is not None else None,
            "steady_videos_per_s": _steady(cfg.videos, local_s, local_first_s),
            "status": local["status"],
            "stages": local.get("stages"),
        },  # fmt: skip
        "ray": {
            "init_s": round(init_s, 2),
            "wall_s": round(ray_s, 2),
            "first_row_s": round(first_row_s, 2) if first_row_s is not None else None,
            "steady_videos_per_s": _steady(cfg.videos, ray_s, first_row_s),
            "videos_per_s": round(cfg.videos / ray_s, 3),
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
    name = f"ray-{device_slug(machine, cfg.device)}" + (f"-{cfg.tag}" if cfg.tag else "")
    write_json_atomic(out / f"{name}.json", result)
    with atomic_open(out / f"{name}.md") as fh:
        fh.write(format_markdown(result))
    logger.info("wrote %s", out / f"{name}.md")
    return result


def _steady(videos: int, wall_s: float, first_row_s: float | None) -> float | None:
    """Videos per second after the first row (start-up excluded): (videos - 1) / (wall - first row).

    None when the rows came back in one burst (the first row after 75% of the wall time: a Ray call of many
    videos returns its rows together), where this ratio would mean nothing."""
    if first_row_s is None or videos < 2 or wall_s - first_row_s < 0.25 * wall_s:
        return None
    return round((videos - 1) / (wall_s - first_row_s), 3)


def format_markdown(r: dict[str, Any]) -> str:
    """The result as a markdown section naming the machine."""
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
