"""The GPU verification kit: prove the GPU paths on an NVIDIA machine in minutes (``lib-bench gpu-check``, or
``bench/gpu_check.sh`` which installs offline wheels first), or run the same steps on CPU as a dry run so the kit
cannot rot.

Steps (the table in :mod:`.steps`; each in its own child process with its own time limit, so a crash, a hang or a
missing library in one step is recorded and the others still run):

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

Modules: :mod:`.profiles` (sizes, limits), :mod:`.steps` (the step table and one module per step),
:mod:`.harness` (subprocesses with deadlines), :mod:`.child` (a step's process), :mod:`.runner` (the run),
:mod:`.report` (JSON label, markdown). Nothing heavy is imported at import time: the parent process needs only the
standard library, so it can report a broken torch or a missing package instead of dying on it.
"""

from __future__ import annotations

from lib_deepfake.bench.gpu_check.checks import STATUSES, check, step_status
from lib_deepfake.bench.gpu_check.harness import run_cmd
from lib_deepfake.bench.gpu_check.profiles import DRY_PROFILE, GPU_PROFILE, PROFILES, Profile, profile_from_dict
from lib_deepfake.bench.gpu_check.report import SCHEMA, device_label, short_table, to_markdown
from lib_deepfake.bench.gpu_check.runner import run_gpu_check
from lib_deepfake.bench.gpu_check.steps import STEP_TABLE, STEPS, Step

__all__ = [
    "DRY_PROFILE",
    "GPU_PROFILE",
    "PROFILES",
    "SCHEMA",
    "STATUSES",
    "STEPS",
    "STEP_TABLE",
    "Profile",
    "Step",
    "check",
    "device_label",
    "profile_from_dict",
    "run_cmd",
    "run_gpu_check",
    "short_table",
    "step_status",
    "to_markdown",
]
