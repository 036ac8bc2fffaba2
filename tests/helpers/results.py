"""Synthetic scan output folders (results.jsonl, report_data.jsonl) of any size, for report and scale tests.

Rows use the real row builder's keys; a fixed share are errors and no-face rows, scores are spread over [0, 1], and
a few names carry HTML that must never run.
"""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path
from typing import Any

HOSTILE_NAME = "<img src=x onerror=alert(1)>.mp4"  # no "/": a file name cannot hold one


def tiny_jpeg_b64(seed: int = 0) -> str:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buf, "JPEG", quality=60)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_results_folder(out: Path, n: int, *, seed: int = 0, details_every: int = 1) -> dict[str, Any]:
    """Write ``out/results.jsonl`` and ``out/report_data.jsonl`` with ``n`` rows; returns counts by status."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    jpeg = tiny_jpeg_b64(seed)
    counts = {"ok": 0, "no_face": 0, "error": 0}
    with open(out / "results.jsonl", "w") as rf, open(out / "report_data.jsonl", "w") as df:
        for i in range(n):
            folder = f"/data/collection/batch_{i // 1000:03d}/"
            name = HOSTILE_NAME if i % 9973 == 5 else f"clip_{i:06d}.mp4"
            kind = rng.random()
            status = "error" if kind < 0.03 else "no_face" if kind < 0.08 else "ok"
            counts[status] += 1
            score = round(rng.random(), 6) if status == "ok" else None
            row = {"path": folder + name, "name": name, "status": status, "score": score,
                   "verdict": ("fake" if score >= 0.5 else "real") if score is not None else
                   ("error" if status == "error" else "unknown"),
                   "error": "CorruptVideoError: </script><b>bad</b> header" if status == "error" else None,
                   "error_kind": "CorruptVideoError" if status == "error" else None,
                   "frames_sampled": 32, "frames_with_faces": 32 if status == "ok" else 0,
                   "faces": 32 if status == "ok" else 0, "identities": 1 if status == "ok" else 0,
                   "codec": "h264", "resolution": "176x144", "duration_s": 1.0, "seconds": 0.25}  # fmt: skip
            rf.write(json.dumps(row) + "\n")
            if status == "ok" and i % details_every == 0:
                rec = {"path": row["path"], "thumbs": [{"jpeg": jpeg, "score": score, "frame": 3, "identity": 0}],
                       "timeline": [[0, 0.0, score], [8, 0.27, None], [16, 0.53, score]]}  # fmt: skip
                df.write(json.dumps(rec) + "\n")
    return counts


def run_payload(threshold: float = 0.5) -> dict[str, Any]:
    return {"tool": "lib-infer", "config": {"threshold": threshold, "model": "<b>model</b>.onnx", "plan": "uniform:32"},
            "resolved": {"engine": "onnxrt", "decoder": "pyav", "device": "cpu"}, "aggregation_rule": "identity-max",
            "started": "2026-12-04T00:00:00Z", "finished": "2026-12-04T00:01:00Z"}  # fmt: skip
