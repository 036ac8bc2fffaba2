"""The ``--ray`` options of ``lib-infer`` and the call that runs a scan on Ray instead of in-process.

Wiring (in ``cli/infer.py``)::

    from lib_deepfake.scale.cli import add_ray_options, run_ray_from_cli

    @click.command(...)
    ...
    @add_ray_options          # adds --ray, --ray-workers, --gpus-per-worker, --cpus-per-worker, --ray-retries
    @verbosity_options
    @handle_errors
    def main(inputs, ..., ray_address, ray_workers, gpus_per_worker, cpus_per_worker, ray_retries, ...):
        ...
        if ray_address is not None:
            summary = run_ray_from_cli(config, inputs, out_dir, ray_address=ray_address, ray_workers=ray_workers,
                                       gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
                                       ray_retries=ray_retries, resume=resume, overwrite=overwrite, labels=labels,
                                       all_files=all_files, on_outcome=on_outcome, verbose=verbose)
        else:
            summary = run_scan(...)

Nothing here imports Ray at module level: ``lib-infer --help`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def add_ray_options(func: F) -> F:
    """Click decorator: the scale-out options (all inert unless ``--ray`` is given)."""
    options = [
        click.option(
            "--ray",
            "ray_address",
            is_flag=False,
            flag_value="auto",
            default=None,
            metavar="[auto|local|ADDRESS]",
            help="Scan on Ray: auto (a running cluster, else a local one), local (a new one on this machine) or a "
            "cluster address (ray://head:10001, head:6379). Needs the 'ray' extra.",
        ),  # fmt: skip
        click.option(
            "--ray-workers",
            type=click.IntRange(1, None),
            default=None,
            help="Ray actors [default: one per GPU with --device cuda, one per 2 CPUs otherwise].",
        ),  # fmt: skip
        click.option(
            "--gpus-per-worker",
            type=click.FloatRange(0, None),
            default=None,
            help="GPUs per Ray actor (0.5: two actors share a GPU) [default: 1 with --device cuda].",
        ),  # fmt: skip
        click.option(
            "--cpus-per-worker",
            type=click.FloatRange(0, None, min_open=True),
            default=None,
            help="CPUs per Ray actor [default: an even share of the cluster's CPUs, at most 2 (CPU) / 4 (GPU)].",
        ),  # fmt: skip
        click.option(
            "--ray-retries",
            type=click.IntRange(0, 100),
            default=2,
            show_default=True,
            help="A video whose Ray worker dies is retried alone this many times, then becomes an error row.",
        ),  # fmt: skip
    ]
    for opt in reversed(options):
        func = opt(func)
    return func


def run_ray_from_cli(
    config: Any,
    inputs: Sequence[str],
    out_dir: Path,
    *,
    ray_address: str,
    ray_workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float | None = None,
    ray_retries: int = 2,
    resume: bool = False,
    overwrite: bool = False,
    labels: Path | None = None,
    all_files: bool = False,
    on_outcome: Callable[[dict[str, Any], int, int], None] | None = None,
    verbose: int = 0,
) -> dict[str, Any]:
    """Run :func:`lib_deepfake.scale.ray_scan.scan_with_ray` with the CLI's values; returns the same summary as
    :func:`lib_deepfake.pipeline.run.run_scan` (plus a ``ray`` section), so the CLI prints it the same way.

    ``--ray`` takes an optional value; a value that is not an address (``lib-infer --ray videos/ ...``) is an INPUT
    and is put back in front of the inputs (see :func:`~lib_deepfake.scale.planning.resolve_ray_option`).

    Raises:
        click.UsageError: no INPUT left.
        MissingDependencyError, RayScanError, InputError, OutputError: as :func:`scan_with_ray`.
    """
    import sys

    from lib_deepfake.scale.planning import resolve_ray_option
    from lib_deepfake.scale.ray_scan import scan_with_ray

    address, items = resolve_ray_option(ray_address, list(inputs))
    if not items:
        raise click.UsageError("no INPUT given (write --ray=ADDRESS, or put --ray after the inputs)")
    return scan_with_ray(
        config, items, out_dir, address=address or "auto", workers=ray_workers, gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker, video_retries=ray_retries, resume=resume, overwrite=overwrite,
        labels=labels, all_files=all_files, on_outcome=on_outcome,
        progress_bars=verbose > 0 and sys.stderr.isatty(),
    )  # fmt: skip


__all__ = ["add_ray_options", "run_ray_from_cli"]
