"""``lib-bench grouped``: the LIB backbones fused into grouped convolutions against the ordinary ONNX export, per
engine and precision, parity first. Imports click only."""

from __future__ import annotations

from pathlib import Path

import click

from lib_deepfake.cli.bench_protocol import protocol_options
from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options


def _pairs(ctx: click.Context, param: click.Parameter, value: str) -> list[tuple[str, str]]:
    from lib_deepfake.bench.grouped import PAIRS

    known = {f"{e}:{p}": (e, p) for e, p in PAIRS}
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in chosen if v not in known]
    if bad or not chosen:
        raise click.BadParameter(f"choose from {', '.join(known)} (got {', '.join(bad) or 'nothing'})")
    return [known[v] for v in chosen]


@click.command("grouped", context_settings=CONTEXT_SETTINGS, epilog="Reference: docs/engines.md")
@click.option("--model", "checkpoint", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A ResNet LIB checkpoint.")  # fmt: skip
@click.option("--pairs", default="onnxrt:fp32,openvino:fp32,openvino:bf16", callback=_pairs, show_default=True,
              help="Comma-separated ENGINE:PRECISION pairs to compare.")  # fmt: skip
@click.option("--batch-size", "batch", default=16, show_default=True, type=click.IntRange(1, 4096))
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(1, 100), help="Interleaved rounds.")
@click.option("--calls", default=3, show_default=True, type=click.IntRange(1, 1000), help="Timed calls per round.")
@click.option("--threads", default=None, type=click.IntRange(1, None), help="Engine threads [usable cores].")
@click.option(
    "--work-dir",
    default=Path("bench/artifacts"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where both ONNX graphs are kept (reused).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the result JSON here and the markdown table beside it (.md).")  # fmt: skip
@verbosity_options
@handle_errors
@protocol_options
def grouped_cmd(checkpoint: Path, pairs: list[tuple[str, str]], batch: int, rounds: int, calls: int,
                threads: int | None, work_dir: Path, json_out: Path | None, verbose: int,
                quiet: bool) -> None:  # fmt: skip
    """The N backbones as one network of grouped convolutions against the ordinary ONNX export: parity of both on
    face crops against PyTorch FP32, then interleaved timing per engine and precision; says whether the grouped graph
    is faster at equal parity."""
    from lib_deepfake.atomic import write_json_atomic
    from lib_deepfake.bench.grouped import run_grouped_bench, to_markdown

    result = run_grouped_bench(checkpoint, pairs=pairs, batch=batch, rounds=rounds, calls=calls, threads=threads,
                               work_dir=work_dir, progress=lambda m: click.echo(f"... {m}", err=True))  # fmt: skip
    text = to_markdown(result)
    click.echo(text)
    if json_out is not None:
        write_json_atomic(json_out, result)
        json_out.with_suffix(".md").write_text(text, encoding="utf-8")
        click.echo(f"wrote {json_out} and {json_out.with_suffix('.md')}")
