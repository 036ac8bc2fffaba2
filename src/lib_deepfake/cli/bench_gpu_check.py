"""``lib-bench gpu-check``: the GPU verification kit (``bench/gpu_check.sh`` installs offline wheels, then runs this).

Imports click and the step table (standard library only); the steps run in child processes.
"""

from __future__ import annotations

from pathlib import Path

import click

from lib_deepfake.bench.gpu_check.steps import STEP_TABLE, STEPS
from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options


def _step_names(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in names if s not in STEP_TABLE]
    if unknown:
        raise click.BadParameter(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    return names


# \b keeps click from rewrapping the table
_STEP_LIST = "\b\n" + "\n".join(f"{s.name:<8} {s.about}" for s in STEP_TABLE.values())


@click.command(
    "gpu-check",
    context_settings=CONTEXT_SETTINGS,
    epilog=f"Steps, in order:\n\n{_STEP_LIST}\n\nReference: docs/gpu-check.md",
)
@click.option("--out", default=Path("bench/results/gpu-check"), type=click.Path(file_okay=False, path_type=Path),
              help="Result folder: gpu-check-<card>.json/.md, steps/, logs/.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="CPU: small inputs, GPU parts skipped or replaced (CI runs this).")
@click.option("--steps", default=",".join(STEPS), callback=_step_names,
              help=f"Comma-separated subset of: {', '.join(STEPS)}.")  # fmt: skip
@click.option("--skip", default="", callback=_step_names, help="Comma-separated steps to leave out.")
@click.option("--budget", type=click.FloatRange(30, None), default=None,
              help="Overall time limit in seconds [330 on a GPU, 420 (a cap) for --dry-run].")  # fmt: skip
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Source tree (pyproject.toml, CMakeLists.txt, tests/) [the checkout this package runs from, "
              "else the current folder].")  # fmt: skip
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Scratch folder for checkpoints, ONNX files and clips [REPO/build/gpu-check/<mode>].")  # fmt: skip
@verbosity_options
@handle_errors
def gpu_check_cmd(out: Path, dry_run: bool, steps: tuple[str, ...], skip: tuple[str, ...], budget: float | None,
                  repo: Path | None, work: Path | None, verbose: int, quiet: bool) -> None:  # fmt: skip
    """Prove the GPU paths here in about 6 minutes: environment, native build + ctest, the gpu/trt/dali tests,
    engines vs the FP32 reference, native crop kernel vs C++, NVDEC vs PyAV decode, lib-infer GPU vs CPU.

    Offline wheel installs (onnxruntime-gpu, DALI) are done by bench/gpu_check.sh --wheels DIR. Prints the step
    table, then PASSED or FAILED. Exit status 1 when a step failed; skipped steps (missing optional runtimes) do not
    fail the check.
    """
    from lib_deepfake.bench.gpu_check.report import short_table
    from lib_deepfake.bench.gpu_check.runner import run_gpu_check
    from lib_deepfake.errors import LibDeepfakeError

    echo = (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))
    result = run_gpu_check(out, dry_run=dry_run, steps=tuple(s for s in steps if s not in skip), budget_s=budget,
                           repo=repo, work=work, echo=echo)  # fmt: skip
    click.echo(f"wrote {', '.join(result['files'])}", err=True)
    click.echo(short_table(result))
    click.echo("")
    click.echo("PASSED" if result["passed"] else f"FAILED: {', '.join(result['failed_steps'])}")
    if not result["passed"]:
        raise LibDeepfakeError(f"gpu-check failed: {', '.join(result['failed_steps'])} (details in {out})")
