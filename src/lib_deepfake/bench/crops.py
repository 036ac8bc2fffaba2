"""``lib-bench crops``: face crops per second, native library vs the torch path, on one device.

Both implementations get the same frames (uint8 [F, H, W, 3], random content) and the same boxes (random faces of
80-400 px, a few partly outside the frame), and produce uint8 [M, S, S, 3]. Timings are wall clock around whole
batches with the device synchronised (CUDA), after warm-up; the two backends take turns over ``rounds`` rounds (the
order reversed every other round), the median batch is reported, and the speed-up is the median (min-max) of the
per-round ratios. The result also records the largest difference between the two outputs (the contract allows 1
grey level) and the benchmark protocol's load record.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

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
from lib_deepfake.faces import crop as crop_mod
from lib_deepfake.faces import native

logger = logging.getLogger(__name__)


def make_inputs(
    frame_size: tuple[int, int], faces: int, frames: int, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames uint8 [frames, H, W, 3] on ``device`` and boxes float32 [faces, 5] on the CPU."""
    h, w = frame_size
    g = torch.Generator().manual_seed(seed)
    frames_t = torch.randint(0, 256, (frames, h, w, 3), dtype=torch.uint8, generator=g).to(device)
    side = 80 + torch.rand(faces, generator=g) * 320
    side = torch.minimum(side, torch.tensor(float(min(h, w))))
    aspect = 0.8 + torch.rand(faces, generator=g) * 0.4  # faces are a bit taller or wider than square
    x1 = torch.rand(faces, generator=g) * (w - side * 0.5)  # some windows cross the right/bottom edge
    y1 = torch.rand(faces, generator=g) * (h - side * 0.5)
    fi = torch.randint(0, frames, (faces,), generator=g).float()
    boxes = torch.stack([fi, x1, y1, x1 + side, y1 + side * aspect], dim=1).to(torch.float32)
    return frames_t, boxes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], torch.Tensor], device: torch.device, iters: int) -> list[float]:
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def run_crop_bench(
    device: str = "cpu",
    frame_size: tuple[int, int] = (1080, 1920),
    crop_size: int = 224,
    faces: int = 32,
    iters: int = 10,
    *,
    frames: int = 4,
    warmup: int = 2,
    scale: float = crop_mod.DEFAULT_SCALE,
    seed: int = 0,
    rounds: int = 3,
    protocol: BenchProtocol | None = None,
) -> dict[str, Any]:
    """Crops/s of the native library and of the torch path on ``device``.

    Args:
        device: ``"cpu"`` or ``"cuda"``/``"cuda:N"``.
        frame_size: (H, W) of the frames.
        crop_size: output side S.
        faces: boxes per batch (M), spread over ``frames`` frames.
        iters: timed batches per backend (median reported), split over ``rounds``.
        frames: frames per batch (F).
        warmup: untimed batches first.
        scale: box expansion.
        seed: RNG seed of frames and boxes.
        rounds: interleaved rounds (at most ``iters``); each gives one native/torch ratio.
        protocol: the benchmark protocol (default: the current one).

    Returns:
        A JSON-ready dict: ``device``, ``machine``, ``config``, ``backends`` (per backend: ``crops_per_s``,
        ``batch_ms_median``, ``batch_ms_min``, ``batch_ms_max`` or ``skipped`` with the reason),
        ``speedup_native_vs_torch`` (median of the per-round ratios; None when a side is missing) with
        ``speedup_stats`` (median, min-max), ``max_abs_diff``, ``native`` (library status), ``protocol`` and
        ``noisy``.
    """
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    frames_t, boxes = make_inputs(frame_size, faces, frames, seed, dev)
    crop_mod.check_crop_inputs(frames_t, boxes, crop_size, scale)
    boxes_dev = boxes.to(dev)
    runs: dict[str, Callable[[], torch.Tensor]] = {
        "torch": lambda: crop_mod.crop_faces_torch(frames_t, boxes_dev, crop_size, scale),
    }
    ok, why = native.available(dev)
    skipped: dict[str, str] = {}
    if ok:
        runs["native"] = lambda: native.crop_rgb(frames_t, boxes, crop_size, scale)
    else:
        skipped["native"] = why
    results: dict[str, Any] = {}
    outputs: dict[str, torch.Tensor] = {}
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    _sync(dev)
    rounds = max(1, min(rounds, iters))
    per_round = [iters // rounds + (1 if r < iters % rounds else 0) for r in range(rounds)]
    round_times: dict[str, list[list[float]]] = {name: [] for name in runs}
    started = (protocol or current_protocol()).start(logger.info)
    for r, calls in enumerate(per_round):
        for name in interleaved(list(runs), r):
            round_times[name].append(_time(runs[name], dev, calls))
    record = started.finish()
    for name, fn in runs.items():
        times = [t for batch in round_times[name] for t in batch]
        med = statistics.median(times)
        results[name] = {
            "crops_per_s": round(faces / med, 1),
            "batch_ms_median": round(med * 1e3, 3),
            "batch_ms_min": round(min(times) * 1e3, 3),
            "batch_ms_max": round(max(times) * 1e3, 3),
            "iters": iters,
        }
        outputs[name] = fn().cpu()
        logger.info("crops %s on %s: %.1f crops/s", name, dev, faces / med)
    for name, why_ in skipped.items():
        results[name] = {"skipped": why_}
    speedup = stats = None
    max_diff = None
    if "native" in outputs:

        def rates(name: str) -> list[float]:
            return [faces / statistics.median(batch) for batch in round_times[name]]

        stats = ratio_stats(rates("native"), rates("torch"), digits=2)
        speedup = stats["median"]
        max_diff = int((outputs["native"].int() - outputs["torch"].int()).abs().max()) if faces else 0
    st = native.status()
    result = {
        "bench": "crops",
        "device": str(dev),
        "machine": machine_info(str(dev)),
        "config": {
            "frame_size": list(frame_size),
            "frames": frames,
            "faces": faces,
            "crop_size": crop_size,
            "scale": scale,
            "warmup": warmup,
            "iters": iters,
            "rounds": rounds,
            "seed": seed,
        },
        "backends": results,
        "speedup_native_vs_torch": speedup,
        "speedup_stats": stats,
        "max_abs_diff": max_diff,
        "native": {
            "library": str(st.cuda if dev.type == "cuda" else st.cpu) if ok else None,
            "build_info": (st.cuda_build_info if dev.type == "cuda" else st.cpu_build_info) if ok else "",
            "status": why,
        },
    }
    return mark(result, record)


def format_markdown(result: dict[str, Any]) -> str:
    """A short markdown report of :func:`run_crop_bench`'s result."""
    m, c = result["machine"], result["config"]
    hw = f"{describe_machine(m)}; {m['torch_threads']} torch threads"
    lines = [
        f"# Face crops: native vs torch on {result['device']}"
        + (" - NOISY" if noisy_tag(result.get("protocol")) else ""),
        "",
        f"Machine: {hw}.",
        f"Batch: {c['frames']} frames of {c['frame_size'][1]}x{c['frame_size'][0]} RGB uint8, {c['faces']} faces "
        f"(80-400 px, scale {c['scale']}) -> {c['crop_size']}x{c['crop_size']} crops; median of {c['iters']} batches "
        f"in {c.get('rounds', 1)} interleaved round(s) after {c['warmup']} warm-up.",
        "",
        markdown_line(result.get("protocol")),
        "",
        "| backend | crops/s | batch ms (median) | min | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in result["backends"].items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} | | | |")
        else:
            lines.append(
                f"| {name} | {r['crops_per_s']:.1f} | {r['batch_ms_median']:.2f} | {r['batch_ms_min']:.2f} "
                f"| {r['batch_ms_max']:.2f} |"
            )
    lines.append("")
    if result["speedup_native_vs_torch"] is not None:
        ratio = format_ratio(result.get("speedup_stats")) if result.get("speedup_stats") else (
            f"{result['speedup_native_vs_torch']}x")  # fmt: skip
        lines.append(
            f"Native is **{ratio}**{noisy_tag(result.get('protocol'))} the torch path (median and min-max of the "
            f"per-round ratios); largest difference between the two outputs: {result['max_abs_diff']} grey level(s)."
        )
    lines.append(f"Native library: {result['native']['library']} ({result['native']['build_info']}).")
    return "\n".join(lines) + "\n"
