"""lib-infer end to end on CPU: a folder of tiny generated clips - faces (one and two people), no face, and the bad
inputs of a real folder (zero-byte, text named .mp4, truncated, audio-only, one frame, gray, 10-bit, rotated, VFR,
16x16, 4K, unicode/HTML/space names, a decoder that hangs, a decoder that crashes) - scanned once per session with
the real CenterFace detector, decode worker processes and a tiny calibrated checkpoint. Then resume, the Ray-style
VideoScanner writing through a ScanSession, and ONNX-vs-torch agreement. CPU only; the GPU twin is marked gpu/dali.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.media import make_clip, write_audio_only

from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.results import RESULTS_JSONL, read_jsonl
from lib_deepfake.pipeline.run import run_scan

HOOK = "infer_fault_hooks:faulty_decode"


def _face_content(names: tuple[str, ...], face_px: int = 56):
    """Portraits (public-domain test images) side by side on a grey background, drifting slowly."""
    import cv2

    from lib_deepfake.prep.portraits import load_portrait

    tiles = []
    for name in names:
        p = load_portrait(name)
        x1, y1, x2, y2 = p.box
        m = 0.45 * (y2 - y1)
        crop = p.image[int(max(0, y1 - m)) : int(y2 + m), int(max(0, x1 - m)) : int(x2 + m)]
        s = face_px * 1.9 / crop.shape[0]
        tiles.append(cv2.resize(np.ascontiguousarray(crop), None, fx=s, fy=s, interpolation=cv2.INTER_AREA))

    def fn(index: int, width: int, height: int) -> np.ndarray:
        img = np.full((height, width, 3), 110, np.uint8)
        slot = width // len(tiles)
        for k, t in enumerate(tiles):
            th, tw = min(t.shape[0], height), min(t.shape[1], slot)
            x0 = k * slot + max(0, (slot - tw) // 2) + (index % 3)
            y0 = max(0, (height - th) // 2)
            img[y0 : y0 + th, x0 : x0 + tw] = t[:th, :tw]
        return img

    return fn


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("infer_corpus")
    v = root / "videos"
    one = _face_content(("astronaut",))
    files = {
        "face": make_clip(v / "face one.mp4", frames=12, size=(160, 128), content=one),
        "two": make_clip(
            v / "two_faces.mp4", frames=12, size=(288, 128), content=_face_content(("astronaut", "grace_hopper"))
        ),
        "noface": make_clip(v / "plain.mp4", frames=12, size=(96, 64)),
        "unicode": make_clip(
            v / "sub" / 'ünï <script>alert("x")</script> & co.mkv', frames=8, size=(160, 128), content=one
        ),
        "rotated": make_clip(v / "rotated.mp4", frames=8, size=(160, 128), rotation=90, content=one),
        "vfr": make_clip(v / "vfr.mkv", frames=10, size=(160, 128), vfr=True, content=one),
        "gray": make_clip(v / "gray.mkv", frames=6, size=(160, 128), codec="libx265", pix_fmt="gray", content=one),
        "tenbit": make_clip(
            v / "tenbit.mkv", frames=6, size=(160, 128), codec="libx265", pix_fmt="yuv420p10le", content=one
        ),
        "oneframe": make_clip(v / "one_frame.mp4", frames=1, size=(160, 128), content=one),
        "tiny": make_clip(v / "tiny16.mp4", frames=4, size=(16, 16)),
        "uhd": make_clip(v / "uhd.mp4", frames=2, size=(3840, 2160)),
        "audio": write_audio_only(v / "audio_only.mp4"),
    }
    (v / "zero.mp4").write_bytes(b"")
    (v / "text.mp4").write_text("this is not a video\n")
    (v / "readme.txt").write_text("not scanned: no video extension\n")
    data = files["face"].read_bytes()
    (v / "truncated.mp4").write_bytes(data[: len(data) // 2])
    damaged = bytearray(data)
    damaged[len(data) // 3 : len(data) // 3 + 400] = b"\x00" * 400  # damaged packets mid-stream
    (v / "damaged.mp4").write_bytes(bytes(damaged))
    # Not copies of plain.mp4: a scan gives files with the same content one row (duplicate_of), and these two must
    # reach the decoder to trigger its fault hooks.
    make_clip(v / "HANG.mp4", frames=11, size=(96, 64))
    make_clip(v / "CRASH.mp4", frames=10, size=(96, 64))
    files.update({k: v / n for k, n in [("zero", "zero.mp4"), ("text", "text.mp4"), ("truncated", "truncated.mp4"),
                                          ("hang", "HANG.mp4"), ("crash", "CRASH.mp4")]})  # fmt: skip
    files["root"] = v
    return files


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from lib_deepfake.model.testing import write_test_checkpoint

    return write_test_checkpoint(tmp_path_factory.mktemp("infer_model") / "tiny.pth", size=32, width_mult=0.25)


def _config(model: Path, **kw) -> ScanConfig:
    base = dict(model=model, plan="uniform:6", workers=2, timeout_s=3.0, batch_size=16, min_faces=2, threads=2,
                faces_jsonl=True, thumbnails=2)  # fmt: skip
    base.update(kw)
    return ScanConfig(**base)


@pytest.fixture(scope="session")
def scan(corpus, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("infer_out")
    summary = run_scan(_config(tiny_model), [corpus["root"]], out, scanner_kwargs={"decode_fn": HOOK})
    rows, _, dropped = read_jsonl(out / RESULTS_JSONL)
    assert not dropped
    return {"out": out, "summary": summary, "rows": {Path(r["path"]).name: r for r in rows}}


def test_every_file_gets_one_row_with_the_right_status(scan, corpus):
    rows = scan["rows"]
    assert "readme.txt" not in rows and len(rows) == 18
    assert rows["damaged.mp4"]["status"] in ("ok", "no_face", "error")  # whatever libav makes of it, one row
    assert scan["summary"]["skipped_non_video"] == 1
    expect_ok = ["face one.mp4", "two_faces.mp4", corpus["unicode"].name, "rotated.mp4", "vfr.mkv", "gray.mkv",
                 "tenbit.mkv", "one_frame.mp4"]  # fmt: skip
    for name in expect_ok:
        assert rows[name]["status"] == "ok", (name, rows[name]["error"])
        assert 0.0 <= rows[name]["score"] <= 1.0 and rows[name]["verdict"] in ("fake", "real")
    for name in ("plain.mp4", "tiny16.mp4", "uhd.mp4"):
        assert rows[name]["status"] == "no_face", (name, rows[name]["error"])
        assert rows[name]["score"] is None and rows[name]["verdict"] == "unknown"
    kinds = {
        "zero.mp4": "NotAVideoError",
        "text.mp4": "NotAVideoError",
        "truncated.mp4": "CorruptVideoError",
        "audio_only.mp4": "NoVideoStreamError",
        "HANG.mp4": "DecodeTimeoutError",
        "CRASH.mp4": "DecoderCrashError",
    }
    for name, kind in kinds.items():
        r = rows[name]
        assert r["status"] == "error" and r["error_kind"] == kind, (name, r["error_kind"], r["error"])
        assert r["score"] is None and r["error"] and "\n" not in r["error"]
    assert "killed" in rows["HANG.mp4"]["error"] and "3 s" in rows["HANG.mp4"]["error"]
    assert "SIGSEGV" in rows["CRASH.mp4"]["error"]


def test_row_contents(scan):
    rows = scan["rows"]
    two = rows["two_faces.mp4"]
    assert two["identities"] == 2 and two["faces"] == 12 and two["frames_sampled"] == 6
    assert two["frames_with_faces"] == 6 and two["codec"] == "h264" and two["resolution"] == "288x128"
    assert max(x["score"] for x in two["identity_scores"]) == pytest.approx(two["score"], abs=1e-6)
    assert rows["rotated.mp4"]["resolution"] == "128x160" and rows["rotated.mp4"]["rotation"] == 90
    assert rows["tenbit.mkv"]["bit_depth"] == 10
    assert rows["one_frame.mp4"]["frames_sampled"] == 1
    uhd = rows["uhd.mp4"]
    assert uhd["resolution"] == "3840x2160" and uhd["analysis_scale"] == pytest.approx(0.5)
    for r in rows.values():
        assert r["seconds"] is not None and r["size_bytes"] is not None


def test_outputs_faces_report_and_run_json(scan, corpus):
    out = scan["out"]
    run = json.loads((out / "run.json").read_text())
    res = run["resolved"]
    assert res["engine"] == "torch" and "auto" in res["engine_choice"]
    assert res["decoder"] == "pyav" and "auto" in res["decoder_choice"]
    assert res["detector_provider"] == "CPUExecutionProvider" and res["device"] == "cpu"
    assert "identity-max" in run["aggregation_rule"] and run["finished"] and run["summary"]["files"] == 18
    faces, _, _ = read_jsonl(out / "faces.jsonl")
    two = [f for f in faces if f["path"].endswith("two_faces.mp4")]
    assert len(two) == 12 and {f["identity"] for f in two} == {0, 1}
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page and "\\u003cscript\\u003ealert" in page  # the name only as escaped data
    chunks = sorted((out / "report_files").glob("details-*.js"))
    assert chunks and '"jpeg":"/9j/' in chunks[0].read_text() and '"timeline":' in chunks[0].read_text()
    csv_text = (out / "results.csv").read_text(encoding="utf-8")
    assert csv_text.count("\n") == 19


def test_resume_after_a_crash_loses_and_duplicates_nothing(scan, corpus, tiny_model, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(scan["out"], out)
    lines = (out / RESULTS_JSONL).read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if "two_faces" not in ln and "plain.mp4" not in ln]
    (out / RESULTS_JSONL).write_text("".join(kept) + lines[0][:40])  # two rows lost, a torn line at the end
    summary = run_scan(_config(tiny_model), [corpus["root"]], out, resume=True,
                       scanner_kwargs={"in_process": True})  # fmt: skip
    assert summary["scanned_this_run"] == 2 and summary["skipped_done"] == 16
    rows, _, dropped = read_jsonl(out / RESULTS_JSONL)
    assert not dropped and len(rows) == 18 and len({r["path"] for r in rows}) == 18
    again = {Path(r["path"]).name: r for r in rows}
    assert again["two_faces.mp4"]["score"] == pytest.approx(scan["rows"]["two_faces.mp4"]["score"], abs=1e-6)
    faces, _, _ = read_jsonl(out / "faces.jsonl")
    assert sum(f["path"].endswith("two_faces.mp4") for f in faces) == 12


def test_video_scanner_gives_identical_rows_written_by_a_session(scan, corpus, tiny_model, tmp_path):
    """Outcomes made outside run_scan (as Ray workers make them) are written by a ScanSession, each once."""
    from lib_deepfake.pipeline.scanner import VideoScanner
    from lib_deepfake.pipeline.session import ScanSession

    keys = [str(corpus["face"]), str(corpus["zero"])]
    config = _config(tiny_model, workers=1)
    vs = VideoScanner(config, in_process=True)
    try:
        rows = vs({"path": keys})
        rows2 = vs(keys[:1])  # engines and workers are reused between calls
        outcomes = vs.outcomes(keys)
    finally:
        vs.close()
    assert [r["path"] for r in rows] == keys
    ref = scan["rows"]["face one.mp4"]
    for r in (rows[0], rows2[0]):
        assert r["score"] == pytest.approx(ref["score"], abs=1e-6) and r["faces"] == ref["faces"]
    assert rows[1]["status"] == "error"
    with ScanSession(config, keys, tmp_path / "written") as session:
        session.start(vs.scanner.resolved)
        assert list(session.todo()) == keys
        assert [session.append(o) for o in outcomes + outcomes] == [True, True, False, False]
    result = session.result
    assert result is not None and result.summary["files"] == 2 and result["scanned_this_run"] == 2
    written, _, _ = read_jsonl(tmp_path / "written" / RESULTS_JSONL)
    assert [r["path"] for r in written] == keys and (tmp_path / "written" / "report.html").is_file()
    assert json.loads((tmp_path / "written" / "run.json").read_text()) == result.header


@pytest.mark.slow  # the ONNX export alone takes 10-30 s on a shared 2-core machine
def test_onnx_engine_agrees_with_torch(scan, corpus, tiny_model, tmp_path):
    pytest.importorskip("onnxruntime")
    from lib_deepfake.export.onnx_export import export_onnx

    onnx_path = export_onnx(tiny_model, tmp_path / "tiny.onnx").path
    out = tmp_path / "onnx_out"
    run_scan(_config(onnx_path, workers=1), [corpus["face"], corpus["two"]], out, scanner_kwargs={"in_process": True})
    rows = {Path(r["path"]).name: r for r in read_jsonl(out / RESULTS_JSONL)[0]}
    run = json.loads((out / "run.json").read_text())
    assert run["resolved"]["engine"] == "onnxrt" and run["resolved"]["provider"] == "CPUExecutionProvider"
    for name in ("face one.mp4", "two_faces.mp4"):
        assert rows[name]["score"] == pytest.approx(scan["rows"][name]["score"], abs=1e-4)


@pytest.mark.gpu
@pytest.mark.dali
def test_gpu_path_matches_cpu_path(scan, corpus, tiny_model, tmp_path):
    """DALI/NVDEC decode -> CenterFace on CUDA -> crops on the GPU -> torch engine on CUDA; rows as on CPU."""
    names = ["face one.mp4", "two_faces.mp4", "rotated.mp4"]
    paths = [corpus["root"] / n for n in names]
    out = tmp_path / "gpu_out"
    run_scan(_config(tiny_model, device="cuda", decoder="dali", workers=3), paths, out)
    run = json.loads((out / "run.json").read_text())
    assert run["resolved"]["decoder"] == "dali" and run["resolved"]["detector_provider"] == "CUDAExecutionProvider"
    rows = {Path(r["path"]).name: r for r in read_jsonl(out / RESULTS_JSONL)[0]}
    for n in names:
        cpu, gpu = scan["rows"][n], rows[n]
        assert gpu["status"] == cpu["status"] == "ok" and gpu["faces"] == cpu["faces"]
        assert gpu["score"] == pytest.approx(cpu["score"], abs=0.02)  # NVDEC colour conversion differs slightly


@pytest.mark.dali
def test_dali_thread_path_on_cpu_matches_pyav(corpus, tiny_model, tmp_path):
    """The GPU path's decode stage (DALI on threads, in process) on DALI's CPU decoder: VP9 scores as with PyAV;
    H.264 gets an UnsupportedCodecError row naming --decoder pyav (DALI never falls back silently)."""
    clip = make_clip(tmp_path / "in" / "vp9.webm", frames=8, size=(160, 128), codec="libvpx-vp9",
                     content=_face_content(("astronaut",)))  # fmt: skip
    rows = {}
    for decoder in ("dali", "pyav"):
        out = tmp_path / decoder
        run_scan(_config(tiny_model, decoder=decoder, workers=2, faces_jsonl=False), [clip, corpus["face"]], out,
                 scanner_kwargs={"in_process": True})  # fmt: skip
        rows[decoder] = {Path(r["path"]).name: r for r in read_jsonl(out / RESULTS_JSONL)[0]}
    dali, pyav = rows["dali"]["vp9.webm"], rows["pyav"]["vp9.webm"]
    assert dali["status"] == pyav["status"] == "ok" and dali["decoder"] == "dali" and dali["faces"] == pyav["faces"]
    assert dali["score"] == pytest.approx(pyav["score"], abs=0.05)  # colour conversion differs slightly
    h264 = rows["dali"]["face one.mp4"]
    assert h264["status"] == "error" and h264["error_kind"] == "UnsupportedCodecError"
    assert "--decoder pyav" in h264["error"]
