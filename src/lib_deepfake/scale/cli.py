"""What ``lib-infer --ray`` sets (:class:`RayOptions`) and runs (:func:`run_ray_from_cli`) instead of a scan in
this process. The options themselves are ``RAY_OPTIONS`` in ``cli/infer.py``, an option group that builds
:class:`RayOptions`::

    ray = RAY_OPTIONS.from_options(options)
    if ray.address is not None:
        result = run_ray_from_cli(config, inputs, out_dir, ray, resume=resume, ...)

Nothing here imports Ray at module level: ``lib-infer --help`` stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from lib_deepfake.scale.planning import DEFAULT_VIDEO_RETRIES


@dataclass(frozen=True)
class RayOptions:
    """How ``lib-infer --ray`` spreads a scan (see :func:`lib_deepfake.scale.ray_scan.scan_with_ray`).

    Attributes:
        address: "auto", "local" or a cluster address; None: no Ray, a local scan.
        workers, gpus_per_worker, cpus_per_worker: the actor pool (None: planned from the cluster).
        retries: a video whose worker dies is retried alone this many times, then becomes an error row.
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float | None = None
    retries: int = DEFAULT_VIDEO_RETRIES


def run_ray_from_cli(config: Any, inputs: Sequence[str], out_dir: Path, ray: RayOptions, *, verbose: int = 0,
                     **session: Any) -> Any:  # fmt: skip
    """Run :func:`lib_deepfake.scale.ray_scan.scan_with_ray` with the CLI's values; returns the same result as
    :func:`lib_deepfake.pipeline.run.run_scan` (plus a ``ray`` section), so the CLI prints it the same way.

    ``--ray`` takes an optional value; a value that is not an address (``lib-infer --ray videos/ ...``) is an INPUT
    and is put back in front of the inputs (see :func:`~lib_deepfake.scale.planning.resolve_ray_option`).

    Args:
        session: resume, overwrite, labels, all_files, on_outcome (as :func:`scan_with_ray`).

    Raises:
        click.UsageError: no INPUT left.
        MissingDependencyError, RayScanError, InputError, OutputError: as :func:`scan_with_ray`.
    """
    import sys

    from lib_deepfake.scale.planning import resolve_ray_option
    from lib_deepfake.scale.ray_scan import scan_with_ray

    address, items = resolve_ray_option(ray.address, list(inputs))
    if not items:
        raise click.UsageError("no INPUT given (write --ray=ADDRESS, or put --ray after the inputs)")
    return scan_with_ray(
        config, items, out_dir, address=address or "auto", workers=ray.workers, gpus_per_worker=ray.gpus_per_worker,
        cpus_per_worker=ray.cpus_per_worker, video_retries=ray.retries,
        progress_bars=verbose > 0 and sys.stderr.isatty(), **session,
    )  # fmt: skip


__all__ = ["RayOptions", "run_ray_from_cli"]
