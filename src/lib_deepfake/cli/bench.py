"""lib-bench: benchmarks of the engines (against the PyTorch reference), decoders, face crops, detectors, the whole
scan pipeline, Ray scans and the training step; an ``env`` report of what can run here; the GPU verification kit.

Every subcommand lives in a module of its own, named in :data:`COMMANDS` and imported only when that command runs
or shows its help (:class:`~lib_deepfake.cli.lazy_group.LazyGroup`), so ``lib-bench --help`` imports none of them
and needs neither onnxruntime, TensorRT, DALI nor Ray. Also runnable as ``python -m lib_deepfake.cli.bench``.
"""

from __future__ import annotations

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS
from lib_deepfake.cli.lazy_group import LazyCommand, LazyGroup

#: subcommand -> where it lives and its line in ``lib-bench --help`` (a test checks the line matches the command)
COMMANDS: dict[str, LazyCommand] = {
    "engines": LazyCommand(
        "lib_deepfake.cli.bench_engines:engines_cmd",
        "Throughput (faces/s) and latency p50/p90/p99 of each engine x precision x batch size, next to the FP32 "
        "eager PyTorch reference, after a parity check on identical inputs.",
    ),
    "env": LazyCommand(
        "lib_deepfake.cli.bench_env:env_cmd",
        "Which engines, ONNX Runtime providers, decoders, face detector and crop backend are usable here, and why "
        "not where they aren't.",
    ),
    "decode": LazyCommand(
        "lib_deepfake.cli.bench_components:decode_cmd",
        "Decode throughput per clip and sampling plan (PyAV on CPU; DALI where it can decode).",
    ),
    "crops": LazyCommand(
        "lib_deepfake.cli.bench_components:crops_cmd", "Face crops/s of the native crop library and the torch path."
    ),
    "detect": LazyCommand("lib_deepfake.cli.bench_components:detect_cmd", "Face-detector frames/s per batch size."),
    "pipeline": LazyCommand(
        "lib_deepfake.cli.bench_pipeline:pipeline_cmd",
        "Videos/s and decoded frames per video of our scan pipeline (fp32, best and shortcut rows) against a fair "
        "PyTorch reference pipeline, in interleaved rounds, with each row's accuracy effect.",
    ),
    "ray": LazyCommand(
        "lib_deepfake.cli.bench_ray:ray_cmd",
        "Ray scan vs local scan of one synthetic corpus on this machine: wall time, Ray start-up, first-row "
        "latency, steady videos/s and row agreement.",
    ),
    "train": LazyCommand(
        "lib_deepfake.cli.bench_train:train_cmd",
        "Training-step throughput (uint8 faces -> normalise -> mixup -> forward -> LIB losses -> auto balance -> "
        "backward -> AdamW step): p50/p90 step time and images/s, synchronised, after warm-up.",
    ),
    "grouped": LazyCommand(
        "lib_deepfake.cli.bench_grouped:grouped_cmd",
        "The N backbones as one network of grouped convolutions against the ordinary ONNX export: parity of both on "
        "face crops against PyTorch FP32, then interleaved timing per engine and precision; says whether the grouped "
        "graph is faster at equal parity.",
    ),
    "scale": LazyCommand(
        "lib_deepfake.cli.bench_scale:scale_cmd",
        "Scan collections of N small clips (a share of them copies) with lib-infer, one process per N: videos/s, peak "
        "memory, copies found, report size, the report's load time in headless Chromium and the start-up of --resume.",
    ),
    "gpu-check": LazyCommand(
        "lib_deepfake.cli.bench_gpu_check:gpu_check_cmd",
        "Prove the GPU paths here in about 6 minutes: environment, native build + ctest, the gpu/trt/dali tests, "
        "engines vs the FP32 reference, native crop kernel vs C++, NVDEC vs PyAV decode, lib-infer GPU vs CPU.",
    ),
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings=CONTEXT_SETTINGS,
             epilog="Reference: docs/benchmarks.md")  # fmt: skip
def main() -> None:
    """Benchmark lib-deepfake's engines, decoders, face crops, detectors, scan pipeline, Ray scans and training
    step, with the machine named in every result; `lib-bench env` says what can run here, `lib-bench gpu-check`
    proves the GPU paths."""


if __name__ == "__main__":
    main(prog_name="lib-bench")
