"""Options and output handling that several ``lib-bench`` subcommands share."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def csv_list(kind: type, allowed: tuple[str, ...] | None = None) -> Callable[..., Any]:
    """A click callback parsing ``a,b,c`` into a tuple of ``kind`` (positive when ``int``; from ``allowed``)."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[Any, ...] | None:
        if value is None:
            return None
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise click.BadParameter("expected a comma-separated list")
        try:
            parsed = tuple(kind(v) for v in items)
        except ValueError:
            raise click.BadParameter(f"expected comma-separated {kind.__name__} values, got {value!r}") from None
        if allowed is not None:
            bad = [v for v in parsed if v not in allowed]
            if bad:
                raise click.BadParameter(f"{', '.join(map(str, bad))} not in {', '.join(allowed)}")
        if kind is int and min(parsed) < 1:
            raise click.BadParameter("values must be positive")
        return parsed

    return parse


JSON_OPTION = click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                           help="Write the result JSON here (and the markdown table beside it).")  # fmt: skip


def emit(result: dict[str, Any], json_out: Path | None, markdown: Callable[[dict[str, Any]], str] | None) -> None:
    """Print the markdown table of ``result`` (its JSON when there is no table); with ``json_out``, also write the
    JSON there and the table beside it (``.md``), atomically."""
    from lib_deepfake.atomic import atomic_open, write_json_atomic

    text = markdown(result) if markdown is not None else None
    if json_out is not None:
        write_json_atomic(json_out, result)
        if text is not None:
            with atomic_open(json_out.with_suffix(".md")) as fh:
                fh.write(text)
        click.echo(f"wrote {json_out}", err=True)
    click.echo(text if text is not None else json.dumps(result, indent=2, default=str))
