"""``lib-bench pipeline``: the lib-infer pipeline against the PyTorch reference pipeline, same videos, same run.
Imports click only; the benchmark is imported when the command runs."""

from __future__ import annotations

from pathlib import Path

import click

from lib_deepfake.cli.bench_options import emit
from lib_deepfake.cli.bench_protocol import protocol_options
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
    help="The same model as FP32 ONNX for our fp32 row [default: --model, on its engine].",
)
@click.option("--best-model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The fastest classifier to compare (e.g. an INT8 ONNX from lib-export quantize): the 'best' row, "
              "and the base of the shortcut rows.")  # fmt: skip
@click.option(
    "--best-engine",
    default="auto",
    show_default=True,
    help="Engine of --best-model: a name, ENGINE:PRECISION (e.g. openvino:bf16 with an FP32 ONNX) or auto "
    "(the engine of its suffix; with a checkpoint on a CPU, what lib-infer --engine auto chooses).",
)
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="path,label CSV (generated clips: CLIP_DIR/labels.csv): every row's video AUC. Without it the "
              "rows are compared with the fp32 row's scores only.")  # fmt: skip
@click.option("--frames", default=32, type=click.IntRange(1, 10000), help="Frames sampled per video (uniform).")
@click.option("--workers", default=0, type=click.IntRange(0, 64), help="Decode processes of our pipeline.")
@click.option("--batch-size", default=32, type=click.IntRange(1, 4096), help="Classifier batch of our pipeline.")
@click.option(
    "--make-clips",
    type=click.IntRange(1, 1000),
    default=None,
    help="Generate (or reuse) this many synthetic face clips (half fake) per --clip-set into --clip-dir and "
    "benchmark them.",
)
@click.option("--clip-set", "clip_sets", default=None,
              help="Comma-separated clip sets for --make-clips: 720p (default), 1080p-gop250, 1080p-gop30, 4k, or "
              "WxH-Ss.")  # fmt: skip
@click.option(
    "--clip-dir",
    default=Path("bench/clips/pipeline"),
    type=click.Path(file_okay=False, path_type=Path),
    help="Where generated clips live (reused).",
)
@click.option("--seconds", default=None, type=click.FloatRange(0.1, None),
              help="Custom generated clip length (with --size; x264 defaults) instead of a --clip-set.")  # fmt: skip
@click.option("--size", default=None, help="Custom generated clip size WxH [1280x720 with --seconds].")
@click.option("--device", default="cpu", help="cpu or cuda[:N] for both pipelines.")
@click.option("--decoder", default="auto", type=click.Choice(["auto", "pyav", "dali"]), help="Our pipeline's decoder.")
@click.option("--detector", default="centerface", help="Face detector of every pipeline ('center': a fixed box).")
@click.option(
    "--detector-max-side",
    default=None,
    type=click.IntRange(32, None),
    help="Shortcut row: the best row with this detector input long side (the library default, 640, adds none).",
)
@click.option(
    "--detect-every",
    default=1,
    type=click.IntRange(1, 16),
    help="Shortcut row: the best row with the detector on every K-th sampled frame (lib-infer --detect-every).",
)
@click.option("--skip-reference", is_flag=True, help="Only our pipeline.")
@click.option(
    "--rounds",
    default=3,
    type=click.IntRange(1, 100),
    help="Interleaved rounds: every pipeline scans one chunk of the videos per round, the order reversed every "
    "other round; one ratio per round (median and min-max reported).",
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
@protocol_options
def pipeline_cmd(inputs: tuple[str, ...], model: Path, onnx_model: Path | None, best_model: Path | None,
                 best_engine: str, labels: Path | None, frames: int, workers: int, batch_size: int,
                 make_clips: int | None, clip_sets: str | None, clip_dir: Path, seconds: float | None,
                 size: str | None, device: str, decoder: str, detector: str, detector_max_side: int | None,
                 detect_every: int, skip_reference: bool, rounds: int, json_out: Path | None, verbose: int,
                 quiet: bool) -> None:  # fmt: skip
    """Videos/s and decoded frames per video of our scan pipeline (fp32, best and shortcut rows) against a fair
    PyTorch reference pipeline, in interleaved rounds, with each row's accuracy effect.

    Our rows: fp32 (--onnx-model or --model, library defaults), best (--best-model) and shortcuts on top of it
    (--detect-every, --detector-max-side). The reference: forward decode converting only the sampled frames, the
    same detector settings as the fp32 row, FP32 eager PyTorch batched per video, one video at a time. Each ratio
    is the median (min-max) over the rounds; accuracy is compared with the fp32 row (video AUC with --labels)."""
    from lib_deepfake.bench.pipeline import clip_set, format_markdown, make_bench_clips, run_pipeline_bench
    from lib_deepfake.errors import ContractError
    from lib_deepfake.pipeline.inputs import discover

    paths = [Path(p) for p in discover(inputs).files] if inputs else []
    generated = []
    if make_clips:
        names = [n.strip() for n in (clip_sets or "").split(",") if n.strip()]
        if size or seconds:
            names.append(f"{size or '1280x720'}-{seconds or 10:g}s")
        for name in names or ["720p"]:
            try:
                spec = clip_set(name)
            except ContractError as exc:
                raise click.BadParameter(str(exc), param_hint="--clip-set/--size") from None
            if not quiet:
                click.echo(f"... generating/reusing {make_clips} clips ({spec.describe()}) in {clip_dir}", err=True)
            paths += make_bench_clips(clip_dir, make_clips, spec)
            generated.append({"name": spec.name, "count": make_clips, "what": spec.describe()})
    if not paths:
        raise click.UsageError("give INPUT videos or --make-clips N")
    say = None if quiet else (lambda m: click.echo(f"... {m}", err=True))
    result = run_pipeline_bench(paths, model, onnx_model=onnx_model, best_model=best_model, best_engine=best_engine,
                                plan=f"uniform:{frames}", workers=workers, batch_size=batch_size,
                                skip_reference=skip_reference, rounds=rounds, device=device, decoder=decoder,
                                detector=detector, detector_max_side=detector_max_side, detect_every=detect_every,
                                labels=labels, clip_sets=generated, progress=say)  # fmt: skip
    emit(result, json_out, format_markdown)
