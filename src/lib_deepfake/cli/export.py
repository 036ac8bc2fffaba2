"""lib-export: turn checkpoints into deployable artifacts (ONNX, TensorRT plans) and verify them."""

from __future__ import annotations

from pathlib import Path

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options
from lib_deepfake.cli.parity_options import crops_option, parity_line, parity_tol_option


def _parse_batch(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    if value == "dynamic":
        return None
    try:
        batch = int(value)
    except ValueError:
        raise click.BadParameter("expected 'dynamic' or a positive integer") from None
    if batch < 1:
        raise click.BadParameter("expected 'dynamic' or a positive integer")
    return batch


@click.group(context_settings=CONTEXT_SETTINGS)
def main() -> None:
    """Export LIB checkpoints (ours or the official code's) to ONNX and TensorRT, with a JSON manifest beside
    every artifact, and verify artifacts against the PyTorch reference."""


@main.command("to-onnx", context_settings=CONTEXT_SETTINGS)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The .onnx file to write (the manifest goes to OUTPUT.json).",
)
@click.option("--fp16", is_flag=True, help="Compute the network in FP16 (uint8 input and float32 output kept).")
@click.option("--opset", default=18, type=click.IntRange(18, None), help="ONNX opset (dynamo exporter: >= 18).")
@click.option("--batch", default="dynamic", callback=_parse_batch, help="'dynamic' or a fixed batch size.")
@click.option(
    "--size", type=click.IntRange(16, 2048), default=None, help="Crop size S to export for [default: the checkpoint's]."
)
@click.option(
    "--official-size",
    type=click.IntRange(16, 2048),
    default=None,
    help="Crop size that an official-format checkpoint was trained at (they do not record it) [224].",
)
@click.option("--skip-parity", is_flag=True, help="Do not compare against PyTorch with ONNX Runtime (not advised).")
@parity_tol_option("--parity-tol", "--parity-tolerance")
@crops_option()
@verbosity_options
@handle_errors
def to_onnx(
    checkpoint: Path,
    out: Path,
    fp16: bool,
    opset: int,
    batch: int | None,
    size: int | None,
    official_size: int | None,
    skip_parity: bool,
    tolerance: str | None,
    crops: Path | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Export CHECKPOINT to ONNX: input `faces` uint8 [N,S,S,3] RGB, output `prob_fake` float32 [N].

    Only the inference sub-graph is exported; channel order, /255 and mean/std are inside the graph. The result
    is checked with onnx.checker and compared with the PyTorch FP32 model on ONNX Runtime (CPU) on face crops
    (the bundled set, or --crops): log-odds and P(fake) differences and decision agreement at 0.5. Past the
    precision's limits (FP32: max |dlogit| 1e-3 and max |dprob| 1e-4; FP16: see --parity-tol) the file is removed
    and the command fails; the manifest records every figure.
    """
    from lib_deepfake.export.onnx_export import export_onnx

    result = export_onnx(
        checkpoint,
        out,
        fp16=fp16,
        opset=opset,
        batch=batch,
        size=size,
        official_input_size=official_size,
        check_parity=not skip_parity,
        parity_tolerance=tolerance,
        crops=crops,
    )
    click.echo(
        f"wrote {result.path} ({result.manifest.precision}, {result.path.stat().st_size / 1e6:.1f} MB); "
        f"parity vs PyTorch FP32: {parity_line(result.manifest.extra['parity'])}; manifest: {result.path.name}.json"
    )
    click.echo(_card_line(result.manifest.extra))


@main.command("quantize", context_settings=CONTEXT_SETTINGS)
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The INT8 .onnx file to write (the manifest goes to OUTPUT.json).",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of face crops (PNG/JPG, searched recursively) to calibrate on [random crops: speed only].",
)
@click.option("--calibration-limit", default=256, type=click.IntRange(8, None), help="At most this many crops.")
@parity_tol_option("--parity-tol", "--parity-tolerance")
@crops_option()
@verbosity_options
@handle_errors
def quantize(
    source: Path,
    out: Path,
    calibration: Path | None,
    calibration_limit: int,
    tolerance: str | None,
    crops: Path | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Quantize an FP32 ONNX from `to-onnx` to INT8 (QDQ) for CPUs: same uint8 input and float32 output.

    Calibrate on crops like the ones you will scan (e.g. a `lib-prep videos` crop folder, read in a seeded random
    order so that real and fake crops mix); up to 64 of them are held out. The result is compared with the FP32
    model on face crops (the bundled set, or --crops) and on the held-out crops, and removed when either set
    breaks the INT8 limits (see --parity-tol).
    """
    from lib_deepfake.export.quantize import quantize_int8

    result = quantize_int8(
        source, out, calibration=calibration, calibration_limit=calibration_limit, tolerance=tolerance, crops=crops
    )
    click.echo(
        f"wrote {result.path} (int8, {result.path.stat().st_size / 1e6:.1f} MB); parity vs FP32: "
        f"{parity_line(result.manifest.extra['parity'])}; calibration: "
        f"{result.manifest.extra['quantization']['calibration']['source']}"
    )
    click.echo(_card_line(result.manifest.extra))


def _card_line(extra: dict) -> str:
    """What the manifest says about the model card and the threshold lib-infer will use by default."""
    from lib_deepfake.export.manifest_card import threshold_text

    return f"model card: {threshold_text(extra)}"


def _register_optional_commands() -> None:
    # to-trt/verify and to-aoti/quantize-openvino live in their own modules; importing them is cheap (compilers and
    # runtimes are imported inside the commands). A broken module must fail here, loudly, not make commands vanish.
    from lib_deepfake.cli import export_aoti, export_trt

    export_trt.register(main)
    export_aoti.register(main)


_register_optional_commands()
