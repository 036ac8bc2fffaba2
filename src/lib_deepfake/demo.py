"""The summary step of `make demo`: what the scan found (video AUC, and accuracy at the threshold the scan used,
with where that threshold came from: the demo model's calibrated one), how fast the engines were, where the report
is; printed, and written to ``DEMO_OUT/summary.json``.

Every other demo step is a plain `lib-*` command in the Makefile; this module only reads their outputs.
Usage: ``python -m lib_deepfake.demo DEMO_OUT``.
"""

from __future__ import annotations

import json
import sys
import time
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
    """What the demo produced, from its outputs: the scan's own figures (run.json: accuracy at the threshold the scan
    used, and where that threshold came from), the training epochs and the engine benchmark."""
    run = json.loads((out / "scan" / "run.json").read_text(encoding="utf-8"))
    bench = json.loads((out / "bench" / "engines.json").read_text(encoding="utf-8"))
    metrics = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines() if line]
    return {"run": run, "scan": run.get("summary") or {}, "bench": bench, "train": metrics,
            "report": out / "scan" / "report.html", "wall_s": _wall_time(out)}  # fmt: skip


def _wall_time(out: Path) -> float | None:
    """Seconds since the demo's first step (the Makefile writes ``started_at``, epoch seconds, before step 1)."""
    try:
        started = float((out / "started_at").read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return round(time.time() - started, 1)


def demo_record(info: dict[str, Any]) -> dict[str, Any]:
    """``summary.json``: the demo's figures in one place (demo figures, not benchmarks)."""
    run, scan = info["run"], info["scan"]
    bench = info["bench"]
    machine = bench.get("machine") or {}
    metrics = scan.get("metrics") or {}
    status = scan.get("status") or {}
    card = run.get("model_card") or {}
    ratio = _engine_ratio(info["bench"])
    best_val = max((m.get("best_auc") or 0 for m in info["train"]), default=None)
    return {
        "train": {"epochs": len(info["train"]), "best_val_frame_auc": best_val or None,
                  "threshold": card.get("threshold")},
        "scan": {
            "files": scan.get("files", 0), "ok": status.get("ok", 0), "no_face": status.get("no_face", 0),
            "error": status.get("error", 0), "video_auc": metrics.get("auc"), "accuracy": metrics.get("accuracy"),
            "scored_fake": metrics.get("fake", 0), "scored_real": metrics.get("real", 0),
            "threshold": (run.get("config") or {}).get("threshold"), "threshold_source": run.get("threshold_source"),
        },
        "model_card": {"demo": card.get("demo"), "summary": card.get("summary")} if card else None,
        # The engine step runs right after training on a busy machine: its load is recorded, and the ratio is marked
        # noisy when the load was above half the cores (the benchmark protocol's rule).
        "speed": {"engine": ratio[0], "ratio_vs_torch_fp32": ratio[1], "batch": ratio[2],
                  "noisy": bench.get("noisy"), "load_average": bench.get("load_average")} if ratio else None,
        "wall_s": info.get("wall_s"),
        "machine": {"cpu": machine.get("cpu"), "cpu_cores": machine.get("cpu_cores"), "device": bench.get("device"),
                    "gpu": machine.get("gpu")},
        "report": str(Path(info["report"]).resolve()),
        "disclaimer": DISCLAIMER,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from lib_deepfake.atomic import write_json_atomic

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "demo-out")
    try:
        info = summarize_demo(out)
    except FileNotFoundError as exc:
        print(f"demo summary: missing output {exc.filename}; run `make demo` first", file=sys.stderr)
        return 1
    record = demo_record(info)
    write_json_atomic(out / "summary.json", record)
    train, scan = record["train"], record["scan"]
    machine = info["bench"].get("machine", {})
    device = info["bench"].get("device", "cpu")
    gpu = machine.get("gpu") or {}
    where = f"{machine.get('cpu', '?')} ({machine.get('cpu_cores', '?')} cores)"
    if gpu:
        where += f", {gpu.get('name', gpu) if isinstance(gpu, dict) else gpu}"
    lines = ["", "=" * 78, "lib-deepfake demo summary", "=" * 78]
    if train["best_val_frame_auc"]:
        lines.append(f"training      best val frame AUC {train['best_val_frame_auc']:.3f} ({train['epochs']} epochs)")
    lines.append(
        f"scan          {scan['files']} held-out videos: {scan['ok']} ok, {scan['no_face']} no face, "
        f"{scan['error']} errors"
    )
    auc = "n/a" if scan["video_auc"] is None else scan["video_auc"]
    acc = "n/a" if scan["accuracy"] is None else scan["accuracy"]
    lines.append(
        f"              video-level AUC {auc}, accuracy {acc} ({scan['scored_fake']} fake / {scan['scored_real']} "
        "real scored)"
    )
    threshold = "n/a" if scan["threshold"] is None else f"{scan['threshold']:g}"
    lines.append(f"              threshold {threshold} ({scan['threshold_source'] or 'source not recorded'})")
    if record["speed"]:
        speed = record["speed"]
        lines.append(f"speed         {speed['engine']}: {speed['ratio_vs_torch_fp32']:.2f}x the PyTorch FP32 "
                     f"reference at batch {speed['batch']}")  # fmt: skip
        noisy = f", noisy: load {speed['load_average']}" if speed.get("noisy") else ""
        lines.append(f"              measured on {device}: {where}{noisy}")
    if scan["error"]:
        lines.append(f"              {scan['error']} files could not be scanned: see the error column of "
                     "scan/results.csv")  # fmt: skip
    if record["wall_s"] is not None:
        lines.append(f"wall time     {record['wall_s']:.0f} s from the first step to this summary")
    lines.append(f"report        {record['report']}")
    lines.append(f"figures       {(out / 'summary.json').resolve()}")
    if record["model_card"] and record["model_card"].get("demo"):
        lines.append("model card    a demo model (its card says so)")
    lines.append("")
    lines.append(DISCLAIMER)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
