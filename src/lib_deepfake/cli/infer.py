"""lib-infer: scan videos for face forgeries (placeholder until the pipeline lands)."""

from __future__ import annotations

import sys

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("inputs", nargs=-1)
def main(inputs: tuple[str, ...]) -> None:
    """Scan INPUT videos/folders for face forgeries. Not available yet in this build."""
    click.echo("lib-infer: not implemented yet in this build", err=True)
    sys.exit(2)
