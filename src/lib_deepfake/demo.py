"""The summary step of `make demo`: what the scan found, how fast the engines were, where the report is.

Every other demo step is a plain `lib-*` command in the Makefile; this module only reads their outputs.
Usage: ``python -m lib_deepfake.demo DEMO_OUT``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DISCLAIMER = (
    "The demo model learned to spot self-blending (the SBI forgery recipe) on clips made from three public-domain "
    "portraits. It shows every stage working end to end; it is not a deepfake detector for real-world videos."
)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _engine_ratio(bench: dict[str, Any]) -> tuple[str, float, int] | None:
    """Best non-reference engine row vs the reference at the largest common batch size."""
    rows = bench.get("results", [])
    ref = {r["batch"]: r for r in rows if r.get("ratio_vs_reference") == 1.0 and r["engine"] == "torch"}
    others = [r for r in rows if r.get("label") != rows[0].get("label") and r["batch"] in ref]
    if not others:
        return None
    batch = max(r["batch"] for r in others)
    best = max((r for r in others if r["batch"] == batch), key=lambda r: r["faces_per_s"])
    return best["label"], float(best["ratio_vs_reference"]), batch


def summarize_demo(out: Path) -> dict[str, Any]:
    from lib_deepfake.pipeline.results import read_labels, summarize

    rows = _read_jsonl(out / "scan" / "results.jsonl")
    labels = read_labels(out / "corpus" / "labels.csv")
    summary = summarize(rows, labels)
    bench = json.loads((out / "bench" / "engines.json").read_text(encoding="utf-8"))
    metrics = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines() if line]
    return {"scan": summary, "bench": bench, "train": metrics, "report": out / "scan" / "report.html"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "demo-out")
    try:
        info = summarize_demo(out)
    except FileNotFoundError as exc:
        print(f"demo summary: missing output {exc.filename}; run `make demo` first", file=sys.stderr)
        return 1
    scan = info["scan"]
    metrics = scan.get("metrics", {})
    machine = info["bench"].get("machine", {})
    device = info["bench"].get("device", "cpu")
    gpu = machine.get("gpu") or {}
    where = f"{machine.get('cpu', '?')} ({machine.get('cpu_cores', '?')} cores)"
    if gpu:
        where += f", {gpu.get('name', gpu) if isinstance(gpu, dict) else gpu}"
    best_val = max((m.get("best_auc") or 0 for m in info["train"]), default=None)
    lines = ["", "=" * 78, "lib-deepfake demo summary", "=" * 78]
    if best_val:
        lines.append(f"training      best val frame AUC {best_val:.3f} ({len(info['train'])} epochs)")
    lines.append(
        f"scan          {scan['files']} held-out videos: {scan['status'].get('ok', 0)} ok, "
        f"{scan['status'].get('no_face', 0)} no face, {scan['status'].get('error', 0)} errors"
    )
    auc = metrics.get("auc", "n/a") if metrics.get("auc") is not None else "n/a"
    acc = metrics.get("accuracy", "n/a")
    lines.append(
        f"              video-level AUC {auc}, accuracy {acc}"
        f" ({metrics.get('fake', 0)} fake / {metrics.get('real', 0)} real scored)"
    )
    ratio = _engine_ratio(info["bench"])
    if ratio:
        label, value, batch = ratio
        lines.append(f"speed         {label}: {value:.2f}x the PyTorch FP32 reference at batch {batch}")
        lines.append(f"              measured on {device}: {where}")
    if scan["status"].get("error", 0):
        lines.append(f"              {scan['status']['error']} files could not be scanned: see the error column of "
                     "scan/results.csv")  # fmt: skip
    lines.append(f"report        {info['report'].resolve()}")
    lines.append("")
    lines.append(DISCLAIMER)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
