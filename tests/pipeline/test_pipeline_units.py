"""lib-infer building blocks without decoding or models: aggregation, input discovery, rows, the incremental
results store with resume repair, and the HTML report's escaping. CPU only, no markers, well under a second."""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from lib_deepfake.pipeline.aggregate import aggregate, verdict
from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.inputs import InputError, discover
from lib_deepfake.pipeline.results import (
    RESULTS_CSV,
    RESULTS_JSONL,
    OutputError,
    ResultsStore,
    build_row,
    read_jsonl,
)
from lib_deepfake.pipeline.summary import summarize, video_metrics

# -- aggregation ----------------------------------------------------------------------------------------------------


def test_identity_max_ignores_identities_below_min_faces():
    ids = np.array([0, 0, 0, 1])
    scores = np.array([0.2, 0.3, 0.1, 0.99])
    vs = aggregate(ids, scores, rule="identity-max", min_faces=3)
    assert vs.score == pytest.approx(0.2)  # identity 1 has one face: not eligible
    assert vs.top_identity == 0
    assert [x.eligible for x in vs.identities] == [True, False]
    vs1 = aggregate(ids, scores, rule="identity-max", min_faces=1)
    assert vs1.score == pytest.approx(0.99) and vs1.top_identity == 1


def test_identity_max_falls_back_to_all_identities_when_none_is_long_enough():
    vs = aggregate(np.array([0, 1]), np.array([0.4, 0.7]), rule="identity-max", min_faces=3)
    assert vs.score == pytest.approx(0.7)
    assert all(x.eligible for x in vs.identities)


def test_mean_and_topk_rules():
    ids = np.zeros(5, np.int64)
    scores = np.array([0.1, 0.2, 0.3, 0.9, 1.0])
    assert aggregate(ids, scores, rule="mean").score == pytest.approx(0.5)
    assert aggregate(ids, scores, rule="topk", top_k=2).score == pytest.approx(0.95)
    assert aggregate(ids, scores, rule="topk", top_k=50).score == pytest.approx(0.5)


def test_no_faces_means_no_score_never_half():
    vs = aggregate(np.zeros(0), np.zeros(0))
    assert vs.score is None and vs.identities == []
    assert verdict(None, 0.5) == "unknown"
    assert verdict(0.5, 0.5) == "fake" and verdict(0.4999, 0.5) == "real"


def test_config_validates_and_states_its_rule(tmp_path):
    cfg = ScanConfig(model=tmp_path / "m.onnx", min_faces=4)
    assert "at least 4" in cfg.aggregation_rule()
    with pytest.raises(Exception, match="aggregation"):
        ScanConfig(model=tmp_path / "m.onnx", aggregation="median")
    from lib_deepfake.errors import LibDeepfakeError

    with pytest.raises(LibDeepfakeError):
        ScanConfig(model=tmp_path / "m.onnx", plan="uniform:-3")
    assert cfg.fingerprint() != ScanConfig(model=tmp_path / "m.onnx", plan="uniform:8").fingerprint()


# -- discovery ------------------------------------------------------------------------------------------------------


def _touch(p: Path, data: bytes = b"x") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_discover_folders_lists_and_symlink_loops(tmp_path):
    root = tmp_path / "in"
    a = _touch(root / "a.MP4")
    b = _touch(root / "sub dir" / "b é <x>.mkv")
    _touch(root / "notes.txt")
    _touch(root / "sub dir" / "deeper" / "c.webm")
    os.symlink(root, root / "sub dir" / "loop")  # a loop back to the top
    os.symlink(a, root / "alias.mp4")  # a second name of a.MP4
    lst = _touch(tmp_path / "list.txt", f"# comment\n{b}\nin/a.MP4\n\nmissing.mp4\n".encode())
    found = discover([root, lst, a])
    names = [p.name for p in found.files]
    assert sorted(names) == sorted(["a.MP4", "b é <x>.mkv", "c.webm", "missing.mp4"])
    assert len(set(map(str, found.files))) == len(found.files)
    assert found.skipped_non_video == 1  # notes.txt inside the folder
    assert found.duplicates >= 3  # alias, the loop, the list's and the argument's second routes
    assert found.missing == [str(tmp_path / "missing.mp4")]
    assert all(p.is_absolute() for p in found.files)
    assert discover([root], all_files=True).skipped_non_video == 0


def test_discover_explicit_non_video_is_scanned_and_missing_input_raises(tmp_path):
    f = _touch(tmp_path / "image.jpg")
    assert discover([f]).files == [f]
    with pytest.raises(InputError, match="not found"):
        discover([tmp_path / "nope"])


# -- rows and the results store ---------------------------------------------------------------------------------------


def test_build_row_rules(tmp_path):
    ok = build_row("/x/a.mp4", status="ok", threshold=0.5, score=0.7, timings={"decode_s": 1.0, "detect_s": 0.5})
    assert ok["verdict"] == "fake" and ok["seconds"] == 1.5 and ok["name"] == "a.mp4"
    nf = build_row("/x/b.mp4", status="no_face", threshold=0.5, score=0.5, error="no face found")
    assert nf["score"] is None and nf["verdict"] == "unknown" and nf["error_kind"] is None
    er = build_row("/x/c.mp4", status="error", threshold=0.5, error="bad\nthing", error_kind="CorruptVideoError")
    assert er["score"] is None and er["verdict"] == "error" and er["error"] == "bad thing"
    with pytest.raises(ValueError):
        build_row("/x/d.mp4", status="ok", threshold=0.5)
    with pytest.raises(ValueError):
        build_row("/x/d.mp4", status="maybe", threshold=0.5)


def _row(i: int, status: str = "ok") -> dict:
    return build_row(f"/v/{i}.mp4", status=status, threshold=0.5, score=i / 10 if status == "ok" else None,
                     error=None if status == "ok" else "x")  # fmt: skip


def test_store_resume_repairs_torn_lines_and_never_duplicates(tmp_path):
    store = ResultsStore(tmp_path, faces=True, fingerprint="f1")
    assert store.open() == set()
    store.write_run({"fingerprint": "f1"})
    for i in range(3):
        store.append(_row(i), faces=[{"path": f"/v/{i}.mp4", "frame": 0}], report={"path": f"/v/{i}.mp4"})
    store.append(_row(1))  # a second row for the same file is refused
    store.close()
    # Simulate a crash in the middle of the 4th video: its faces landed, its row was torn.
    with open(tmp_path / "faces.jsonl", "a") as fh:
        fh.write(json.dumps({"path": "/v/3.mp4", "frame": 0}) + "\n")
    with open(tmp_path / RESULTS_JSONL, "a") as fh:
        fh.write('{"path": "/v/3.mp4", "sta')
    with pytest.raises(OutputError, match="--resume"):
        ResultsStore(tmp_path, fingerprint="f1").open()
    with pytest.raises(OutputError, match="other settings"):
        ResultsStore(tmp_path, resume=True, fingerprint="f2").open()
    store = ResultsStore(tmp_path, resume=True, faces=True, fingerprint="f1")
    assert store.open() == {"/v/0.mp4", "/v/1.mp4", "/v/2.mp4"}
    store.append(_row(3), faces=[{"path": "/v/3.mp4", "frame": 0}], report={"path": "/v/3.mp4"})
    store.close()
    rows, _, dropped = read_jsonl(tmp_path / RESULTS_JSONL)
    assert not dropped and [r["path"] for r in rows] == [f"/v/{i}.mp4" for i in range(4)]
    faces, _, _ = read_jsonl(tmp_path / "faces.jsonl")
    assert [f["path"] for f in faces] == [f"/v/{i}.mp4" for i in range(4)]
    csv_lines = (tmp_path / RESULTS_CSV).read_text().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("path,name,status,score,verdict")


def test_store_write_failure_is_a_clear_error_without_a_torn_line(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    store.open()
    store.append(_row(0))

    real_write, calls = os.write, []

    def full(fd: int, data: bytes) -> int:  # the disk fills up after a few bytes of the record
        calls.append(fd)
        if len(calls) == 1:
            return real_write(fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    # The store's own words (which folder), with the system's reason passed on.
    expected = rf"^cannot write results\.jsonl in {re.escape(str(tmp_path))}: .*No space left"
    with pytest.raises(OutputError, match=expected):
        store.append(_row(1))
    monkeypatch.undo()
    store.close()
    rows, _, dropped = read_jsonl(tmp_path / RESULTS_JSONL)
    assert not dropped and [r["path"] for r in rows] == ["/v/0.mp4"]


def test_one_scan_per_output_folder(tmp_path):
    first = ResultsStore(tmp_path)
    first.open()
    with pytest.raises(OutputError, match="another lib-infer"):
        ResultsStore(tmp_path, overwrite=True).open()
    first.close()
    second = ResultsStore(tmp_path, resume=True)
    second.open()
    second.close()


def test_store_refuses_unwritable_output(tmp_path):
    blocker = _touch(tmp_path / "file")
    with pytest.raises(OutputError):
        ResultsStore(blocker / "out").open()


def test_summary_metrics_auc():
    rows = [_row(9), _row(8), _row(2), _row(1), _row(5, "no_face")]
    labels = {"/v/9.mp4": 1, "/v/8.mp4": 1, "/v/2.mp4": 0, "/v/1.mp4": 0, "/v/5.mp4": 1}
    m = video_metrics(rows, labels, 0.5)
    assert m["auc"] == 1.0 and m["scored"] == 4 and m["unscored"] == 1 and m["accuracy"] == 1.0
    s = summarize(rows, labels)
    assert s["status"] == {"ok": 4, "no_face": 1, "error": 0}


# -- report -----------------------------------------------------------------------------------------------------------


def test_report_escapes_everything_and_stays_offline(tmp_path):
    from lib_deepfake.report import REPORT_FILES, write_report

    evil = '/v/<script>alert("x")</script> & "q" ü.mp4'
    row = build_row(evil, status="ok", threshold=0.5, score=0.9)
    err = build_row("/v/<img src=x onerror=alert(1)>.mp4", status="error", threshold=0.5,
                    error="<b>bad</b>", error_kind="NotAVideoError")  # fmt: skip
    data = [{"path": evil, "thumbs": [{"jpeg": "QUJD", "score": 0.9, "frame": 3, "identity": 0}],
             "timeline": [[0, 0.0, 0.1], [3, 0.1, 0.9], [6, 0.2, None]]}]  # fmt: skip
    run = {"config": {"threshold": 0.5, "model": "<m>.onnx", "plan": "uniform:32"}, "resolved": {"engine": "onnxrt"},
           "aggregation_rule": "identity-max"}  # fmt: skip
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (row, err)))
    (tmp_path / "report_data.jsonl").write_text(json.dumps(data[0]) + "\n")
    page_path = write_report(tmp_path / "report.html", results=tmp_path / "results.jsonl",
                             report_data=tmp_path / "report_data.jsonl", run=run,
                             summary=summarize([row, err]))  # fmt: skip
    page = page_path.read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>bad" not in page
    assert "&lt;m&gt;.onnx" in page  # header text is HTML-escaped
    rows = json.loads(re.search(r'id="rows-data">(.*?)</script>', page, re.S).group(1))
    meta = json.loads(re.search(r'id="meta-data">(.*?)</script>', page, re.S).group(1))
    assert meta["dirs"][rows[0][0]] + rows[0][1] == evil  # the data says exactly what the file is called
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    csp = html.unescape(re.search(r'Content-Security-Policy" content="([^"]*)"', page).group(1))
    assert page.count("<script>") == 1 and "default-src 'none'" in csp and "connect-src 'none'" in csp
    chunk = (tmp_path / REPORT_FILES / meta["chunk_files"][0]).read_text()
    assert '"jpeg":"QUJD"' in chunk and '"timeline":[[0,0.0,0.1]' in chunk


class _RecordingDetector:
    """Finds one 20 px face per frame: at x = t up to frame 4, then (a scene cut) at x = 100 + t. Frame t is
    recognised by its first pixel; records which frames it was shown."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def detect(self, frames):
        from lib_deepfake.faces.base import Detections

        out = []
        for f in frames:
            t = int(f[0, 0, 0])
            self.seen.append(t)
            x = float(t if t <= 4 else 100 + t)
            out.append(Detections(np.array([[x, 10, x + 20, 30]], np.float32), np.array([0.9], np.float32),
                                  np.zeros((1, 5, 2), np.float32)))  # fmt: skip
        return out


class _ConstantEngine:
    input_size = 16

    def infer(self, batch):
        import torch

        return torch.full((batch.shape[0],), 0.25)


@pytest.mark.parametrize("every", [1, 2])
def test_sparse_detection_interpolates_agreeing_gaps_and_detects_across_a_cut(tmp_path, every):
    from lib_deepfake.pipeline.decode import DecodeResult
    from lib_deepfake.pipeline.stages import ScanPipeline

    n = 10
    frames = np.zeros((n, 48, 160, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(n)
    res = DecodeResult("clip.mp4", frames, np.arange(n) * 3, np.arange(n) / 10.0, {"codec": "h264"})
    config = ScanConfig(model=tmp_path / "m.onnx", detect_every=every, detect_batch=4, min_faces=1)
    detector = _RecordingDetector()
    pipe = ScanPipeline(config, _ConstantEngine(), detector)
    assert pipe.add(res) == []
    (outcome,) = list(pipe.drain())
    assert outcome.row["status"] == "ok" and outcome.row["faces"] == n and outcome.row["identities"] == 2
    interpolated = sorted(f["frame"] // 3 for f in outcome.faces if f["box_source"] == "interpolated")
    if every == 1:
        assert sorted(detector.seen) == list(range(n)) and interpolated == []
    else:
        # First pass 0,2,4,6,8,9; the cut between 4 and 6 sends 5 back to the detector; 1, 3, 7 are interpolated.
        assert detector.seen[:6] == [0, 2, 4, 6, 8, 9] and sorted(detector.seen[6:]) == [5]
        assert interpolated == [1, 3, 7]
        box = {f["frame"] // 3: f["box"] for f in outcome.faces}
        assert box[3] == [3.0, 10.0, 23.0, 30.0] and box[7] == [107.0, 10.0, 127.0, 30.0]
    assert pipe.totals.frames_detected == len(detector.seen)
    assert pipe.totals.frames_interpolated == len(interpolated)
