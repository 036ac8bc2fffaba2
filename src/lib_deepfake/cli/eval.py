"""lib-eval: evaluate a checkpoint or exported artifact on several prepared datasets (the paper's cross-dataset table).

Everything heavy (torch, onnxruntime, scikit-learn, matplotlib) is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from lib_deepfake.cli.common import CONTEXT_SETTINGS, handle_errors, progress, verbosity_options
from lib_deepfake.cli.docs_links import docs_epilog


@click.command(context_settings=CONTEXT_SETTINGS, epilog=docs_epilog("lib-eval"))
@click.option(
    "--model",
    "-m",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Checkpoint (.pth/.pt, ours or official), ONNX model (.onnx) or TensorRT plan (.plan).",
)
@click.option(
    "--dataset-root",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder holding the prepared datasets (lib-prep --output).",
)
@click.option("--dataset", "datasets", required=True, help="Comma-separated dataset names, e.g. FF++_c23,Celeb-DF-v2.")
@click.option("--split", default="test", type=click.Choice(["train", "val", "test"]), help="Split to evaluate.")
@click.option(
    "--out",
    "out_dir",
    default=Path("eval"),
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: eval.json, eval.md, roc_<dataset>.png, frame_scores.csv, video_scores.csv.",
)
@click.option(
    "--engine",
    default="auto",
    type=click.Choice(["auto", "torch", "onnxrt", "trt"]),
    help="Classifier engine; auto picks it from the model's suffix.",
)
@click.option("--device", default="cpu", help="cpu or cuda[:N].")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16", "bf16"]),
    default=None,
    help="Compute precision of a checkpoint (torch engine) [default: fp32].",
)
@click.option("--batch-size", default=64, type=click.IntRange(1, 4096), help="Crops per engine call.")
@click.option(
    "--frames-per-video",
    default=None,
    type=click.IntRange(1, None),
    help="Evenly spaced crops per video folder [default: every listed crop].",
)
@click.option(
    "--threshold",
    default=None,
    type=click.FloatRange(0, 1),
    help="Verdict fake when score >= this [default: the model card's calibrated threshold, else 0.5].",
)
@click.option(
    "--min-faces",
    default=3,
    type=click.IntRange(1, None),
    help="identity-max: identities with fewer crops do not count (unless none has that many).",
)
@click.option("--workers", default=None, type=click.IntRange(0, 64), help="PNG reader processes [default: by cores].")
@click.option(
    "--threads", default=None, type=click.IntRange(1, 1024), help="Engine threads on CPU [default: by cores]."
)
@click.option(
    "--allow-cpu-fallback", is_flag=True, help="onnxrt: run on CPU if the CUDA provider is missing (recorded)."
)
@verbosity_options
@handle_errors
def main(model: Path, dataset_root: Path, datasets: str, split: str, out_dir: Path, engine: str, device: str,
         precision: str | None, batch_size: int, frames_per_video: int | None, threshold: float | None,
         min_faces: int, workers: int | None, threads: int | None, allow_cpu_fallback: bool, verbose: int,
         quiet: bool) -> None:  # fmt: skip
    """Evaluate MODEL on the SPLIT of several prepared datasets: frame AUC (the LIB paper's metric), video AUC (mean
    of frames as DeepfakeBench, identity-max as lib-infer), EER, AP and accuracy at the model's threshold."""
    from lib_deepfake.evaluation.run import evaluate

    names = [d.strip() for d in datasets.split(",") if d.strip()]

    def bar(iterable: Any, total: int, desc: str) -> Any:
        return progress(iterable, total=total, desc=desc, quiet=quiet)

    report = evaluate(model, dataset_root, names, out_dir, split=split, engine=engine, device=device,
                      precision=precision, batch_size=batch_size, frames_per_video=frames_per_video,
                      threshold=threshold, min_faces=min_faces, workers=workers, threads=threads,
                      allow_cpu_fallback=allow_cpu_fallback, progress=bar)  # fmt: skip
    click.echo(f"threshold: {report['threshold']['text']}")
    for r in report["datasets"]:
        auc = {k: r[k]["auc"] for k in ("frame", "video_mean", "video_identity_max")}
        acc = (r["video_identity_max"]["at_threshold"] or {}).get("acc")
        text = ", ".join(f"{k} AUC {v:.4f}" if v is not None else f"{k} AUC n/a" for k, v in auc.items())
        click.echo(f"{r['dataset']}: {r['videos']} videos, {r['frames']} frames; {text}"
                   + (f"; video accuracy {acc:.4f}" if acc is not None else ""))  # fmt: skip
    click.echo(f"wrote {out_dir / report['files']['json']} and {out_dir / report['files']['markdown']}")
