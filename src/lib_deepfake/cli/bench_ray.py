"""``lib-bench ray``: a Ray scan against a local scan of the same synthetic corpus on this machine. Imports click
only; Ray is imported when the command runs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lib_deepfake.cli.bench_protocol import protocol_options
from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options


@click.command("ray", context_settings=CONTEXT_SETTINGS, epilog="Reference: docs/ray.md")
@click.option("--videos", default=16, type=click.IntRange(1, None), help="Synthetic clips in the corpus.")
@click.option("--frames", default=60, type=click.IntRange(1, None), help="Frames per clip.")
@click.option("--frame-size", default="320x240", help="Clip size WxH.")
@click.option("--plan", default="uniform:16", help="Sampling plan of both scans.")
@click.option("--detector", default="centerface", help="Face detector of both scans.")
@click.option("--backbone", default="mobilenet", help="Backbone of the random calibrated LIB checkpoint.")
@click.option("--size", default=64, type=click.IntRange(16, 2048), help="Input size of the checkpoint.")
@click.option("--width", default=0.5, type=click.FloatRange(0, None, min_open=True), help="Width multiplier.")
@click.option("--batch-size", default=32, type=click.IntRange(1, None), help="Classifier batch.")
@click.option("--device", default="cpu", help="cpu or cuda[:N].")
@click.option("--threads", type=click.IntRange(1, None), default=None, help="Classifier threads on CPU.")
@click.option("--decode-workers", default=0, type=click.IntRange(0, None), help="Decode processes per scan.")
@click.option("--workers", type=click.IntRange(1, None), default=None, help="Ray actors [Ray scan default].")
@click.option("--cpus-per-worker", type=click.FloatRange(0, None), default=None, help="CPUs per Ray actor.")
@click.option("--gpus-per-worker", type=click.FloatRange(0, None), default=None, help="GPUs per Ray actor.")
@click.option("--videos-per-call", type=click.IntRange(1, None), default=None, help="Videos per actor call.")
@click.option("--object-store-mb", default=512, type=click.IntRange(1, None), help="Ray object store in MiB.")
@click.option("--allow-cpu-fallback", is_flag=True, help="Run on CPU where a GPU provider is missing (recorded).")
@click.option("--out", default=Path("bench/results"), type=click.Path(file_okay=False, path_type=Path),
              help="Result folder: ray-<device>[-TAG].json and .md.")  # fmt: skip
@click.option("--tag", default="", help="Suffix of the result file names.")
@verbosity_options
@handle_errors
@protocol_options(gate_at_start=True)
def ray_cmd(videos: int, frames: int, frame_size: str, plan: str, detector: str, backbone: str, size: int,
            width: float, batch_size: int, device: str, threads: int | None, decode_workers: int,
            workers: int | None, cpus_per_worker: float | None, gpus_per_worker: float | None,
            videos_per_call: int | None, object_store_mb: int, allow_cpu_fallback: bool, out: Path, tag: str,
            verbose: int, quiet: bool) -> None:  # fmt: skip
    """Ray scan vs local scan of one synthetic corpus on this machine: wall time, Ray start-up, first-row latency,
    steady videos/s and row agreement. Writes the JSON and markdown into --out and prints the timings."""
    from lib_deepfake.scale.bench import RayBenchConfig, run_ray_bench

    try:
        w, h = (int(v) for v in frame_size.lower().split("x"))
    except ValueError:
        raise click.BadParameter("expected WxH, e.g. 320x240", param_hint="--frame-size") from None
    cfg = RayBenchConfig(
        videos=videos, frames=frames, frame_size=f"{w}x{h}", plan=plan, detector=detector, backbone=backbone,
        size=size, width=width, batch_size=batch_size, device=device, threads=threads, decode_workers=decode_workers,
        workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
        object_store_mb=object_store_mb, allow_cpu_fallback=allow_cpu_fallback, tag=tag,
        videos_per_call=videos_per_call,
    )  # fmt: skip
    res = run_ray_bench(cfg, out)
    click.echo(json.dumps({k: res[k] for k in ("local", "ray", "agreement")}, indent=1, default=str))
