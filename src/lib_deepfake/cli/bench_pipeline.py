"""``lib-bench pipeline``: the lib-infer pipeline against the PyTorch reference pipeline, same videos, same run.
Imports click only; the benchmark is imported when the command runs."""

from __future__ import annotations

from pathlib import Path

import click

from lib_deepfake.cli.bench_options import emit
from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options


@click.command("pipeline", context_settings=CONTEXT_SETTINGS)
@click.argument("inputs", nargs=-1)
@click.option(
    "--model",
    "-m",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Checkpoint; the reference pipeline runs it with torch FP32 eager.",
)
@click.option(
    "--onnx-model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The same model as ONNX for our pipeline [default: --model, on its engine].",
)
@click.option("--frames", default=32, type=click.IntRange(1, 10000), help="Frames sampled per video (uniform).")
@click.option("--workers", default=0, type=click.IntRange(0, 64), help="Decode processes of our pipeline.")
@click.option("--batch-size", default=32, type=click.IntRange(1, 4096), help="Classifier batch of our pipeline.")
@click.option(
    "--make-clips",
    type=click.IntRange(1, 1000),
    default=None,
    help="Generate this many synthetic face clips (half fake) into --clip-dir and benchmark them.",
)
@click.option(
    "--clip-dir",
    default=Path("bench/clips/pipeline"),
    type=click.Path(file_okay=False, path_type=Path),
    help="Where generated clips live (reused).",
)
@click.option("--seconds", default=10.0, type=click.FloatRange(0.1, None), help="Generated clip length.")
@click.option("--size", default="1280x720", help="Generated clip size WxH.")
@click.option("--device", default="cpu", help="cpu or cuda[:N] for both pipelines.")
@click.option("--decoder", default="auto", type=click.Choice(["auto", "pyav", "dali"]), help="Our pipeline's decoder.")
@click.option(
    "--detector-max-side",
    default=640,
    type=click.IntRange(0, None),
    help="Our detector's input long side (0: full resolution); the reference always uses full resolution.",
)
@click.option(
    "--detect-every",
    default=1,
    type=click.IntRange(1, 16),
    help="Our detector on every K-th sampled frame, interpolating agreeing gaps (lib-infer --detect-every).",
)
@click.option("--skip-reference", is_flag=True, help="Only our pipeline.")
@click.option(
    "--rounds",
    default=1,
    type=click.IntRange(1, 100),
    help="Alternate the two pipelines over this many chunks of the videos (fair on a shared machine).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the result JSON here and the markdown table beside it (.md).",
)
@verbosity_options
@handle_errors
def pipeline_cmd(inputs: tuple[str, ...], model: Path, onnx_model: Path | None, frames: int, workers: int,
                 batch_size: int, make_clips: int | None, clip_dir: Path, seconds: float, size: str,
                 device: str, decoder: str, detector_max_side: int, detect_every: int, skip_reference: bool,
                 rounds: int, json_out: Path | None, verbose: int,
                 quiet: bool) -> None:  # fmt: skip
    """Videos/s, frames/s, faces/s and time per stage of the lib-infer pipeline and of the PyTorch reference
    pipeline (every frame decoded, full-resolution detection, FP32 eager, one video at a time), same run, with the
    speed-up."""
    from lib_deepfake.bench.pipeline import format_markdown, make_bench_clips, run_pipeline_bench
    from lib_deepfake.pipeline.inputs import discover

    paths = [Path(p) for p in discover(inputs).files] if inputs else []
    if make_clips:
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise click.BadParameter("expected WxH, e.g. 1280x720", param_hint="--size") from None
        if not quiet:
            click.echo(f"... generating/reusing {make_clips} clips in {clip_dir}", err=True)
        paths += make_bench_clips(clip_dir, make_clips, seconds, (w, h))
    if not paths:
        raise click.UsageError("give INPUT videos or --make-clips N")
    say = None if quiet else (lambda m: click.echo(f"... {m}", err=True))
    result = run_pipeline_bench(paths, model, onnx_model=onnx_model, plan=f"uniform:{frames}", workers=workers,
                                batch_size=batch_size, skip_reference=skip_reference, rounds=rounds, device=device,
                                decoder=decoder, detector_max_side=detector_max_side or None,
                                detect_every=detect_every, progress=say)  # fmt: skip
    emit(result, json_out, format_markdown)
