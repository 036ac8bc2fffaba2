"""``lib-bench scale``: scans of N small clips (with copies) through lib-infer: videos/s, peak memory, report size,
browser load time and resume start-up, per N. Imports click only."""

from __future__ import annotations

from pathlib import Path

import click

from lib_deepfake.cli.bench_protocol import protocol_options
from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options


def _sizes(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        sizes = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter("expected comma-separated numbers of videos, e.g. 1000,10000") from None
    if not sizes or sizes[0] < 1:
        raise click.BadParameter("numbers of videos must be positive")
    return sizes


@click.command("scale", context_settings=CONTEXT_SETTINGS, epilog="Reference: docs/benchmarks.md")
@click.option("--videos", "sizes", default="1000,10000", callback=_sizes, help="Collection sizes to scan.")
@click.option("--duplicate-share", default=0.25, type=click.FloatRange(0, 0.9), help="Share of files that are copies.")
@click.option("--frames", default=4, type=click.IntRange(1, 300), help="Frames per clip.")
@click.option("--detector", default="centerface", help="Face detector of the scans (center: a fixed box).")
@click.option("--workers", default=0, type=click.IntRange(0, 64), help="lib-infer --workers.")
@click.option("--work-dir", default=Path("bench/clips/scale"), type=click.Path(file_okay=False, path_type=Path),
              help="Where the clips and scan folders go (large for big N).")  # fmt: skip
@click.option("--out", default=Path("bench/results"), type=click.Path(file_okay=False, path_type=Path),
              help="Result folder: scale-<machine>[-TAG].json and .md.")  # fmt: skip
@click.option("--tag", default="", help="Suffix of the result file names.")
@verbosity_options
@handle_errors
@protocol_options
def scale_cmd(sizes: list[int], duplicate_share: float, frames: int, detector: str, workers: int, work_dir: Path,
              out: Path, tag: str, verbose: int, quiet: bool) -> None:  # fmt: skip
    """Scan collections of N small clips (a share of them copies) with lib-infer, one process per N: videos/s, peak
    memory, copies found, report size, the report's load time in headless Chromium and the start-up of --resume."""
    from lib_deepfake.bench.scale import ScaleConfig, run_scale_bench

    cfg = ScaleConfig(duplicate_share=duplicate_share, frames=frames, plan=f"uniform:{frames}", detector=detector,
                      workers=workers, tag=tag)  # fmt: skip
    result = run_scale_bench(cfg, sizes, work_dir, out)
    for r in result["rows"]:
        click.echo(f"{r['videos']} videos: {r['videos_per_s']} videos/s, peak {r['peak_rss_mib']} MiB, "
                   f"{r['copies']} copies, report {r['report_html_mb']} MB, browser {r['browser'].get('load_ms')} ms, "
                   f"resume {r['resume_wall_s']} s")  # fmt: skip
    click.echo("wrote " + ", ".join(result["files"]))
