"""``--allow-noisy`` and ``--quiet-wait-s``: the benchmark protocol's options, shared by every measuring
``lib-bench`` subcommand through one decorator (imports click only; the protocol is imported when a command runs).

Put :func:`protocol_options` directly above the command function, below ``@handle_errors``, so that a refusal is
reported as a one-line error::

    @click.command("decode")
    ...
    @verbosity_options
    @handle_errors
    @protocol_options
    def decode_cmd(...): ...

The command runs with its protocol made current (:func:`lib_deepfake.bench.protocol.use_protocol`), so the
benchmark functions it calls wait for quiet, refuse or mark their result. Commands whose benchmark does not record
the protocol itself use ``@protocol_options(gate_at_start=True)``: the quiet check then runs before the command,
and the load before and after is printed on stderr (their result files do not carry it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: Same value as lib_deepfake.bench.protocol.DEFAULT_QUIET_WAIT_S (not imported: --help stays light).
_DEFAULT_QUIET_WAIT_S = 120.0


def protocol_options(func: F | None = None, *, gate_at_start: bool = False) -> Any:
    """Add ``--allow-noisy`` and ``--quiet-wait-s`` to a click command function and run it under that protocol.

    Args:
        func: the command function (when used as ``@protocol_options``).
        gate_at_start: run the quiet check before the command (for benchmarks that do not start the protocol
            themselves) and print the load before/after on stderr.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, allow_noisy: bool, quiet_wait_s: float, **kwargs: Any) -> Any:
            from lib_deepfake.bench.protocol import BenchProtocol, use_protocol

            protocol = BenchProtocol(allow_noisy=allow_noisy, quiet_wait_s=quiet_wait_s)
            with use_protocol(protocol):
                if not gate_at_start:
                    return fn(*args, **kwargs)
                started = protocol.start(lambda message: click.echo(f"... {message}", err=True))
                try:
                    return fn(*args, **kwargs)
                finally:
                    record = started.finish()
                    click.echo(f"load average (1 min): {record['load_1min_before']} before, "
                               f"{record['load_1min_after']} after, on {record['usable_cores']} usable cores"
                               + (" - NOISY (--allow-noisy)" if record["noisy"] else ""), err=True)  # fmt: skip

        wrapper = click.option(
            "--quiet-wait-s",
            type=click.FloatRange(0, None),
            default=_DEFAULT_QUIET_WAIT_S,
            show_default=True,
            help="Wait up to this many seconds for the 1-min load average to fall to half the usable cores before "
            "measuring.",
        )(wrapper)
        wrapper = click.option(
            "--allow-noisy",
            is_flag=True,
            help="Measure even if the machine stays busy (load above half the cores): the result is marked noisy "
            "instead of refused.",
        )(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


__all__ = ["protocol_options"]
