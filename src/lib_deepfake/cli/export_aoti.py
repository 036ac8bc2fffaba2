"""``lib-export to-aoti`` and ``lib-export quantize-openvino`` (registered on the lib-export group by
:func:`register`): the compiled engines beside ONNX and TensorRT.

Importing this module is cheap: torch's compiler, OpenVINO and NNCF are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options
from lib_deepfake.cli.parity_options import crops_option, parity_line, parity_tol_option

_IN_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_OUT_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command("to-aoti", context_settings=CONTEXT_SETTINGS)
@click.argument("checkpoint", type=_IN_FILE)
@click.option("-o", "--output", "out", required=True, type=_OUT_FILE,
              help="The .pt2 package to write (the manifest goes to OUTPUT.json).")  # fmt: skip
@click.option("--device", default="cpu", help="Where the package will run: cuda[:N] (FP16, the GPU mode) or cpu.")
@click.option(
    "--precision",
    type=click.Choice(["fp16", "fp32"]),
    default=None,
    help="Network precision [fp16 on CUDA, fp32 on CPU]; uint8 input, normalisation and softmax stay FP32.",
)
@click.option(
    "--max-batch",
    default=4096,
    type=click.IntRange(1, 4096),
    show_default=True,
    help="Largest batch the package takes (the batch axis is dynamic from 1; larger calls are split).",
)
@click.option("--opt-batch", type=click.IntRange(1, 4096), default=None,
              help="Batch size the kernels are chosen and tuned for [256 on CUDA, 16 on CPU].")  # fmt: skip
@click.option("--official-size", type=click.IntRange(16, 2048), default=None,
              help="Crop size of an official-format checkpoint [224].")  # fmt: skip
@click.option("--skip-parity", is_flag=True, help="Do not compare with the PyTorch FP32 model (not advised).")
@verbosity_options
@handle_errors
def to_aoti(checkpoint: Path, out: Path, device: str, precision: str | None, max_batch: int, opt_batch: int | None,
            official_size: int | None, skip_parity: bool, verbose: int, quiet: bool) -> None:  # fmt: skip
    """Compile CHECKPOINT ahead of time with torch.export + AOTInductor: input `faces` uint8 [N,S,S,3] RGB, output
    `prob_fake` float32 [N], preprocessing inside, dynamic batch.

    On CUDA the kernels are tuned on this GPU (max-autotune) and the package runs only with this torch version on
    GPUs of the same architecture (the aoti engine refuses others, as the manifest says what it was built for).
    The package is compared with the PyTorch FP32 model on face crops and removed when it disagrees.
    """
    from lib_deepfake.export.aoti import export_aoti
    from lib_deepfake.export.manifest_card import threshold_text

    result = export_aoti(checkpoint, out, device=device, precision=precision, max_batch=max_batch,
                         opt_batch=opt_batch, official_input_size=official_size,
                         check_parity=not skip_parity)  # fmt: skip
    diff = parity_line(result.manifest.extra["parity"])
    click.echo(f"wrote {result.path} ({result.manifest.precision}, {result.manifest.extra['device']}, "
               f"{result.path.stat().st_size / 1e6:.1f} MB, compiled in {result.compile_s:.0f} s); parity: {diff}; "
               f"manifest: {result.path.name}.json")  # fmt: skip
    click.echo(f"model card: {threshold_text(result.manifest.extra)}")


@click.command("quantize-openvino", context_settings=CONTEXT_SETTINGS)
@click.argument("source", type=_IN_FILE)
@click.option("-o", "--output", "out", required=True, type=_OUT_FILE,
              help="The INT8 OpenVINO IR (.xml; .bin beside it; the manifest goes to OUTPUT.json).")  # fmt: skip
@click.option("--calibration", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder of face crops (PNG/JPG, searched recursively) to calibrate on [random crops: speed "
              "only].")  # fmt: skip
@click.option("--calibration-limit", default=256, type=click.IntRange(8, None), help="At most this many crops.")
@parity_tol_option("--parity-tol", "--parity-tolerance")
@crops_option()
@click.option("--preset", type=click.Choice(["performance", "mixed"]), default="performance", show_default=True,
              help="NNCF preset: symmetric int8 activations (fastest) or asymmetric (mixed).")  # fmt: skip
@verbosity_options
@handle_errors
def quantize_openvino(source: Path, out: Path, calibration: Path | None, calibration_limit: int,
                      tolerance: str | None, crops: Path | None, preset: str, verbose: int,
                      quiet: bool) -> None:  # fmt: skip
    """Quantize an FP32 ONNX from `to-onnx` to an INT8 OpenVINO IR with NNCF (the int8 artifact of the openvino
    engine; `lib-export quantize` makes the one for ONNX Runtime). Same uint8 input and float32 output.

    Up to 64 crops of --calibration are held out. The INT8 model is compared with the FP32 model (both run by
    OpenVINO) on face crops (the bundled set, or --crops) and on the held-out crops, and nothing is written when
    either set breaks the INT8 limits (see --parity-tol).
    """
    from lib_deepfake.export.manifest_card import threshold_text
    from lib_deepfake.export.openvino_int8 import quantize_openvino as run

    result = run(source, out, calibration=calibration, calibration_limit=calibration_limit, tolerance=tolerance,
                 crops=crops, preset=preset)  # fmt: skip
    quant = result.manifest.extra["quantization"]
    click.echo(
        f"wrote {result.path} (int8, {quant['tool']}); parity vs FP32: "
        f"{parity_line(result.manifest.extra['parity'])}; calibration: {quant['calibration']['source']}"
    )
    click.echo(f"model card: {threshold_text(result.manifest.extra)}")


def register(group: click.Group) -> None:
    """Add ``to-aoti`` and ``quantize-openvino`` to the ``lib-export`` group."""
    group.add_command(to_aoti)
    group.add_command(quantize_openvino)
