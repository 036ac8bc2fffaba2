"""``lib-bench scale``: a scan of N small clips (a share of them byte-identical copies) through the real ``lib-infer``
command, measuring what grows with N: videos/s, the scan's peak memory, the report's size and how long a browser
takes to open it, and how long ``--resume`` on the finished folder takes to start.

The clips are tiny (a bundled portrait drifting over a textured background, 176x144, a few frames): the point is
the per-file cost of discovery, bookkeeping, outputs and the report, not decoding. Each unique clip differs in its
pixels (the portrait's path), so only the copies are duplicates.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lib_deepfake.bench.machine import device_slug, machine_info
from lib_deepfake.bench.protocol import current_protocol, mark


@dataclass(frozen=True)
class ScaleConfig:
    videos: int = 1000
    duplicate_share: float = 0.25
    frames: int = 4
    size: tuple[int, int] = (176, 144)
    plan: str = "uniform:4"
    detector: str = "centerface"
    backbone: str = "mobilenet"
    input_size: int = 64
    width: float = 0.5
    workers: int = 0
    tag: str = ""


def _portrait_content(index: int, tile: np.ndarray):  # noqa: ANN202 - a frame function
    rng = np.random.default_rng(index)
    dx, dy = (int(v) for v in rng.integers(0, 24, 2))
    background = rng.integers(60, 160, 3).astype(np.uint8)

    def frame(i: int, width: int, height: int) -> np.ndarray:
        img = np.empty((height, width, 3), np.uint8)
        img[:] = background
        th, tw = min(tile.shape[0], height), min(tile.shape[1], width)
        x0 = min(width - tw, dx + i)
        y0 = min(height - th, dy)
        img[y0 : y0 + th, x0 : x0 + tw] = tile[:th, :tw]
        return img

    return frame


def make_collection(root: Path, cfg: ScaleConfig) -> dict[str, int]:
    """Write ``cfg.videos`` files under ``root`` (folders of 500): unique clips, then copies of some of them."""
    import cv2

    from lib_deepfake.prep.portraits import load_portrait
    from lib_deepfake.video.synth import write_clip

    portrait = load_portrait("astronaut")
    x1, y1, x2, y2 = (int(v) for v in portrait.box)
    face = portrait.image[max(0, y1 - 20) : y2 + 20, max(0, x1 - 20) : x2 + 20]
    w, h = cfg.size
    scale = 0.8 * h / face.shape[0]
    tile = cv2.resize(face, (int(face.shape[1] * scale), int(face.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    copies = int(round(cfg.videos * cfg.duplicate_share))
    unique = cfg.videos - copies
    paths = []
    for i in range(unique):
        p = root / f"part{i // 500:03d}" / f"clip{i:06d}.mp4"
        write_clip(p, frames=cfg.frames, size=cfg.size, content=_portrait_content(i, tile))
        paths.append(p)
    for j in range(copies):
        src = paths[j % unique]
        dst = root / f"copies{j // 500:03d}" / f"copy{j:06d}.mp4"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return {"unique": unique, "copies": copies}


def _run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and the peak RSS (KiB) of the largest process of the command (children included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed: {proc.stderr.strip().splitlines()[-1:]}")
    # ru_maxrss of the children is a running maximum: a smaller later run cannot be told apart, so each scan of a
    # benchmark runs in its own process (see run_scale_bench).
    return wall, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def browser_load_ms(page: Path) -> dict[str, Any]:
    """Open the report in headless Chromium; ms from navigation start until the table is drawn (None without
    Chromium, with the reason)."""
    import re
    import tempfile

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return {"load_ms": None, "reason": "Chromium not installed"}
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
               page.resolve().as_uri()]  # fmt: skip
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        wall = time.perf_counter() - t0
    m = re.search(r'data-load-ms="(\d+)"', out.stdout)
    rows = re.search(r'data-matches="(\d+)"', out.stdout)
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip()
    return {"load_ms": int(m.group(1)) if m else None, "browser_wall_s": round(wall, 2),
            "rows_in_page": int(rows.group(1)) if rows else None, "browser": version}  # fmt: skip


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def scan_once(cfg: ScaleConfig, work: Path, model: Path) -> dict[str, Any]:
    """Generate the collection, scan it with ``lib-infer``, resume the finished scan, open the report."""
    coll = work / f"videos-{cfg.videos}"
    if coll.exists():
        shutil.rmtree(coll)
    t0 = time.perf_counter()
    made = make_collection(coll, cfg)
    gen_s = time.perf_counter() - t0
    out = work / f"scan-{cfg.videos}"
    lib_infer = [sys.executable, "-c", "from lib_deepfake.cli.infer import main; main(prog_name='lib-infer')"]
    # --engine torch: the classifier is not what this measures (auto would spend the start probing engines).
    base = [*lib_infer, str(coll), "--model", str(model), "--engine", "torch", "--out", str(out),
            "--sampling", cfg.plan, "--detector", cfg.detector, "--workers", str(cfg.workers), "--quiet"]  # fmt: skip
    wall, rss_kib = _run([*base, "--overwrite"])
    run = json.loads((out / "run.json").read_text())
    resume_wall, _ = _run([*base, "--resume"])
    summary = run["summary"]
    page = out / "report.html"
    return {
        "videos": cfg.videos, "unique": made["unique"], "copies_made": made["copies"], "generate_s": round(gen_s, 1),
        "scan_wall_s": round(wall, 2), "videos_per_s": round(cfg.videos / wall, 2),
        "scan_videos_per_s": summary.get("videos_per_s"), "peak_rss_mib": round(rss_kib / 1024, 1),
        "status": summary["status"], "copies": summary.get("copies", 0),
        "report_html_mb": round(page.stat().st_size / 1e6, 3),
        "report_files_mb": round(_folder_bytes(out / "report_files") / 1e6, 3),
        "results_jsonl_mb": round((out / "results.jsonl").stat().st_size / 1e6, 3),
        "resume_wall_s": round(resume_wall, 2), "browser": browser_load_ms(page),
    }  # fmt: skip


def run_scale_bench(cfg: ScaleConfig, sizes: list[int], work: Path, out_dir: Path) -> dict[str, Any]:
    """Scan collections of each size in ``sizes`` (smallest first) and write the result files."""
    from lib_deepfake.model.testing import write_test_checkpoint

    protocol = current_protocol().start()
    work.mkdir(parents=True, exist_ok=True)
    model = write_test_checkpoint(work / "model.pth", backbone=cfg.backbone, size=cfg.input_size,
                                  width_mult=cfg.width)  # fmt: skip
    rows = []
    for n in sorted(sizes):
        # each size in its own process: ru_maxrss is a running maximum over the children
        proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps({**asdict(cfg), "videos": n}), str(work),
                               str(model)], capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip()[-2000:])
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    machine = machine_info("cpu")
    result = mark({"benchmark": "scale", "config": asdict(cfg), "machine": machine, "rows": rows},
                  protocol.finish())  # fmt: skip
    name = f"scale-{device_slug(machine, 'cpu')}" + (f"-{cfg.tag}" if cfg.tag else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    from lib_deepfake.atomic import write_json_atomic

    write_json_atomic(out_dir / f"{name}.json", result)
    (out_dir / f"{name}.md").write_text(to_markdown(result))
    result["files"] = [str(out_dir / f"{name}.json"), str(out_dir / f"{name}.md")]
    return result


_CHILD = """
import json, sys
from pathlib import Path
from lib_deepfake.bench.scale import ScaleConfig, scan_once
cfg = json.loads(sys.argv[1]); cfg["size"] = tuple(cfg["size"])
print(json.dumps(scan_once(ScaleConfig(**cfg), Path(sys.argv[2]), Path(sys.argv[3]))))
"""


def to_markdown(result: dict[str, Any]) -> str:
    from lib_deepfake.bench.machine import describe_machine
    from lib_deepfake.bench.protocol import markdown_line

    cfg = result["config"]
    lines = [f"# lib-bench scale: {describe_machine(result['machine'])}", "",
             f"Clips {cfg['size'][0]}x{cfg['size'][1]}, {cfg['frames']} frames, {cfg['duplicate_share']:.0%} copies; "
             f"plan {cfg['plan']}, detector {cfg['detector']}, {cfg['backbone']} LIB at {cfg['input_size']} px. "
             "Scans run through `lib-infer` in a process of their own.", "", markdown_line(result.get("protocol")), "",
             "| videos | videos/s | peak RSS MiB | copies found | report.html MB | report_files MB | browser load ms "
             "| resume start s |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        lines.append(f"| {r['videos']} | {r['videos_per_s']} | {r['peak_rss_mib']} | {r['copies']} | "
                     f"{r['report_html_mb']} | {r['report_files_mb']} | {r['browser'].get('load_ms')} | "
                     f"{r['resume_wall_s']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


__all__ = ["ScaleConfig", "browser_load_ms", "make_collection", "run_scale_bench", "scan_once", "to_markdown"]
