"""``scan_with_ray`` on a local Ray (``ray.init(num_cpus=2)``): a small corpus scanned by 2 actors gives the rows of a
local ``run_scan`` (scores within 1e-6), a worker killed mid-batch loses no video, a video that kills its worker every
time becomes an error row after bounded retries, a file:// URL is staged and scanned, and ``--resume`` skips what a
local scan already did. One Ray session for the module (starting Ray costs ~5 s on the shared 2-core machine).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.media import make_clip

from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.results import REPORT_HTML, RESULTS_CSV, RESULTS_JSONL, RUN_JSON, read_jsonl
from lib_deepfake.pipeline.run import run_scan

pytestmark = pytest.mark.ray

#: fields that must agree exactly between a Ray and a local scan (timings and file sizes of URL rows excluded)
SAME = ("status", "verdict", "error_kind", "frames_sampled", "frames_with_faces", "faces", "identities",
        "identities_scored", "top_identity", "codec", "resolution", "fps", "frame_count", "analysis_scale",
        "decoder", "identity_scores", "missing_frames")  # fmt: skip


def _portrait(index: int, width: int, height: int, name: str = "astronaut") -> np.ndarray:
    import cv2

    from lib_deepfake.prep.portraits import load_portrait

    p = load_portrait(name)
    img = np.full((height, width, 3), 100, np.uint8)
    face = cv2.resize(np.ascontiguousarray(p.image), (width - 8, height - 8), interpolation=cv2.INTER_AREA)
    img[4 + index % 3 : 4 + index % 3 + face.shape[0] - 3, 4 : 4 + face.shape[1]] = face[:-3]
    return img


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray_corpus")
    v = root / "videos"
    # from_items makes blocks of 2 here, [a, b] first: the worker dies on a (batched), then on b alone
    make_clip(v / "a_die_once.mp4", frames=6, size=(96, 80), content=_portrait)
    make_clip(v / "b_die_always.mp4", frames=4, size=(96, 96), content=_portrait)
    make_clip(v / "c_face.mp4", frames=6, size=(96, 96), content=_portrait)
    make_clip(v / "d_face.mkv", frames=5, size=(112, 96), content=lambda i, w, h: _portrait(i, w, h, "grace_hopper"))
    make_clip(v / "e_plain.mp4", frames=4, size=(64, 48))
    make_clip(v / "f_face.mp4", frames=4, size=(80, 96), content=_portrait)
    (v / "g_text.mp4").write_text("not a video\n")
    make_clip(root / "remote" / "h_url.mp4", frames=5, size=(96, 96), content=_portrait)
    return root


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> ScanConfig:
    from lib_deepfake.model.testing import write_test_checkpoint

    model = write_test_checkpoint(tmp_path_factory.mktemp("ray_model") / "tiny.pth", size=32, width_mult=0.25)
    # "center": a fixed centre box - the detector is not what this test is about, and it loads in no time
    return ScanConfig(model=model, plan="uniform:4", detector="center", workers=1, threads=1, timeout_s=30,
                      batch_size=8, min_faces=1, thumbnails=1, faces_jsonl=True)  # fmt: skip


@pytest.fixture(scope="module")
def ray_session():
    import ray

    # a local test cluster needs no token authentication (Ray 2.60 warns about it on every start otherwise)
    old = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 << 20)
    yield ray
    ray.shutdown()
    if old is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = old


@pytest.fixture(scope="module")
def local_scan(corpus, config, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("local_out")
    run_scan(config, [corpus / "videos", corpus / "remote"], out)
    rows, _, _ = read_jsonl(out / RESULTS_JSONL)
    return {"out": out, "rows": {Path(r["path"]).name: r for r in rows}}


@pytest.fixture(scope="module")
def local_rows(local_scan) -> dict[str, dict]:
    return local_scan["rows"]


def _crashing_factory(flag_dir: Path):
    """A scanner that kills its own process: on a_die_once the first time only (flag file), on b_die_always every time.
    Defined inside a function so that Ray pickles it by value (workers cannot import test modules)."""

    def factory(cfg: ScanConfig):
        from lib_deepfake.pipeline.scanner import VideoScanner

        inner = VideoScanner(cfg)

        class Crashy:
            scanner = inner.scanner

            def outcomes(self, paths):
                out = []
                for p in paths:  # one at a time, so that a death happens after earlier videos of the call finished
                    name = os.path.basename(p)
                    if name == "b_die_always.mp4":
                        os._exit(3)
                    if name == "a_die_once.mp4":
                        try:
                            fd = os.open(flag_dir / "died", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                            os.close(fd)
                            os._exit(3)
                        except FileExistsError:
                            pass
                    out.extend(inner.outcomes([p]))
                return out

            def close(self):
                inner.close()

        return Crashy()

    return factory


@pytest.fixture(scope="module")
def ray_scan(ray_session, corpus, config, local_scan, tmp_path_factory):
    """The Ray scan resumes an output folder where a local scan already finished e_plain.mp4 (one Ray run serves
    every test: each actor start costs seconds here)."""
    from lib_deepfake.scale.ray_scan import scan_with_ray

    out = tmp_path_factory.mktemp("ray_out")
    for name in (RUN_JSON, "faces.jsonl", "report_data.jsonl"):
        shutil.copy(local_scan["out"] / name, out / name)
    done_line = [ln for ln in (local_scan["out"] / RESULTS_JSONL).read_text().splitlines(keepends=True)
                 if "e_plain.mp4" in ln]  # fmt: skip
    (out / RESULTS_JSONL).write_text("".join(done_line))
    flags = tmp_path_factory.mktemp("flags")
    url = f"file://{corpus / 'remote' / 'h_url.mp4'}"
    seen: list[str] = []
    summary = scan_with_ray(config, [corpus / "videos", url], out, address="local", workers=2, videos_per_call=2,
                            video_retries=0, resume=True, scanner_factory=_crashing_factory(flags),
                            on_outcome=lambda row, done, total: seen.append(row["name"]))  # fmt: skip
    rows, _, dropped = read_jsonl(out / RESULTS_JSONL)
    assert not dropped
    return {"out": out, "summary": summary, "rows": rows, "url": url, "flags": flags, "seen": seen}


def test_ray_rows_match_the_local_scan(ray_scan, local_rows):
    rows = {Path(r["path"]).name: r for r in ray_scan["rows"]}
    assert len(ray_scan["rows"]) == len(rows) == 8  # every video once, the URL under its own key
    compared = 0
    for name, ray_row in rows.items():
        if name == "b_die_always.mp4":
            continue
        loc = local_rows[name]
        for k in SAME:
            assert ray_row[k] == loc[k], (name, k)
        if loc["status"] == "ok":
            assert abs(ray_row["score"] - loc["score"]) <= 1e-6 + 1e-12, name
            compared += 1
        else:
            assert ray_row["score"] is None
    assert compared >= 5  # faces, a_die_once, the URL, the URL: real scores, not only error rows
    assert rows["e_plain.mp4"]["status"] in ("ok", "no_face") and rows["g_text.mp4"]["status"] == "error"


def test_killed_worker_loses_no_video(ray_scan):
    rows = {Path(r["path"]).name: r for r in ray_scan["rows"]}
    assert (ray_scan["flags"] / "died").exists()  # the worker really died once on a_die_once
    assert rows["a_die_once.mp4"]["status"] == "ok"  # retried on the restarted actor and scored
    dead = rows["b_die_always.mp4"]
    assert dead["status"] == "error" and dead["error_kind"] == "WorkerCrashError"
    assert "given up" in dead["error"]
    crashes = ray_scan["summary"]["ray"]["crashes"]
    assert crashes["gave_up"] == [str(Path(dead["path"]))] and crashes["worker_crashes"] >= 3


def test_url_row_is_keyed_by_the_url(ray_scan):
    row = next(r for r in ray_scan["rows"] if r["path"] == ray_scan["url"])
    assert row["name"] == "h_url.mp4" and row["status"] == "ok" and row["size_bytes"] > 0


def test_outputs_are_those_of_a_local_scan(ray_scan):
    out = ray_scan["out"]
    import json

    run = json.loads((out / RUN_JSON).read_text())
    assert run["finished"] and run["summary"]["files"] == 8
    assert run["ray"]["plan"]["workers"] == 2 and run["ray"]["workers_seen"]
    assert run["resolved"]["engine_label"]  # filled in from a worker's loaded engine
    csv_lines = (out / RESULTS_CSV).read_text().splitlines()
    assert len(csv_lines) == 1 + 8
    assert "a_die_once.mp4" in (out / REPORT_HTML).read_text()
    faces, _, _ = read_jsonl(out / "faces.jsonl")
    assert {Path(f["path"]).name for f in faces} >= {"c_face.mp4", "a_die_once.mp4", "h_url.mp4"}


def test_resume_skipped_what_was_done(ray_scan):
    assert "e_plain.mp4" not in ray_scan["seen"] and len(ray_scan["seen"]) == 7
    assert ray_scan["summary"]["skipped_done"] == 1 and ray_scan["summary"]["scanned_this_run"] == 7


def test_model_files_travel_through_the_object_store(ray_session, config, tmp_path):
    """A node that cannot see the driver's model gets it, with its sidecar files, from the object store."""
    from dataclasses import replace

    from lib_deepfake.scale.ray_scan import _ship_artifacts
    from lib_deepfake.scale.ray_worker import RayScanWorker

    src = tmp_path / "driver"
    src.mkdir()
    shutil.copy(config.model, src / "tiny.pth")
    (src / "tiny.pth.json").write_text('{"manifest": 1}')
    (src / "other.txt").write_text("not shipped")
    shipped = _ship_artifacts(replace(config, model=src / "tiny.pth"))
    assert set(shipped) == {"model"} and shipped["model"]["size"] == (src / "tiny.pth").stat().st_size
    worker = RayScanWorker.__new__(RayScanWorker)  # only the file-placement step, without loading engines
    worker.tmp = tmp_path / "worker"
    elsewhere = replace(config, model=tmp_path / "not-on-this-node" / "tiny.pth")
    got = worker._localize(elsewhere, shipped)
    assert got.model != elsewhere.model and got.model.name == "tiny.pth"
    assert got.model.read_bytes() == (src / "tiny.pth").read_bytes()
    assert sorted(p.name for p in got.model.parent.iterdir()) == ["tiny.pth", "tiny.pth.json"]
    same = worker._localize(replace(config, model=src / "tiny.pth"), shipped)  # visible here: used in place
    assert same.model == src / "tiny.pth"


def test_lib_infer_cli_with_ray(ray_session, corpus, config, local_rows, tmp_path):
    """`lib-infer --ray auto` joins the running Ray session and writes the rows a local scan writes."""
    import json

    from click.testing import CliRunner

    from lib_deepfake.cli.infer import main

    out = tmp_path / "cli_out"
    videos = [str(corpus / "videos" / name) for name in ("c_face.mp4", "d_face.mkv", "e_plain.mp4")]
    args = [*videos, "--model", str(config.model), "--detector", "center", "--frames", "4", "--workers", "1",
            "--threads", "1", "--batch-size", "8", "--min-faces", "1", "--out", str(out), "--ray", "auto",
            "--ray-workers", "1"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = {Path(r["path"]).name: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert sorted(rows) == ["c_face.mp4", "d_face.mkv", "e_plain.mp4"]
    for name, row in rows.items():
        assert row["status"] == local_rows[name]["status"]
        if row["score"] is not None:
            assert abs(row["score"] - local_rows[name]["score"]) <= 1e-6
    assert (out / "report.html").is_file()
