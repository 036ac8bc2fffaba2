"""``lib-bench env``: which engines, providers, decoders, detector and crop backend can run here."""

from __future__ import annotations

import json

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options


@click.command("env", context_settings=CONTEXT_SETTINGS)
@click.option("--device", default="cpu", help="Judge availability for this device (cpu or cuda[:N]).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@verbosity_options
@handle_errors
def env_cmd(device: str, as_json: bool, verbose: int, quiet: bool) -> None:
    """Which engines, ONNX Runtime providers, decoders, face detector and crop backend are usable here, and why
    not where they aren't."""
    from lib_deepfake.bench.env import env_report, format_env

    report = env_report(device)
    click.echo(json.dumps(report, indent=2, default=str) if as_json else format_env(report))
