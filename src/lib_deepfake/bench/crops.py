"""``lib-bench crops``: face crops per second, native library vs the torch path, on one device.

Both implementations get the same frames (uint8 [F, H, W, 3], random content) and the same boxes (random faces of
80-400 px, a few partly outside the frame), and produce uint8 [M, S, S, 3]. Timings are wall clock around whole
batches with the device synchronised (CUDA), after warm-up; the median batch is reported. The result also records
the largest difference between the two outputs (the contract allows 1 grey level).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from lib_deepfake.bench.machine import describe_machine, machine_info
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


def _time(fn: Callable[[], torch.Tensor], device: torch.device, iters: int, warmup: int) -> list[float]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
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
) -> dict[str, Any]:
    """Crops/s of the native library and of the torch path on ``device``.

    Args:
        device: ``"cpu"`` or ``"cuda"``/``"cuda:N"``.
        frame_size: (H, W) of the frames.
        crop_size: output side S.
        faces: boxes per batch (M), spread over ``frames`` frames.
        iters: timed batches per backend (median reported).
        frames: frames per batch (F).
        warmup: untimed batches first.
        scale: box expansion.
        seed: RNG seed of frames and boxes.

    Returns:
        A JSON-ready dict: ``device``, ``machine``, ``config``, ``backends`` (per backend: ``crops_per_s``,
        ``batch_ms_median``, ``batch_ms_min``, ``batch_ms_max`` or ``skipped`` with the reason),
        ``speedup_native_vs_torch`` (None when a side is missing), ``max_abs_diff`` and ``native`` (library status).
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
    for name, fn in runs.items():
        times = _time(fn, dev, iters, warmup)
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
    speedup = None
    max_diff = None
    if "native" in outputs:
        speedup = round(results["native"]["crops_per_s"] / results["torch"]["crops_per_s"], 2)
        max_diff = int((outputs["native"].int() - outputs["torch"].int()).abs().max()) if faces else 0
    st = native.status()
    return {
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
            "seed": seed,
        },
        "backends": results,
        "speedup_native_vs_torch": speedup,
        "max_abs_diff": max_diff,
        "native": {
            "library": str(st.cuda if dev.type == "cuda" else st.cpu) if ok else None,
            "build_info": (st.cuda_build_info if dev.type == "cuda" else st.cpu_build_info) if ok else "",
            "status": why,
        },
    }


def format_markdown(result: dict[str, Any]) -> str:
    """A short markdown report of :func:`run_crop_bench`'s result."""
    m, c = result["machine"], result["config"]
    hw = f"{describe_machine(m)}; {m['torch_threads']} torch threads"
    lines = [
        f"# Face crops: native vs torch on {result['device']}",
        "",
        f"Machine: {hw}.",
        f"Batch: {c['frames']} frames of {c['frame_size'][1]}x{c['frame_size'][0]} RGB uint8, {c['faces']} faces "
        f"(80-400 px, scale {c['scale']}) -> {c['crop_size']}x{c['crop_size']} crops; median of {c['iters']} batches "
        f"after {c['warmup']} warm-up.",
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
        lines.append(
            f"Native is **{result['speedup_native_vs_torch']}x** the torch path; largest difference between the two "
            f"outputs: {result['max_abs_diff']} grey level(s)."
        )
    lines.append(f"Native library: {result['native']['library']} ({result['native']['build_info']}).")
    return "\n".join(lines) + "\n"
