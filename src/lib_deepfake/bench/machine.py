"""What machine a benchmark ran on: CPU model and cores, load, GPU name, driver, CUDA, library versions.

Shared by every ``lib-bench`` subcommand so all result files describe their machine the same way. Nothing heavy is
imported: library versions come from package metadata, and CUDA facts from torch (already a core dependency).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib.metadata import PackageNotFoundError, version
from typing import Any

#: distributions whose versions every result records (when installed)
LIBRARIES = (
    "lib-deepfake",
    "torch",
    "numpy",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxscript",
    "openvino",
    "nncf",
    "tensorrt",
    "tensorrt-cu12",
    "tensorrt-cu13",
    "nvidia-dali-cuda120",
    "nvidia-dali-cuda130",
    "av",
    "opencv-python-headless",
)


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in LIBRARIES:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def nvidia_driver() -> str | None:
    """The NVIDIA driver version, from /proc or nvidia-smi; None without one."""
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as fh:
            match = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", fh.read())
            if match:
                return match.group(1)
    except OSError:
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip().splitlines()[0] or None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def gpu_info(device: str | None = None) -> dict[str, Any] | None:
    """Name, compute capability, memory, CUDA and driver of ``device`` (default cuda:0); None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    dev = torch.device(device if device and device.startswith("cuda") else "cuda:0")
    props = torch.cuda.get_device_properties(dev)
    return {
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / (1 << 30), 1),
        "multiprocessors": props.multi_processor_count,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "driver": nvidia_driver(),
        "device": str(dev),
    }


def machine_info(device: str | None = None) -> dict[str, Any]:
    """Everything a result file needs to name its machine (``device``: the benchmarked device)."""
    import torch

    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpu": cpu_model(),
        "cpu_cores": usable_cores(),
        "cpu_count": os.cpu_count(),
        "memory_gib": memory_gib(),
        "load_average": load_average(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu_info(device),
        "versions": library_versions(),
    }


def describe_machine(machine: dict[str, Any], libraries: tuple[str, ...] = ("torch", "onnxruntime", "av")) -> str:
    """One line naming a :func:`machine_info` result, for the markdown views of every benchmark."""
    parts = [f"{machine.get('cpu', '?')} ({machine.get('cpu_cores', '?')} usable cores, "
             f"load average {machine.get('load_average')})"]  # fmt: skip
    gpu = machine.get("gpu")
    if gpu:
        parts.append(f"GPU {gpu['name']} (sm {gpu['compute_capability']}, driver {gpu.get('driver')}, "
                     f"CUDA {gpu.get('cuda')})")  # fmt: skip
    versions = machine.get("versions", {})
    libs = ", ".join(f"{name} {versions[name]}" for name in libraries if name in versions)
    return "; ".join(parts + ([libs] if libs else []))


def slug(text: str) -> str:
    text = re.sub(r"\((?:r|tm)\)|cpu @.*$|processor|\d+-core", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def device_slug(machine: dict[str, Any], device: str) -> str:
    """File-name label of the benchmarked device: ``cpu-amd-epyc-2c`` or ``gpu-nvidia-h100-80gb-hbm3``."""
    if device.startswith("cuda") and machine.get("gpu"):
        return f"gpu-{slug(machine['gpu']['name'])}"
    return f"cpu-{slug(machine['cpu'])}-{machine['cpu_cores']}c"
