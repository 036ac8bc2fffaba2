"""``lib-bench env``: which engines, ONNX Runtime providers, decoders, face detector and crop backend work here,
and why not where they don't.

Each probe is guarded so one broken component cannot hide the others; probes may import the optional runtimes
(that is the point of a diagnostic command) but never install anything.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from lib_deepfake._optional import is_installed

logger = logging.getLogger(__name__)


def _guard(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a diagnostic must report, not crash
        return {"ok": False, "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}


def _engines(device: str) -> dict[str, Any]:
    from lib_deepfake.engines.registry import engine_availability, engine_entry, list_engines

    out = {}
    for name in list_engines():

        def probe(name: str = name) -> dict[str, Any]:
            status = engine_availability(name, device)
            return {"ok": status.ok, "reason": status.reason, "artifacts": list(engine_entry(name).suffixes)}

        out[name] = _guard(probe)
    return out


def _onnxruntime() -> dict[str, Any]:
    if not is_installed("onnxruntime"):
        return {"ok": False, "reason": "onnxruntime not installed (pip install 'lib-deepfake[cpu]' or '[gpu]')"}
    from lib_deepfake.engines.ort_engine import probe_providers

    info = probe_providers()
    usable = info.get("ep_devices")
    info["ok"] = True
    info["reason"] = (
        f"usable providers: {', '.join(usable)}" if usable is not None else
        "compiled-in providers listed; the one in use is checked per session (ORT falls back silently)"
    )  # fmt: skip
    return info


def _tensorrt() -> dict[str, Any]:
    if not is_installed("tensorrt"):
        return {"ok": False, "reason": "tensorrt not installed (pip install 'lib-deepfake[trt]'; needs an NVIDIA GPU)"}
    trt = importlib.import_module("tensorrt")
    if not hasattr(trt, "Builder"):
        return {"ok": False, "reason": "'tensorrt' imports but has no Builder (stubs only?)"}
    return {"ok": True, "version": str(trt.__version__), "reason": ""}


def _decoders(device: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["pyav"] = _guard(
        lambda: (
            {"ok": True, "reason": f"PyAV {importlib.import_module('av').__version__} (CPU)"}
            if is_installed("av")
            else {"ok": False, "reason": "av not installed"}
        )  # fmt: skip
    )

    def dali() -> dict[str, Any]:
        if not is_installed("nvidia.dali"):
            return {"ok": False, "reason": "nvidia.dali not installed (pip install 'lib-deepfake[dali]')"}
        import torch

        dali_mod = importlib.import_module("nvidia.dali")
        if torch.cuda.is_available():
            return {"ok": True, "reason": f"DALI {dali_mod.__version__}: NVDEC ('mixed') decoding on the GPU"}
        return {"ok": True, "reason": f"DALI {dali_mod.__version__}: CPU decoder only (VP8/VP9/MJPEG), no CUDA device"}

    out["dali"] = _guard(dali)
    return out


def _detector(device: str) -> dict[str, Any]:
    def probe() -> dict[str, Any]:
        from lib_deepfake.faces.registry import list_detectors

        detectors = list_detectors()
        info: dict[str, Any] = {"detectors": detectors}
        if "centerface" in detectors:
            if not is_installed("onnxruntime"):
                return {**info, "ok": False, "reason": "centerface needs onnxruntime (pip install 'lib-deepfake[cpu]')"}
            from lib_deepfake.faces.centerface import find_centerface_onnx

            try:
                info["centerface_onnx"] = str(find_centerface_onnx())
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                return {**info, "ok": False, "reason": f"centerface weights: {' '.join(str(exc).split())}"}
            runtime = "ONNX Runtime (CUDA provider if active, else CPU)" if device.startswith("cuda") else (
                "ONNX Runtime CPU")  # fmt: skip
            return {**info, "ok": True, "reason": f"centerface on {runtime}"}
        return {**info, "ok": True, "reason": "no centerface registered"}

    return _guard(probe)


def _crop_backend(device: str) -> dict[str, Any]:
    def probe() -> dict[str, Any]:
        from lib_deepfake.faces.crop import crop_backend

        backend = crop_backend(device)
        return {"ok": True, "backend": backend.name, "reason": backend.detail}

    return _guard(probe)


def env_report(device: str = "cpu") -> dict[str, Any]:
    """Everything ``lib-bench env`` prints, as a dict (``device``: the device to judge availability for)."""
    from lib_deepfake.bench.machine import machine_info

    return {
        "device": device,
        "machine": _guard(lambda: machine_info(device)),
        "engines": _engines(device),
        "onnxruntime": _guard(_onnxruntime),
        "tensorrt": _guard(_tensorrt),
        "decoders": _decoders(device),
        "face_detector": _detector(device),
        "crop_backend": _crop_backend(device),
    }


def format_env(report: dict[str, Any]) -> str:
    """Human-readable lines: ``[ok] name: reason`` / ``[--] name: reason``."""

    def mark(entry: dict[str, Any]) -> str:
        return "[ok]" if entry.get("ok") else "[--]"

    m = report["machine"]
    lines = []
    if "cpu" in m:
        gpu = m.get("gpu")
        lines.append(f"machine: {m['cpu']} ({m['cpu_cores']} cores), load {m.get('load_average')}")
        lines.append(
            f"gpu: {gpu['name']} sm {gpu['compute_capability']}, driver {gpu.get('driver')}, CUDA {gpu.get('cuda')}"
            if gpu
            else "gpu: none (torch sees no CUDA device)"  # fmt: skip
        )
        versions = m.get("versions", {})
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines.append(f"engines (for device {report['device']}):")
    for name, entry in report["engines"].items():
        lines.append(f"  {mark(entry)} {name}: {entry.get('reason', '')}")
    ort = report["onnxruntime"]
    lines.append(" ".join(s for s in ("onnxruntime:", mark(ort), ort.get("version", ""), ort.get("reason", "")) if s))
    if ort.get("compiled_providers"):
        lines.append(f"  compiled-in providers: {', '.join(ort['compiled_providers'])}")
    trt = report["tensorrt"]
    lines.append(" ".join(s for s in ("tensorrt:", mark(trt), trt.get("version", ""), trt.get("reason", "")) if s))
    lines.append("decoders:")
    for name, entry in report["decoders"].items():
        lines.append(f"  {mark(entry)} {name}: {entry.get('reason', '')}")
    det = report["face_detector"]
    lines.append(f"face detector: {mark(det)} {det.get('reason', '')}")
    crop = report["crop_backend"]
    lines.append(f"crop backend: {mark(crop)} {crop.get('backend', '')} ({crop.get('reason', '')})")
    return "\n".join(lines)
