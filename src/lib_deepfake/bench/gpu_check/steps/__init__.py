"""The table of GPU-check steps, in the order they run.

A step is a function ``(ctx, profile) -> {"checks": [...], "data": {...}, "summary": str, "context": {...}}`` in a
module of its own that imports nothing heavy at module level (its child process must start even where torch is
broken, and record that). ``checks`` come from :func:`lib_deepfake.bench.gpu_check.checks.check`; the step's
status follows from them. ``context`` is merged into the context of the steps after it (the env step passes the
card's compute capability to the native build, the engines step its checkpoint to lib-infer).

To add a step: write its module here and add one :class:`Step` row to :data:`STEP_TABLE` with its time limit in
each profile; ``lib-bench gpu-check --steps`` and the report pick it up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lib_deepfake.bench.gpu_check.steps.crops import step_crops
from lib_deepfake.bench.gpu_check.steps.decode import step_decode
from lib_deepfake.bench.gpu_check.steps.engines import step_engines
from lib_deepfake.bench.gpu_check.steps.env import step_env
from lib_deepfake.bench.gpu_check.steps.infer import step_infer
from lib_deepfake.bench.gpu_check.steps.marked_tests import step_pytest
from lib_deepfake.bench.gpu_check.steps.native import step_native

if TYPE_CHECKING:
    from lib_deepfake.bench.gpu_check.profiles import Profile


@dataclass(frozen=True)
class Step:
    """One row of the step table.

    Attributes:
        name: what ``--steps``/``--skip`` and the report call it.
        run: the step function (runs in a child process).
        limit_s: time limit in seconds per profile name (``gpu``, ``dry-run``); the run's budget can cut it.
        about: one line for ``--help`` and the docs.
    """

    name: str
    run: Callable[[dict[str, Any], Profile], dict[str, Any]]
    limit_s: dict[str, float]
    about: str


STEP_TABLE: dict[str, Step] = {
    s.name: s
    for s in (
        Step("env", step_env, {"gpu": 60, "dry-run": 60},
             "GPU, driver, CUDA, torch; which of onnxruntime-gpu / TensorRT / DALI import and work; libnvcuvid"),
        Step("native", step_native, {"gpu": 120, "dry-run": 120},
             "native crop library built with CMake (CUDA when nvcc is there), ctest"),
        Step("pytest", step_pytest, {"gpu": 120, "dry-run": 120}, "the tests marked gpu, trt or dali"),
        Step("engines", step_engines, {"gpu": 150, "dry-run": 180},
             "lib-bench engines: FP16/channels_last/CUDA graphs, ONNX Runtime CUDA, TensorRT vs the FP32 reference"),
        Step("crops", step_crops, {"gpu": 45, "dry-run": 60},
             "native CUDA crop kernel (RGB, NV12) vs the C++ reference, byte for byte; crops/s"),
        Step("decode", step_decode, {"gpu": 60, "dry-run": 90},
             "1080p H.264 clip: DALI/NVDEC vs PyAV frames/s, frame identity checked"),
        Step("infer", step_infer, {"gpu": 120, "dry-run": 150},
             "lib-infer on a generated corpus: GPU scores vs the CPU path"),
    )
}  # fmt: skip

#: step names in run order
STEPS = tuple(STEP_TABLE)


def step_limits(profile_name: str) -> dict[str, float]:
    """Step name -> time limit in seconds for the profile called ``profile_name``."""
    return {s.name: s.limit_s[profile_name] for s in STEP_TABLE.values()}
