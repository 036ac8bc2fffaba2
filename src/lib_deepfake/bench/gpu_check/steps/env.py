"""Step ``env``: GPU, driver, CUDA, torch, which of onnxruntime-gpu / TensorRT / DALI import *and work*, libnvcuvid.

A GPU run without a usable CUDA device stops after this step (the runner skips the rest with one reason).
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from lib_deepfake.bench.gpu_check.checks import check, guarded_probe
from lib_deepfake.bench.gpu_check.harness import run_cmd, tail
from lib_deepfake.bench.gpu_check.probes import (
    PY_MODULES,
    find_nvcuvid,
    has,
    module_versions,
    probe_dali,
    probe_ort_cuda,
    probe_tensorrt,
)

if TYPE_CHECKING:
    from lib_deepfake.bench.gpu_check.profiles import Profile


def step_env(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    import torch

    from lib_deepfake.bench.env import env_report
    from lib_deepfake.bench.machine import machine_info

    on_gpu = profile.device.startswith("cuda")
    cuda_ok = torch.cuda.is_available()
    checks: list[dict[str, Any]] = []
    data: dict[str, Any] = {"machine": machine_info(profile.device if cuda_ok else "cpu")}
    data["torch"] = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": cuda_ok,
        "device_count": torch.cuda.device_count() if cuda_ok else 0,
        "cudnn": torch.backends.cudnn.version() if cuda_ok else None,
        # The "FP32" reference uses TF32 in convolutions when this is on (PyTorch's default for cuDNN convs).
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }
    code, smi = (None, "")
    if shutil.which("nvidia-smi"):
        code, smi = run_cmd(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"],
            timeout=20,
        )
    data["nvidia_smi"] = smi.strip() if code == 0 else None
    data["modules"] = module_versions()
    data["tools"] = {t: shutil.which(t) for t in ("cmake", "ctest", "nvcc", "ninja", "ffmpeg")}
    if data["tools"]["nvcc"]:
        _, nvcc = run_cmd(["nvcc", "--version"], timeout=20)
        data["tools"]["nvcc_version"] = tail(nvcc, 1)
    data["nvcuvid"] = find_nvcuvid()
    try:
        data["lib_bench_env"] = env_report(profile.device if (cuda_ok or not on_gpu) else "cpu")
    except Exception as exc:  # noqa: BLE001 - reported
        data["lib_bench_env"] = {"error": f"{type(exc).__name__}: {exc}"}

    gpu = data["machine"].get("gpu")
    if on_gpu:
        if cuda_ok and gpu:
            checks.append(
                check(
                    "cuda device",
                    "pass",
                    f"{gpu['name']} (sm {gpu['compute_capability']}, "
                    f"{gpu['memory_gib']} GiB), driver {gpu.get('driver')}, CUDA {gpu['cuda']}",
                )
            )

            def matmul() -> dict[str, Any]:
                a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
                diff = float((a.cuda() @ a.cuda()).cpu().sub(a @ a).abs().max())
                return {"ok": diff < 1e-9, "reason": f"float64 matmul cuda vs cpu max diff {diff:.2e}"}

            mm = guarded_probe(matmul)
            checks.append(check("torch cuda compute", "pass" if mm["ok"] else "fail", mm["reason"]))
        else:
            checks.append(check("cuda device", "fail", "torch sees no CUDA device (use --dry-run on a CPU machine)"))
    else:
        checks.append(check("cuda device", "skip", "dry run: CPU only" + (" (a GPU is visible)" if cuda_ok else "")))

    ort: dict[str, Any]
    if has("onnxruntime") and has("onnx"):
        ort = (
            guarded_probe(probe_ort_cuda)
            if (on_gpu and cuda_ok)
            else {"ok": False, "reason": "dry run: no CUDA EP used"}
        )
        data["onnxruntime_cuda"] = ort
    else:
        ort = {"ok": False, "reason": "onnxruntime (or onnx) not installed"}
        data["onnxruntime_cuda"] = ort
    checks.append(check("onnxruntime CUDA provider", "pass" if ort["ok"] else "skip", ort["reason"]))

    trt: dict[str, Any] = (
        guarded_probe(probe_tensorrt) if has("tensorrt") else {"ok": False, "reason": "tensorrt not installed"}
    )
    if trt["ok"] is False and on_gpu and has("tensorrt") and "stubs" not in trt["reason"]:
        checks.append(check("tensorrt", "fail", trt["reason"]))  # installed but broken: worth a red line
    else:
        checks.append(check("tensorrt", "pass" if trt["ok"] else "skip", trt["reason"]))
    data["tensorrt"] = trt

    if has("nvidia.dali"):
        dali = guarded_probe(lambda: probe_dali(profile.device if cuda_ok else "cpu"))
        checks.append(check("dali", "pass" if dali["ok"] else "fail", dali["reason"]))
    else:
        dali = {"ok": False, "reason": "nvidia.dali not installed"}
        checks.append(check("dali", "skip", dali["reason"]))
    data["dali"] = dali

    nv = data["nvcuvid"]
    where = nv["dlopen"] or ", ".join(nv["ldconfig"])
    checks.append(
        check(
            "libnvcuvid (NVDEC)",
            "pass" if nv["ok"] else "skip",
            f"found: {where}" if nv["ok"] else "libnvcuvid.so not found (DALI NVDEC needs it)",
        )
    )
    missing = [PY_MODULES[m] for m in ("click", "av", "pytest", "onnx") if data["modules"].get(m) is None]
    if missing:
        checks.append(check("python packages", "skip", "missing (add wheels to --wheels): " + ", ".join(missing)))
    ctx_update: dict[str, Any] = {"ort_cuda_ok": bool(ort["ok"]), "trt_ok": bool(trt["ok"])}
    if gpu:
        ctx_update.update(gpu_name=gpu["name"], compute_capability=gpu["compute_capability"])
    head = f"{gpu['name']}, driver {gpu.get('driver')}, CUDA {gpu['cuda']}" if gpu else "no GPU"
    flags = ", ".join(
        f"{name} {'yes' if ok else 'no'}"
        for name, ok in (("ORT-CUDA", ort["ok"]), ("TRT", trt["ok"]), ("DALI", dali["ok"]), ("nvcuvid", nv["ok"]))
    )
    return {
        "checks": checks,
        "data": data,
        "summary": f"{head}; torch {torch.__version__}; {flags}",
        "context": ctx_update,
    }
