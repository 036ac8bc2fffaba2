"""Accuracy effect of each ``lib-bench pipeline`` row and the markdown view of the result.

Every row (and the reference) is compared with our FP32 default row on the same videos: how far the video scores
move and how many verdicts stay the same; with labels, each row's own video AUC and accuracy too. On a trained
model that is the accuracy cost of a shortcut (INT8, sparse detection, a smaller detector input); on random
weights only the score deltas mean anything.
"""

from __future__ import annotations

import os
from typing import Any

from lib_deepfake.bench.protocol import format_ratio, markdown_line, noisy_tag


def score_effect(rows: list[dict[str, Any]], baseline: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """How ``rows`` differ from ``baseline`` (the FP32 row) on the videos both scored.

    Returns:
        ``videos_compared``, ``max_abs_score_diff``, ``mean_abs_score_diff``, ``verdict_agreement`` (share of those
        videos with the same verdict at ``threshold``; None without any) and ``status_changed`` (videos scored by
        one and not the other).
    """
    base = {r["path"]: r.get("score") for r in baseline}
    pairs = [(float(r["score"]), float(base[r["path"]])) for r in rows
             if r.get("score") is not None and base.get(r["path"]) is not None]  # fmt: skip
    mine = {r["path"]: r.get("score") for r in rows}
    changed = sum(1 for p in set(base) | set(mine) if (base.get(p) is None) != (mine.get(p) is None))
    diffs = [abs(a - b) for a, b in pairs]
    return {
        "videos_compared": len(pairs),
        "max_abs_score_diff": round(max(diffs), 5) if diffs else None,
        "mean_abs_score_diff": round(sum(diffs) / len(diffs), 5) if diffs else None,
        "verdict_agreement": round(sum((a >= threshold) == (b >= threshold) for a, b in pairs) / len(pairs), 4)
        if pairs
        else None,
        "status_changed": changed,
    }


def labelled_metrics(rows: list[dict[str, Any]], labels: dict[str, int], threshold: float) -> dict[str, Any]:
    """Video AUC and accuracy of ``rows`` against ``labels`` (absolute path -> 0/1, as ``read_labels`` gives)."""
    from lib_deepfake.pipeline.summary import video_metrics

    absolute = [{**r, "path": os.path.abspath(r["path"])} for r in rows]
    return video_metrics(absolute, labels, threshold)


def accuracy_effect(rows: list[dict[str, Any]], baseline: list[dict[str, Any]], labels: dict[str, int] | None,
                    threshold: float, *, is_baseline: bool = False) -> dict[str, Any]:  # fmt: skip
    """:func:`score_effect` against the FP32 row (skipped for the FP32 row itself) and, with ``labels``,
    :func:`labelled_metrics`."""
    out: dict[str, Any] = {"vs": "fp32", **({} if is_baseline else score_effect(rows, baseline, threshold))}
    if labels:
        out["labels"] = labelled_metrics(rows, labels, threshold)
    return out


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _accuracy_cells(acc: dict[str, Any] | None) -> list[str]:
    acc = acc or {}
    lab = acc.get("labels") or {}
    delta = (f"{_fmt(acc.get('max_abs_score_diff'), '.4f')} / {_fmt(acc.get('mean_abs_score_diff'), '.4f')}"
             if "max_abs_score_diff" in acc else "(baseline)")  # fmt: skip
    verdicts = _fmt(acc.get("verdict_agreement"), ".3f") if "verdict_agreement" in acc else "(baseline)"
    return [delta, verdicts, _fmt(lab.get("auc"), ".4f")]


def _row_line(label: str, r: dict[str, Any], ratio: str) -> str:
    s = r["stages_s"]
    res = r.get("resolved") or {}
    det = f"{res.get('detector')} {res.get('detector_max_side') or 'full'} px, batch {res.get('detect_batch')}"
    if (res.get("detect_every") or 1) > 1:
        det += f", every {res['detect_every']}"
    cells = [label, r["engine"], det, r["videos_per_s"], _fmt(r.get("decoded_frames_per_video"), ".1f"),
             r["frames_per_s"], r["faces_per_s"], s["decode_s"], s["detect_s"], s["crop_s"], s["classify_s"], ratio,
             f"{r['peak_rss']['main_mib']} / {r['peak_rss']['largest_child_mib']}",
             *_accuracy_cells(r.get("accuracy"))]  # fmt: skip
    return "| " + " | ".join(str(c) for c in cells) + " |"


def format_markdown(result: dict[str, Any]) -> str:
    """The markdown view of a ``run_pipeline_bench`` result."""
    m, inp = result["machine"], result["inputs"]
    record = result.get("protocol")
    tag = noisy_tag(record)
    lines = [f"# Pipeline benchmark: {inp['videos']} videos, plan {inp['plan']}{' - NOISY' if tag else ''}", "",
             f"Machine: {m.get('cpu')}, {m.get('cpu_cores')} cores usable; finished {result['when']}; "
             f"{inp.get('rounds', 1)} interleaved round(s) (each round: one chunk of the videos through every "
             "pipeline, the order reversed every other round).", "", markdown_line(record)]  # fmt: skip
    if inp.get("clip_sets"):
        lines += ["", "Clips: " + "; ".join(f"{c['name']}: {c['count']} x {c['what']}" for c in inp["clip_sets"])]
    lines += ["", "| row | engine | detector | videos/s | decoded frames/video | frames/s | faces/s | decode s "
              "| detect s | crop s | classify s | x reference: median (min-max) | peak RSS MiB (main / largest "
              "decode worker) | score diff vs FP32 (max / mean) | verdicts = FP32 | video AUC |",
              "|" + "---|" * 16]  # fmt: skip
    for row in result.get("rows", []):
        lines.append(_row_line(f"ours: {row['name']}", row, format_ratio(row.get("speedup")) + tag))
    ref = result.get("reference")
    if ref:
        lines.append(_row_line("reference", ref, "1.00x"))
    lines += ["", "Rows: " + "; ".join(f"**{r['name']}** = {r['what']}" for r in result.get("rows", [])) + ".",
              "", "Ours: decode in worker processes (decode s = summed worker time, overlapping the other stages), "
              "detection and classification batched across videos. Reference: PyAV decoding forward through each "
              "file and converting only the sampled frames, the same detector at the same size and batch as our "
              "FP32 row, the same tracker and crops, the FP32 eager PyTorch classifier on all crops of a video at "
              "once, one video at a time, nothing overlapped."]  # fmt: skip
    if inp.get("labels"):
        lines += ["", f"Video AUC against {inp['labels']} (threshold {inp.get('threshold', 0.5)})."]
    else:
        lines += ["", "No labels given: the accuracy columns compare scores with our FP32 row only."]
    for note in result.get("notes", []):
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


__all__ = ["accuracy_effect", "format_markdown", "labelled_metrics", "score_effect"]
