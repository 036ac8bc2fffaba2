"""``lib-export to-trt`` and ``lib-export verify`` (registered on the lib-export group by :func:`register`).

Importing this module is cheap: TensorRT, ONNX Runtime and torch are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options
from lib_deepfake.cli.parity_options import crops_option, parity_tol_option

_ARTIFACT = click.Path(exists=True, dir_okay=False, path_type=Path)


def _print_report(report: dict) -> None:
    from lib_deepfake.cli.parity_options import parity_line

    click.echo(f"  {parity_line(report['parity'])}")
    click.echo(f"{'PASS' if report['passed'] else 'FAIL'} against the PyTorch FP32 reference")


def _run_verify(artifact: Path, reference: Path, json_out: Path | None, **kwargs: object) -> None:
    from lib_deepfake.engines.parity import raise_for_parity
    from lib_deepfake.export.verify import verify_artifact

    report = verify_artifact(artifact, reference, **kwargs).to_dict()  # type: ignore[arg-type]
    if json_out is not None:
        from lib_deepfake.atomic import write_json_atomic

        write_json_atomic(json_out, report)
    click.echo(f"verify {artifact.name} ({report['engine']['engine']} {report['engine']['precision']} on "
               f"{report['device']}) against {reference.name}:")  # fmt: skip
    _print_report(report)
    raise_for_parity(report["parity"], f"{artifact.name} disagrees with the PyTorch FP32 reference")


@click.command("to-trt", context_settings=CONTEXT_SETTINGS)
@click.argument("source", type=_ARTIFACT)
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .plan (or .engine) to write; the manifest goes to OUTPUT.json.")  # fmt: skip
@click.option("--precision", type=click.Choice(["fp16", "fp32"]), default="fp16", help="Plan precision.")
@click.option("--min-batch", default=1, type=click.IntRange(1, None), help="Optimisation profile: smallest batch.")
@click.option("--opt-batch", default=64, type=click.IntRange(1, None), help="Optimisation profile: tuned batch.")
@click.option("--max-batch", default=256, type=click.IntRange(1, None),
              help="Optimisation profile: largest batch (the engine splits larger ones).")  # fmt: skip
@click.option("--workspace-gib", default=4.0, type=click.FloatRange(0.01, None), help="Builder workspace limit.")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Kernel timing cache to reuse and update (faster rebuilds on the same GPU).")  # fmt: skip
@click.option("--builder-opt-level", default=3, type=click.IntRange(0, 5), help="TensorRT builder optimisation level.")
@click.option("--version-compatible", is_flag=True,
              help="Build a version-compatible plan: it runs on later TensorRT versions and on the lean runtime "
                   "(pip install 'lib-deepfake[trt-lean]'); may run slower.")  # fmt: skip
@click.option("--exclude-lean-runtime", is_flag=True,
              help="With --version-compatible: leave the lean runtime out of the plan (smaller; runs only with the "
                   "same TensorRT version).")  # fmt: skip
@click.option("--device", default="cuda:0", help="GPU to build for.")
@click.option("--official-size", type=click.IntRange(16, 2048), default=None,
              help="Crop size of an official-format checkpoint (they do not record it) [224].")  # fmt: skip
@click.option("--verify/--no-verify", default=True,
              help="After building from a checkpoint, compare the plan with the PyTorch FP32 reference.")  # fmt: skip
@verbosity_options
@handle_errors
def to_trt(source: Path, out: Path, precision: str, min_batch: int, opt_batch: int, max_batch: int,
           workspace_gib: float, timing_cache: Path | None, builder_opt_level: int, version_compatible: bool,
           exclude_lean_runtime: bool, device: str, official_size: int | None, verify: bool, verbose: int,
           quiet: bool) -> None:  # fmt: skip
    """Build a TensorRT plan from SOURCE (a checkpoint, exported to ONNX on the way, or an ONNX from to-onnx).

    TensorRT 10 builds FP16 from the FP32 ONNX with the FP16 builder flag; TensorRT 11 (strongly typed, no FP16
    flag) builds from the FP16 ONNX, which is exported automatically from a checkpoint. The manifest records the
    GPU, its compute capability, the TensorRT version, the profile, the precision, whether the plan is
    version-compatible and what became of the timing cache; the trt engine refuses to run the plan where it cannot.
    A timing cache TensorRT refuses (another GPU or version) is set aside as TIMING_CACHE.rejected and the build
    starts from a fresh one.
    """
    from lib_deepfake.export.trt_build import TrtBuildConfig, build_engine

    config = TrtBuildConfig(
        min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch, workspace_gib=workspace_gib,
        timing_cache=timing_cache, builder_opt_level=builder_opt_level, precision=precision,
        version_compatible=version_compatible, exclude_lean_runtime=exclude_lean_runtime,
    )  # fmt: skip
    result = build_engine(source, out, config, device=device, official_input_size=official_size)
    extra = result.manifest.extra
    compat = ", version-compatible" if extra.get("version_compatible") else ""
    click.echo(f"wrote {result.path} ({result.manifest.precision}{compat}, TensorRT {extra['tensorrt']}, "
               f"{extra['gpu_name']} sm {extra['compute_capability']}, profile {min_batch}/{opt_batch}/{max_batch}) "
               f"in {result.build_s:.1f} s from {result.onnx_path.name}")  # fmt: skip
    from lib_deepfake.export.manifest_card import threshold_text

    click.echo(f"model card: {threshold_text(extra)}")
    cache = extra.get("timing_cache") or {}
    if cache.get("status") == "rejected":
        click.echo(f"note: TensorRT refused the timing cache {cache['path']} (another GPU or TensorRT version); "
                   f"built with a fresh one, the old one is {cache['path']}.rejected")  # fmt: skip
    if verify and source.suffix != ".onnx":
        _run_verify(result.path, source, None, device=device, official_input_size=official_size)


@click.command("verify", context_settings=CONTEXT_SETTINGS)
@click.argument("artifact", type=_ARTIFACT)
@click.option("--reference", required=True, type=_ARTIFACT, help="The checkpoint the artifact was made from.")
@click.option("--device", default="cpu", help="Where both run (cuda for TensorRT plans).")
@click.option("--samples", default=None, type=click.IntRange(1, None), help="At most this many face crops [all].")
@crops_option()
@click.option("--batch", default=16, type=click.IntRange(1, None), help="Batch size.")
@parity_tol_option("--parity-tol", "--tolerance")
@click.option("--provider", type=click.Choice(["cpu", "cuda", "tensorrt"]), default=None,
              help="ONNX Runtime provider [default: from --device].")  # fmt: skip
@click.option("--allow-cpu-fallback", is_flag=True, help="ONNX Runtime: run on CPU if the GPU provider is missing.")
@click.option(
    "--engine",
    "engine_name",
    default=None,
    help="Engine to run ARTIFACT with (e.g. openvino for a .onnx) [default: from the suffix].",
)
@click.option("--precision", type=click.Choice(["fp32", "bf16", "int8"]), default=None,
              help="openvino: precision to run [default: the artifact's].")  # fmt: skip
@click.option("--official-size", type=click.IntRange(16, 2048), default=None,
              help="Crop size of an official-format reference checkpoint [224].")  # fmt: skip
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report as JSON.")  # fmt: skip
@verbosity_options
@handle_errors
def verify(artifact: Path, reference: Path, device: str, samples: int | None, crops: Path | None, batch: int,
           tolerance: str | None, provider: str | None, allow_cpu_fallback: bool,
           engine_name: str | None, precision: str | None, official_size: int | None, json_out: Path | None,
           verbose: int, quiet: bool) -> None:  # fmt: skip
    """Run ARTIFACT (.onnx, .plan) and the PyTorch FP32 reference on the same face crops and compare them.

    The crops are the bundled face-crop set, or yours with --crops. Reports max and mean |dlogit| (log-odds) and
    |dprob_fake| and decision agreement at 0.5; exits with status 1 past the limits of the artifact's precision
    (or --parity-tol).
    """
    from lib_deepfake.engines.registry import engine_for_artifact

    name = engine_name or engine_for_artifact(artifact)
    options: dict[str, object] = {"engine": engine_name}
    if name == "onnxrt":
        options.update(provider=provider, allow_cpu_fallback=allow_cpu_fallback or None)
    elif name == "openvino":
        options["precision"] = precision
    _run_verify(artifact, reference, json_out, device=device, samples=samples, batch=batch, crops=crops,
                tolerance=tolerance, official_input_size=official_size,
                **{k: v for k, v in options.items() if v is not None})  # fmt: skip


def register(group: click.Group) -> None:
    """Add ``to-trt`` and ``verify`` to the ``lib-export`` group."""
    group.add_command(to_trt)
    group.add_command(verify)
