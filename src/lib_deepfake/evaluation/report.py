"""lib-eval's outputs: ``eval.json`` (everything), ``eval.md`` (the tables), a ROC plot per dataset and the scores.

``eval.md`` holds two tables: the paper's cross-dataset layout (one row for the model, one column of frame-level AUC
per test dataset) and one row per dataset with every metric. Dataset and model names are user input: they are
escaped for Markdown (which renders to HTML) and reduced to a safe file name for the plots.
"""

from __future__ import annotations

import csv
import html
import io
import re
from pathlib import Path
from typing import Any

from lib_deepfake.atomic import atomic_open, write_bytes_atomic, write_json_atomic
from lib_deepfake.evaluation.metrics import DatasetResult

__all__ = ["plot_name", "render_markdown", "roc_png", "write_outputs"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_LEVEL_NAMES = {"frame": "frames", "video_mean": "videos, mean of frames", "video_identity_max": "videos, identity-max"}


def plot_name(dataset: str) -> str:
    return f"roc_{_UNSAFE.sub('_', dataset).strip('._') or 'dataset'}.png"


def _md(text: Any) -> str:
    """Escape a value for a Markdown table cell (HTML special characters and the cell separator)."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def _num(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def roc_png(result: DatasetResult, threshold: float, title: str) -> bytes:
    """A ROC plot (frames, video mean, video identity-max) with the threshold's operating points, as PNG bytes."""
    from lib_deepfake._optional import require

    require("matplotlib", purpose="ROC plots (lib-eval)", extra="eval")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    fig = Figure(figsize=(5.2, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=1, ls="--")
    # identity-max dashed: with one face per video it equals the mean curve, which must stay visible under it
    styles = (("frame", "#1f77b4", "-"), ("video_mean", "#2ca02c", "-"), ("video_identity_max", "#d62728", "--"))
    for level, colour, style in styles:
        labels, scores = result.curves[level]
        m = result.metrics[level]
        if m.get("auc") is None:
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, color=colour, lw=1.6, ls=style, label=f"{_LEVEL_NAMES[level]} (AUC {m['auc']:.3f})")
        at = m["at_threshold"]
        ax.plot([at["fpr"]], [at["tpr"]], marker="o", color=colour, ms=5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate (real called fake)")
    ax.set_ylabel("true-positive rate (fake called fake)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8, title=f"dots: threshold {threshold:.3g}", title_fontsize=8)
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_markdown(report: dict[str, Any]) -> str:
    """``eval.md`` from the ``eval.json`` content."""
    model, thr, rows = report["model"], report["threshold"], report["datasets"]
    card = model.get("card") or {}
    name = Path(model["path"]).name
    trained_on = ", ".join(d.get("name", "?") for d in card.get("training_data", [])) or "unknown (no model card)"
    out = [f"# lib-eval: {_md(name)}", ""]
    out.append(f"- Model: `{_md(model['path'])}` ({_md(model['engine'])}, input {model['input_size']} px)")
    out.append(f"- Trained on: {_md(trained_on)}")
    if card.get("demo"):
        out.append(
            "- **Demo model**: trained on the synthetic demo corpus; these numbers say nothing about real videos."
        )
    out.append(f"- Threshold: {_md(thr['text'])}")
    fpv = report["frames_per_video"]
    out.append(f"- Split: {_md(report['split'])}; frames per video: {fpv if fpv else 'every listed crop'}; "
               f"identity-max counts identities with >= {report['min_faces']} crops")  # fmt: skip
    out += ["", "## Cross-dataset (frame-level AUC, the LIB paper's metric)", ""]
    out.append("| Model | Trained on | " + " | ".join(_md(r["dataset"]) for r in rows) + " |")
    out.append("|---|---|" + "---|" * len(rows))
    out.append(f"| {_md(name)} | {_md(trained_on)} | " + " | ".join(_num(r["frame"]["auc"]) for r in rows) + " |")
    out += ["", "## Per dataset", ""]
    out.append(
        "| Dataset | Videos (real / fake) | Frames | Frame AUC | Video AUC (mean) | Video AUC (identity-max) | "
        f"Frame EER | Frame AP | ACC@{thr['value']:.3g} frames | ACC@{thr['value']:.3g} videos (identity-max) |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc_f = (r["frame"]["at_threshold"] or {}).get("acc")
        acc_v = (r["video_identity_max"]["at_threshold"] or {}).get("acc")
        out.append(
            f"| {_md(r['dataset'])} | {r['videos']} ({r['videos_real']} / {r['videos_fake']}) | {r['frames']} | "
            f"{_num(r['frame']['auc'])} | {_num(r['video_mean']['auc'])} | {_num(r['video_identity_max']['auc'])} | "
            f"{_num(r['frame']['eer'])} | {_num(r['frame']['ap'])} | {_num(acc_f)} | {_num(acc_v)} |"
        )
    skipped = [r for r in rows if r["frames_skipped"]]
    if skipped:
        out += ["", "Unreadable crops (not scored): " + ", ".join(f"{_md(r['dataset'])} {r['frames_skipped']}"
                                                                  for r in skipped)]  # fmt: skip
    out += ["", "## ROC curves", ""]
    for r in rows:
        out.append(f"![ROC {_md(r['dataset'])}]({report['files']['roc'][r['dataset']]})")
    out += ["", "Numbers under another protocol (other crops, frames per video, face detector) are not directly "
            "comparable with published tables.", ""]  # fmt: skip
    return "\n".join(out)


def _write_scores(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with atomic_open(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_outputs(out_dir: Path, report: dict[str, Any], results: list[tuple[DatasetResult, Any]]) -> dict[str, str]:
    """Write eval.json, eval.md, one ROC PNG per dataset, frame_scores.csv and video_scores.csv.

    Args:
        out_dir: output folder (created).
        report: the eval.json content without ``files`` (added here).
        results: (metrics result, :class:`~lib_deepfake.evaluation.scoring.DatasetScores`) per dataset.

    Returns:
        The ``files`` entry (names relative to ``out_dir``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    threshold = report["threshold"]["value"]
    files: dict[str, Any] = {"json": "eval.json", "markdown": "eval.md", "frame_scores": "frame_scores.csv",
                             "video_scores": "video_scores.csv", "roc": {}}  # fmt: skip
    frame_rows: list[list[Any]] = []
    video_rows: list[list[Any]] = []
    for result, scores in results:
        name = scores.dataset
        png = plot_name(name)
        write_bytes_atomic(out_dir / png, roc_png(result, threshold, f"{name} ({scores.split})"))
        files["roc"][name] = png
        for path, folder, label, score in zip(scores.frame_paths, scores.frame_folder, scores.labels, scores.scores):
            frame_rows.append([name, scores.folders[folder], path, int(label), f"{score:.6f}"])
        labels = result.curves["video_mean"][0]
        for v, video in enumerate(result.videos):
            mean, top = result.video_scores["video_mean"][v], result.video_scores["video_identity_max"][v]
            video_rows.append([name, video, int(labels[v]), f"{mean:.6f}", f"{top:.6f}"])
    _write_scores(out_dir / files["frame_scores"], ["dataset", "folder", "frame", "label", "score"], frame_rows)
    _write_scores(out_dir / files["video_scores"], ["dataset", "video", "label", "score_mean", "score_identity_max"],
                  video_rows)  # fmt: skip
    report = {**report, "files": files}
    write_json_atomic(out_dir / files["json"], report)
    with atomic_open(out_dir / files["markdown"]) as fh:
        fh.write(render_markdown(report))
    return files
