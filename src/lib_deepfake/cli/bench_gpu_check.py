"""``lib-bench gpu-check``: the GPU verification kit (``bench/gpu_check.sh`` without the wheel installation).

Registered on the ``lib-bench`` group by :func:`register`; importing this module is cheap (click only).
"""

from __future__ import annotations

from pathlib import Path

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options

_STEPS = ("env", "native", "pytest", "engines", "crops", "decode", "infer")  # lib_deepfake.bench.gpu_check.STEPS


@click.command("gpu-check", context_settings=CONTEXT_SETTINGS)
@click.option("--out", default=Path("bench/results/gpu-check"), type=click.Path(file_okay=False, path_type=Path),
              help="Result folder: gpu-check-<card>.json/.md, steps/, logs/.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="CPU: small inputs, GPU parts skipped or replaced (CI runs this).")
@click.option("--steps", default=",".join(_STEPS), help=f"Comma-separated subset of: {', '.join(_STEPS)}.")
@click.option("--skip", default="", help="Comma-separated steps to leave out.")
@click.option("--budget", type=click.FloatRange(30, None), default=None,
              help="Overall time limit in seconds [330 on a GPU, 420 (a cap) for --dry-run].")  # fmt: skip
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Scratch folder for checkpoints, ONNX files and clips [build/gpu-check/<mode>].")  # fmt: skip
@verbosity_options
@handle_errors
def gpu_check_cmd(out: Path, dry_run: bool, steps: str, skip: str, budget: float | None, work: Path | None,
                  verbose: int, quiet: bool) -> None:  # fmt: skip
    """Prove the GPU paths here in about 6 minutes: environment, native build + ctest, the gpu/trt/dali tests,
    engines vs the FP32 reference, native crop kernel vs C++, NVDEC vs PyAV decode, lib-infer GPU vs CPU.

    Offline wheel installs (onnxruntime-gpu, DALI) are done by bench/gpu_check.sh --wheels DIR. Exit status 1 when
    a step failed; skipped steps (missing optional runtimes) do not fail the check.
    """
    from lib_deepfake.bench.gpu_check import run_gpu_check, short_table
    from lib_deepfake.errors import LibDeepfakeError

    chosen = [s.strip() for s in steps.split(",") if s.strip()]
    unknown = [s for s in chosen + [s.strip() for s in skip.split(",") if s.strip()] if s not in _STEPS]
    if unknown:
        raise click.BadParameter(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(_STEPS)}")
    dropped = {s.strip() for s in skip.split(",") if s.strip()}
    echo = (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))
    result = run_gpu_check(out, dry_run=dry_run, steps=tuple(s for s in chosen if s not in dropped),
                           budget_s=budget, work=work, echo=echo)  # fmt: skip
    click.echo(f"wrote {', '.join(result['files'])}", err=True)
    click.echo(short_table(result))
    if not result["passed"]:
        raise LibDeepfakeError(f"gpu-check failed: {', '.join(result['failed_steps'])} (details in {out})")


def register(group: click.Group) -> None:
    """Add ``gpu-check`` to the ``lib-bench`` group."""
    group.add_command(gpu_check_cmd)
