"""What every lib-* command shares: error handling, verbosity, progress bars, JSON output.

Heavy imports belong inside command functions, never at module top, so that `--help` stays instant and works
without onnxruntime, TensorRT, DALI or CUDA.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.log import setup_cli_logging

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


def _verbose_requested(ctx: click.Context | None) -> bool:
    """-v given on this command or any parent (``lib-prep -v videos`` and ``lib-prep videos -v`` alike)."""
    while ctx is not None:
        if (ctx.params.get("verbose") or 0) > 0:
            return True
        ctx = ctx.parent
    return False


def handle_errors(func: F) -> F:
    """Turn user-facing errors into a one-line message and exit code 1 (tracebacks with -v)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LibDeepfakeError as exc:
            if _verbose_requested(click.get_current_context(silent=True)):
                raise
            raise click.ClickException(" ".join(str(exc).split())) from exc

    return wrapper  # type: ignore[return-value]


def verbosity_options(func: F) -> F:
    """-v/--verbose (repeatable) and -q/--quiet; configures logging before the command runs."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        return value

    func = click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.", callback=callback)(func)
    func = click.option("-v", "--verbose", count=True, help="More logging; tracebacks on errors.")(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        setup_cli_logging(-1 if kwargs.get("quiet") else int(kwargs.get("verbose") or 0))
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def progress(
    iterable: Iterable[Any], *, total: int | None = None, desc: str = "", quiet: bool = False
) -> Iterable[Any]:
    """A tqdm bar on an interactive stderr; the plain iterable otherwise (CI logs, pipes, --quiet)."""
    if quiet or not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True)
