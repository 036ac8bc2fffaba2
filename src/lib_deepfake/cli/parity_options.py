"""Click options and output shared by every command that checks parity (lib-export to-onnx, quantize, verify;
lib-bench engines): ``--parity-tol`` limits and ``--crops`` inputs, and the one-line parity summary."""

from __future__ import annotations

from pathlib import Path

import click


def _parse_tolerance(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from lib_deepfake.engines.parity import parse_tolerance
    from lib_deepfake.errors import LibDeepfakeError

    try:
        parse_tolerance(value)
    except LibDeepfakeError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


#: --parity-tol, shared by every command that checks parity (verify calls it --tolerance too)
PARITY_TOL_HELP = (
    "Parity limits replacing the precision's defaults, as KEY=VALUE[,...] with KEY in max_dlogit, mean_dlogit, "
    "max_dprob, mean_dprob, agreement (VALUE a number or none); recorded in the manifest."
)
CROPS_HELP = (
    "Check parity on these face crops (a folder of images, searched recursively, or a uint8 [N,S,S,3] .npy/.pt) "
    "instead of the bundled face-crop set."
)


def parity_tol_option(*names: str):  # noqa: ANN201 - click decorator
    return click.option(*names, "tolerance", default=None, callback=_parse_tolerance, metavar="KEY=VALUE[,...]",
                        help=PARITY_TOL_HELP)  # fmt: skip


def crops_option():  # noqa: ANN201 - click decorator
    return click.option("--crops", type=click.Path(exists=True, path_type=Path), default=None, help=CROPS_HELP)


def parity_line(parity: dict) -> str:
    """One line for a parity record: the figures over all crops, the inputs and the limits."""
    if parity.get("skipped"):
        return "skipped"
    from lib_deepfake.engines.parity import ParityReport, Tolerance

    inputs = "; ".join(parity.get("inputs", {}).values())
    limits = Tolerance(**parity["tolerance"]).describe()
    return f"{ParityReport(**parity['overall']).summary()} ({inputs}); limits {limits}"
