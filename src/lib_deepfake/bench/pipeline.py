"""``lib-bench pipeline``: our scan pipeline against the PyTorch reference pipeline, in one run, same files.

- **ours**: :class:`~lib_deepfake.pipeline.scanner.Scanner` as ``lib-infer`` runs it - sparse decode of the
  sampled frames in worker processes overlapping the main process, CenterFace at ``--detector-max-side`` (640),
  detection and classification batched across videos, the classifier on the fastest engine given (ONNX Runtime
  when ``--onnx-model`` is passed or the model is .onnx).
- **reference** (what a straightforward PyTorch script does, the "PyTorch reference pipeline" of the issue): decode
  **every** frame of the video and convert every one to RGB (``cv2.VideoCapture.read()`` style), keep the sampled
  ones, run the detector on every sampled frame **at full resolution** one frame at a time, crop, classify with
  the **FP32 PyTorch eager** engine, one video at a time, nothing overlapped.

Both use the same sampling plan, tracker, crop and aggregation code, so their scores agree (the reference differs
only in detector resolution, which can move boxes a little). Each pipeline runs in its own spawned process so that
its peak memory (``ru_maxrss`` of the process, plus the largest decode worker) is its own.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["make_bench_clips", "reference_scan", "run_pipeline_bench", "format_markdown"]


def make_bench_clips(out_dir: Path | str, count: int = 20, seconds: float = 10.0, size: tuple[int, int] = (1280, 720),
                     fps: int = 30, seed: int = 0) -> list[Path]:  # fmt: skip
    """Face clips (half real, half self-blended fake) from the synthetic corpus generator, H.264, reused if present."""
    from lib_deepfake.atomic import write_bytes_atomic
    from lib_deepfake.prep.synth import SynthConfig, encode_h264, plan_clips, render_clip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w, h = size
    cfg = SynthConfig(videos=max(count, 2), seconds=seconds, fps=fps, width=w, height=h, seed=seed)
    paths = []
    for spec in plan_clips(cfg)[:count]:
        path = out / f"{spec.name}_{w}x{h}_{seconds:g}s.mp4"
        if not path.is_file():
            frames = (f for f, _, _ in render_clip(spec, w, h, cfg.frames))
            write_bytes_atomic(path, encode_h264(frames, fps, crf=23, preset="veryfast"))
        paths.append(path)
    return paths


def _peak_rss_mib(worker_mib: float = 0.0) -> dict[str, float]:
    # VmHWM, not ru_maxrss: a spawned process's ru_maxrss starts at its parent's RSS at fork time.
    from lib_deepfake.pipeline.decode import vm_hwm_kib

    kib = vm_hwm_kib() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"main_mib": round(kib / 1024, 1), "largest_child_mib": round(worker_mib, 1)}


def _decode_all_frames(path: str, wanted: set[int]) -> tuple[list[np.ndarray], list[int], list[float], int]:
    """Decode every frame in presentation order and convert each to RGB (the reference); keep the wanted ones."""
    import av

    frames, idx, times, n = [], [], [], 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = []
        for frame in container.decode(stream):
            decoded.append((frame.pts if frame.pts is not None else n, frame.to_ndarray(format="rgb24"),
                            float(frame.time) if frame.time is not None else 0.0))  # fmt: skip
            n += 1
        decoded.sort(key=lambda t: t[0])
        t0 = decoded[0][2] if decoded else 0.0
        for i, (_, img, t) in enumerate(decoded):
            if i in wanted:
                frames.append(img)
                idx.append(i)
                times.append(t - t0)
    return frames, idx, times, n


def reference_scan(paths: list[str], config: Any, torch_model: Path) -> dict[str, Any]:
    """The PyTorch reference pipeline (see the module docstring). Returns rows, stage seconds and counts."""
    import torch

    from lib_deepfake.engines import create_engine
    from lib_deepfake.faces.base import DetectorConfig
    from lib_deepfake.faces.crop import crop_faces
    from lib_deepfake.faces.registry import create_detector
    from lib_deepfake.faces.tracking import TrackingConfig, link_tracks
    from lib_deepfake.pipeline.aggregate import aggregate
    from lib_deepfake.pipeline.results import build_row
    from lib_deepfake.video import build_index, parse_plan, probe

    dev = config.torch_device()
    if dev.type == "cpu":
        torch.set_num_threads(config.resolved_threads())
    engine = create_engine("torch", torch_model, device=str(dev)).load()
    detector = create_detector(
        config.detector,
        DetectorConfig(
            max_side=None,
            batch_size=1,
            threads=config.resolved_threads(),
            device=dev.type,
            allow_cpu_fallback=config.allow_cpu_fallback,
        ),  # fmt: skip
    )
    # Load-time work (sessions, first-call allocations) is excluded, as for our pipeline.
    detector.detect(torch.zeros((1, 64, 64, 3), dtype=torch.uint8, device=dev))
    engine.infer(torch.zeros((2, engine.input_size, engine.input_size, 3), dtype=torch.uint8, device=dev))
    stages = {"decode_s": 0.0, "detect_s": 0.0, "crop_s": 0.0, "classify_s": 0.0}
    counts = {"videos": 0, "frames_decoded": 0, "frames": 0, "faces": 0}
    rows = []
    start = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        info = probe(path)
        wanted = parse_plan(config.plan).resolve(build_index(path))
        frames, idx, times, n = _decode_all_frames(path, set(int(i) for i in wanted.indices))
        t1 = time.perf_counter()
        # One frame at a time, full size (on the GPU: copied there one by one, as a simple script would).
        dets = [detector.detect(torch.from_numpy(f)[None].to(dev))[0] for f in frames]
        t2 = time.perf_counter()
        tracks = link_tracks(dets, idx, TrackingConfig())
        ident, boxes = [], []
        for rank, tr in enumerate(tracks):
            for p, box in zip(tr.positions, tr.boxes):
                ident.append(rank)
                boxes.append([p, *box.tolist()])
        scores = np.zeros(0, np.float32)
        t3 = t4 = time.perf_counter()
        if boxes:
            stacked = torch.from_numpy(np.stack(frames)).to(dev)
            crops = crop_faces(stacked, torch.tensor(boxes, dtype=torch.float32), engine.input_size, config.crop_scale)
            t3 = time.perf_counter()
            scores = engine.infer(crops).float().cpu().numpy()
            t4 = time.perf_counter()
        stages["decode_s"] += t1 - t0
        stages["detect_s"] += t2 - t1
        stages["crop_s"] += t3 - t2
        stages["classify_s"] += t4 - t3
        counts["videos"] += 1
        counts["frames_decoded"] += n
        counts["frames"] += len(frames)
        counts["faces"] += len(scores)
        vs = aggregate(np.asarray(ident), scores, rule=config.aggregation, min_faces=config.min_faces,
                       top_k=config.top_k)  # fmt: skip
        timings = {"decode_s": t1 - t0, "detect_s": t2 - t1, "crop_s": t3 - t2, "classify_s": t4 - t3}
        rows.append(build_row(path, status="ok" if vs.score is not None else "no_face", threshold=config.threshold,
                              score=vs.score, info=info.as_dict(), frames_sampled=len(frames), faces=len(scores),
                              timings=timings, decoder="pyav-all-frames"))  # fmt: skip
    run_s = time.perf_counter() - start
    engine.close()
    return {"rows": rows, "stages": stages, "counts": counts, "engine": engine.describe(), "run_s": run_s}


def _ours(paths: list[str], config: Any) -> dict[str, Any]:
    from lib_deepfake.pipeline.scanner import Scanner

    rows = []
    with Scanner(config) as scanner:
        scanner.warm_up()
        t0 = time.perf_counter()
        for outcome in scanner.scan(paths):
            rows.append(outcome.row)
        wall = time.perf_counter() - t0
        totals = scanner.totals.as_dict()
        resolved = scanner.resolved
        worker_mib = scanner.peak_worker_rss_mib()
    return {"rows": rows, "wall_s": wall, "totals": totals, "resolved": resolved, "worker_mib": worker_mib}


def _child(kind: str, paths: list[str], config: Any, torch_model: str, conn: Any) -> None:
    try:
        t0 = time.perf_counter()
        if kind == "ours":
            res = _ours(paths, config)
        else:
            res = reference_scan(paths, config, Path(torch_model))
            res["wall_s"] = res.pop("run_s")
        res["load_and_run_s"] = time.perf_counter() - t0
        res["peak_rss"] = _peak_rss_mib(res.pop("worker_mib", 0.0))
        conn.send(("ok", res))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        import traceback

        conn.send(("err", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def _run_isolated(kind: str, paths: list[str], config: Any, torch_model: Path) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(kind, paths, config, str(torch_model), child))
    proc.start()
    child.close()
    status, payload = parent.recv()
    proc.join()
    if status != "ok":
        from lib_deepfake.errors import LibDeepfakeError

        raise LibDeepfakeError(f"the {kind} pipeline failed: {payload}")
    return payload


def _rates(videos: int, frames: int, faces: int, wall: float) -> dict[str, float]:
    return {"videos_per_s": round(videos / wall, 4), "frames_per_s": round(frames / wall, 3),
            "faces_per_s": round(faces / wall, 3), "wall_s": round(wall, 3)}  # fmt: skip


def _merge(runs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """Sum the rounds of one pipeline: rows, wall time, stage times and counts; peak memory is the max."""
    rows = [r for run in runs for r in run["rows"]]
    wall = sum(run["wall_s"] for run in runs)
    peak = {"main_mib": max(run["peak_rss"]["main_mib"] for run in runs),
            "largest_child_mib": max(run["peak_rss"]["largest_child_mib"] for run in runs)}  # fmt: skip
    if kind == "ours":
        keys = ("decode_s", "detect_s", "crop_s", "classify_s", "wait_s", "videos", "frames", "faces",
                "frames_detected", "frames_interpolated")  # fmt: skip
        totals = {k: sum(run["totals"][k] for run in runs) for k in keys}
        return {"rows": rows, "wall_s": wall, "peak_rss": peak, "totals": totals, "resolved": runs[0]["resolved"]}
    stages = {k: sum(run["stages"][k] for run in runs) for k in runs[0]["stages"]}
    counts = {k: sum(run["counts"][k] for run in runs) for k in runs[0]["counts"]}
    return {"rows": rows, "wall_s": wall, "peak_rss": peak, "stages": stages, "counts": counts,
            "engine": runs[0]["engine"]}  # fmt: skip


def run_pipeline_bench(paths: list[Path], model: Path, *, onnx_model: Path | None = None, plan: str = "uniform:32",
                       workers: int = 0, batch_size: int = 32, skip_reference: bool = False, rounds: int = 1,
                       device: str = "cpu", decoder: str = "auto", detector_max_side: int | None = 640,
                       detect_every: int = 1, progress: Any = None) -> dict[str, Any]:  # fmt: skip
    """Run both pipelines on ``paths`` and return the result dict (JSON-serialisable).

    Args:
        paths: video files.
        model: a checkpoint (the reference always runs it with the torch engine).
        onnx_model: the same model exported to ONNX for our pipeline (default: ``model`` itself).
        plan: sampling plan for both.
        workers: decode processes of our pipeline (0: automatic).
        skip_reference: only our pipeline (quick checks).
        device, decoder: where our pipeline runs ("cuda" + "auto" = DALI/NVDEC when installed); the reference runs
            torch eager on the same device with PyAV decoding every frame.
        detector_max_side: our detector's input long side (the reference always detects at full resolution).
        detect_every: our detector on every K-th sampled frame (``faces.sparse_detect``; the reference: every one).
        rounds: split the videos into this many chunks and run the two pipelines alternately on each chunk
            (ours first in odd rounds, the reference first in even ones), so that a shared machine's changing load
            falls on both alike. Times are summed over the rounds; each round loads its models afresh (untimed).
    """
    from lib_deepfake.bench.machine import device_slug, machine_info
    from lib_deepfake.pipeline.config import ScanConfig

    keys = [str(p) for p in paths]
    ours_model = onnx_model or model
    cfg = ScanConfig(model=ours_model, plan=plan, workers=workers, batch_size=batch_size, report=False, device=device,
                     decoder=decoder, detector_max_side=detector_max_side, detect_every=detect_every)  # fmt: skip
    say = progress or (lambda msg: None)
    rounds = max(1, min(int(rounds), len(keys)))
    chunks = [keys[i::rounds] for i in range(rounds)]
    ours_runs: list[dict[str, Any]] = []
    ref_runs: list[dict[str, Any]] = []
    load_before = machine_info(device).get("load_average")
    for i, chunk in enumerate(chunks):
        order = ["ours", "reference"] if i % 2 == 0 else ["reference", "ours"]
        for kind in order:
            if kind == "reference" and skip_reference:
                continue
            say(f"round {i + 1}/{rounds}: {kind} on {len(chunk)} videos")
            (ours_runs if kind == "ours" else ref_runs).append(_run_isolated(kind, chunk, cfg, Path(model)))
    ours = _merge(ours_runs, "ours")
    t = ours["totals"]
    machine = machine_info(device)
    machine["load_average_at_start"] = load_before
    result: dict[str, Any] = {
        "benchmark": "pipeline",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "inputs": {
            "videos": len(keys),
            "files": [Path(k).name for k in keys],
            "plan": plan,
            "rounds": rounds,
            "detector_max_side": detector_max_side,
            "detect_every": detect_every,
            "model": str(model),
            "ours_model": str(ours_model),
        },  # fmt: skip
        "ours": {
            "engine": ours["resolved"].get("engine_label"),
            "resolved": ours["resolved"],
            **_rates(t["videos"], t["frames"], t["faces"], ours["wall_s"]),
            "stages_s": {k: round(t[k], 3) for k in ("decode_s", "detect_s", "crop_s", "classify_s", "wait_s")},
            "stage_note": "decode_s is summed worker time and overlaps the main-process stages",
            "frames_detected": t["frames_detected"],
            "frames_interpolated": t["frames_interpolated"],
            # Frames delivered per second of decoder time (one worker or DALI thread); compare with NVDEC's
            # ~1,000-1,500 fps per GPU for full decodes (docs anchors, section 2a) on a GPU.
            "decode_fps_per_worker": round(t["frames"] / t["decode_s"], 2) if t["decode_s"] else None,
            "peak_rss": ours["peak_rss"],
            "peak_rss_total_mib_upper_bound": round(
                ours["peak_rss"]["main_mib"] + cfg.resolved_workers() * ours["peak_rss"]["largest_child_mib"], 1
            ),  # fmt: skip
            "status": _status_counts(ours["rows"]),
        },
    }
    if ref_runs:
        ref = _merge(ref_runs, "reference")
        c = ref["counts"]
        result["reference"] = {
            "engine": ref["engine"],
            **_rates(c["videos"], c["frames"], c["faces"], ref["wall_s"]),
            "frames_decoded": c["frames_decoded"],
            "decode_fps": round(c["frames_decoded"] / ref["stages"]["decode_s"], 2)
            if ref["stages"]["decode_s"]
            else None,
            "stages_s": {k: round(v, 3) for k, v in ref["stages"].items()},
            "peak_rss": ref["peak_rss"],
            "status": _status_counts(ref["rows"]),
        }
        result["speedup_videos_per_s"] = round(result["ours"]["videos_per_s"] / result["reference"]["videos_per_s"], 3)
        ref_scores = {r["path"]: r["score"] for r in ref["rows"]}
        diffs = [abs(r["score"] - ref_scores[r["path"]]) for r in ours["rows"]
                 if r["score"] is not None and ref_scores.get(r["path"]) is not None]  # fmt: skip
        result["score_agreement"] = {"videos_compared": len(diffs),
                                     "max_abs_diff": round(max(diffs), 5) if diffs else None,
                                     "mean_abs_diff": round(float(np.mean(diffs)), 5) if diffs else None}  # fmt: skip
    result["device_slug"] = device_slug(result["machine"], device)
    return result


def _status_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def format_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"# Pipeline benchmark: {result['inputs']['videos']} videos, plan {result['inputs']['plan']}", "",
             f"Machine: {m.get('cpu')}, {m.get('cpu_cores')} cores usable, load average at start "
             f"{m.get('load_average_at_start')} and end {m.get('load_average')} (a shared machine); finished "
             f"{result['when']}; {result['inputs'].get('rounds', 1)} interleaved round(s).", "",
             "| pipeline | engine | videos/s | frames/s | faces/s | wall s | decode s | detect s | crop s | classify s "
             "| peak RSS MiB (main / largest decode worker) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for key in ("ours", "reference"):
        r = result.get(key)
        if not r:
            continue
        s = r["stages_s"]
        lines.append(f"| {key} | {r['engine']} | {r['videos_per_s']} | {r['frames_per_s']} | {r['faces_per_s']} | "
                     f"{r['wall_s']} | {s['decode_s']} | {s['detect_s']} | {s['crop_s']} | {s['classify_s']} | "
                     f"{r['peak_rss']['main_mib']} / {r['peak_rss']['largest_child_mib']} |")  # fmt: skip
    ours = result.get("ours", {})
    ref = result.get("reference", {})
    if ours.get("decode_fps_per_worker"):
        lines += ["", f"Decode rate: ours {ours['decode_fps_per_worker']} sampled frames per decoder-second (per "
                  "worker or DALI thread; NVDEC full-decode anchor on H100: ~1,000-1,500 fps)"
                  + (f"; reference {ref['decode_fps']} frames/s decoding every frame." if ref.get("decode_fps")
                     else ".")]  # fmt: skip
    if ours.get("peak_rss_total_mib_upper_bound"):
        lines += ["", f"Peak memory of our pipeline (main + workers x largest decode worker, an upper bound): "
                  f"{ours['peak_rss_total_mib_upper_bound']} MiB."]  # fmt: skip
    if "speedup_videos_per_s" in result:
        lines += ["", f"Speed-up (videos/s, ours / reference): **{result['speedup_videos_per_s']}x**; "
                  f"score agreement: {result['score_agreement']}."]  # fmt: skip
    side = result["inputs"].get("detector_max_side", 640)
    every = result["inputs"].get("detect_every", 1)
    sparse = "" if every == 1 else (
        f" on every {every}th sampled frame ({ours.get('frames_detected')} frames detected, "
        f"{ours.get('frames_interpolated')} interpolated)")  # fmt: skip
    crops = ours.get("resolved", {}).get("crop_backend")
    lines += ["", "Ours: sparse decode in worker processes (decode s = summed worker time, overlapped), detector at "
              f"{f'{side} px long side' if side else 'full resolution'}{sparse}, batches across videos"
              f"{f', crops: {crops}' if crops else ''}. Reference: every "
              "frame decoded and converted, detector at full resolution one frame at a time, torch FP32 eager, one "
              "video at a time."]  # fmt: skip
    return "\n".join(lines) + "\n"
