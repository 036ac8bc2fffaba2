"""``lib-bench decode``, ``crops`` and ``detect``: one pipeline stage each, on generated inputs."""

from __future__ import annotations

from pathlib import Path

import click

from lib_deepfake.cli.bench_options import JSON_OPTION, csv_list, emit
from lib_deepfake.cli.bench_protocol import protocol_options
from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options


@click.command("decode", context_settings=CONTEXT_SETTINGS)
@click.option("--clip-dir", default=Path("bench/clips"), type=click.Path(file_okay=False, path_type=Path),
              help="Where the generated benchmark clips live (created when missing).")  # fmt: skip
@click.option("--plans", default=None, help="Comma-separated sampling plans [default: the module's set].")
@click.option("--decoder", default="pyav", type=click.Choice(["pyav", "dali"]), help="Decoder.")
@click.option("--repeats", default=2, type=click.IntRange(1, None),
              help="Interleaved rounds: the full decode and every plan take turns; best time kept, the speed-ups as "
              "median (min-max) over the rounds.")  # fmt: skip
@click.option("--threads", default=0, type=click.IntRange(0, None), help="Decoder threads (0 = automatic).")
@JSON_OPTION
@verbosity_options
@handle_errors
@protocol_options
def decode_cmd(clip_dir: Path, plans: str | None, decoder: str, repeats: int, threads: int, json_out: Path | None,
               verbose: int, quiet: bool) -> None:  # fmt: skip
    """Decode throughput per clip and sampling plan (PyAV on CPU; DALI where it can decode)."""
    from lib_deepfake.bench.decode import format_markdown, run_decode_bench

    kwargs: dict = {"repeats": repeats, "decoder": decoder, "threads": threads}
    if plans:
        kwargs["plans"] = tuple(p.strip() for p in plans.split(",") if p.strip())
    emit(run_decode_bench(clip_dir, **kwargs), json_out, format_markdown)


@click.command("crops", context_settings=CONTEXT_SETTINGS)
@click.option("--device", default="cpu", help="cpu or cuda[:N].")
@click.option("--frame-size", default="1080x1920", help="HxW of the frames.")
@click.option("--crop-size", default=224, type=click.IntRange(16, 2048), help="Output crop side S.")
@click.option("--faces", default=32, type=click.IntRange(1, None), help="Boxes per batch.")
@click.option("--frames", default=4, type=click.IntRange(1, None), help="Frames per batch.")
@click.option("--iters", default=10, type=click.IntRange(1, None), help="Timed batches per backend.")
@click.option("--warmup", default=2, type=click.IntRange(0, None), help="Untimed batches first.")
@click.option("--rounds", default=3, type=click.IntRange(1, None),
              help="Interleaved rounds the timed batches are split over (one native/torch ratio each).")  # fmt: skip
@JSON_OPTION
@verbosity_options
@handle_errors
@protocol_options
def crops_cmd(device: str, frame_size: str, crop_size: int, faces: int, frames: int, iters: int, warmup: int,
              rounds: int, json_out: Path | None, verbose: int, quiet: bool) -> None:  # fmt: skip
    """Face crops/s of the native crop library and the torch path."""
    from lib_deepfake.bench.crops import format_markdown, run_crop_bench

    try:
        h, w = (int(v) for v in frame_size.lower().split("x"))
    except ValueError:
        raise click.BadParameter("expected HxW, e.g. 1080x1920", param_hint="--frame-size") from None
    result = run_crop_bench(device, (h, w), crop_size, faces, iters, frames=frames, warmup=warmup, rounds=rounds)
    emit(result, json_out, format_markdown)


@click.command("detect", context_settings=CONTEXT_SETTINGS)
@click.option("--detector", default="centerface", help="Registered face detector.")
@click.option("--device", default="cpu", type=click.Choice(["cpu", "cuda"]), help="Detector device.")
@click.option("--width", default=640, type=click.IntRange(16, None), help="Frame width.")
@click.option("--height", default=360, type=click.IntRange(16, None), help="Frame height.")
@click.option("--batch-sizes", default="1,8", callback=csv_list(int), help="Comma-separated detector batch sizes.")
@click.option("--frames", default=32, type=click.IntRange(1, None), help="Frames per timed pass.")
@click.option("--repeats", default=3, type=click.IntRange(1, None),
              help="Interleaved rounds, one timed pass of every configuration each.")  # fmt: skip
@click.option("--max-sides", default=None, callback=csv_list(int),
              help="Comma-separated detector input long sides to time, each with every batch size [the detector's "
              "default, 640].")  # fmt: skip
@click.option("--threads", type=click.IntRange(1, None), default=None, help="ONNX Runtime threads.")
@JSON_OPTION
@verbosity_options
@handle_errors
@protocol_options
def detect_cmd(detector: str, device: str, width: int, height: int, batch_sizes: tuple[int, ...], frames: int,
               repeats: int, max_sides: tuple[int, ...] | None, threads: int | None, json_out: Path | None,
               verbose: int, quiet: bool) -> None:  # fmt: skip
    """Face-detector frames/s per batch size."""
    from lib_deepfake.bench import detect
    from lib_deepfake.faces.base import DetectorConfig

    result = detect.run_detector_bench(detector, width, height, batch_sizes, frames, repeats,
                                       config=DetectorConfig(threads=threads, device=device),
                                       max_sides=max_sides)  # fmt: skip
    emit(result, json_out, detect._to_markdown)
