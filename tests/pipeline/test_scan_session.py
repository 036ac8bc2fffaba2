"""The scan's output side and settings without models: ScanSession (progress, one row per video, resume, Ctrl-C,
a failed driver), the outcome rules (video_row, error_outcome), the composed ScanConfig (fingerprints and run.json
keys of earlier versions, flat names, one default each), and ``allow_truncated`` end to end on a truncated clip with
a fake engine (a real Engine subclass) and the centre-box detector. CPU only, no markers, a few seconds.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from tests.helpers.media import make_clip

from lib_deepfake.engines.base import Engine
from lib_deepfake.errors import ContractError
from lib_deepfake.faces.base import CenterCropDetector, DetectorConfig
from lib_deepfake.pipeline.config import NESTED_SETTINGS, DecodeSettings, ScanConfig
from lib_deepfake.pipeline.inputs import Discovery, discover
from lib_deepfake.pipeline.outcomes import VideoOutcome, error_outcome, video_row
from lib_deepfake.pipeline.results import RESULTS_JSONL, ResultsStore, read_jsonl
from lib_deepfake.pipeline.session import ScanResult, ScanSession

# -- outcomes ----------------------------------------------------------------------------------------------------------


def test_video_row_decides_the_status_in_one_place():
    ok = video_row("/v/a.mp4", threshold=0.5, score=0.7, frames_sampled=4)
    assert ok["status"] == "ok" and ok["verdict"] == "fake" and ok["error"] is None
    nf = video_row("/v/b.mp4", threshold=0.5, frames_sampled=4)
    assert nf["status"] == "no_face" and nf["error"] == "no face found in 4 sampled frame(s)" and nf["score"] is None
    er = video_row("/v/c.mp4", threshold=0.5, score=0.9, error="bad\nfile", error_kind="CorruptVideoError")
    assert er["status"] == "error" and er["score"] is None and er["error"] == "bad file"
    out = error_outcome("/v/c.mp4", "worker died", "WorkerCrashError", threshold=0.5)
    assert out.row["error_kind"] == "WorkerCrashError" and out.faces == []
    assert out.report == {"path": "/v/c.mp4", "thumbs": [], "timeline": []}
    assert VideoOutcome.from_dict(json.loads(json.dumps(out.to_dict()))) == out


# -- the composed config -------------------------------------------------------------------------------------------

#: Computed by the ScanConfig before it held DecodeSettings/DetectorConfig: a resume of a scan written by that
#: version must match (the model files do not exist, so the fingerprint uses the path only).
EARLIER_FINGERPRINTS = [
    ({"model": "/nonexistent/m.onnx"}, "78886bbf7ad0522b"),
    ({"model": "/nonexistent/m.pth", "plan": "uniform:6", "detector": "center", "detector_max_side": None,
      "threshold": 0.4, "aggregation": "topk", "top_k": 3, "min_faces": 2, "detector_threshold": 0.6,
      "min_face_px": 10.0, "crop_scale": 1.25, "max_analysis_side": 1280, "detector_model": "/x/det.onnx"},
     "f26882809fabab78"),
    ({"model": "/nonexistent/m.onnx", "detect_every": 2, "interpolate_iou": 0.6, "engine": "onnxrt", "workers": 3,
      "timeout_s": 30.0}, "bbdc12bf4fe26e42"),
]  # fmt: skip

#: run.json "config" keys of the earlier version, in order ("extra", which only carried allow_truncated, became the
#: real allow_truncated field).
EARLIER_KEYS = [
    "model", "engine", "decoder", "device", "plan", "threshold", "batch_size", "detect_batch", "workers", "timeout_s",
    "aggregation", "min_faces", "top_k", "detector", "detector_model", "detector_max_side", "detector_threshold",
    "detect_every", "interpolate_iou", "min_face_px", "crop_scale", "max_analysis_side", "max_frame_bytes",
    "max_pixels", "threads", "faces_jsonl", "report", "thumbnails", "allow_cpu_fallback",
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "fingerprint"), EARLIER_FINGERPRINTS)
def test_fingerprints_and_run_json_keys_of_earlier_versions(kwargs, fingerprint):
    # A session settles the threshold before it fingerprints (None, the default: the model card's); a model without
    # a card gets 0.5, the earlier versions' default, so their scans still resume.
    cfg = ScanConfig(**{"threshold": 0.5, **kwargs})
    assert cfg.fingerprint() == fingerprint
    assert list(cfg.to_dict()) == [*EARLIER_KEYS, "allow_truncated"]
    assert ScanConfig(**cfg.to_dict()) == cfg  # run.json's config rebuilds the config


def test_config_holds_the_small_configs_with_one_default_each(tmp_path):
    cfg = ScanConfig(tmp_path / "m.onnx")
    assert cfg.decode == DecodeSettings() and cfg.detection == DetectorConfig()
    custom = ScanConfig(tmp_path / "m.onnx", plan="uniform:8", timeout_s=30, allow_truncated=True,
                        detector_max_side=320, detect_batch=4, threads=3)  # fmt: skip
    assert custom.decode == DecodeSettings(plan="uniform:8", timeout_s=30, allow_truncated=True)
    assert custom.detection == DetectorConfig(max_side=320, batch_size=4)
    for flat, (part, name) in NESTED_SETTINGS.items():
        assert getattr(custom, flat) == getattr(getattr(custom, part), name), flat
    # Flat names override the small config they are given with, which is also how replace() works on them.
    moved = replace(custom, plan="uniform:4", device="cuda")
    assert moved.decode == replace(custom.decode, plan="uniform:4") and moved.device == "cuda"
    given = ScanConfig(tmp_path / "m.onnx", decode=DecodeSettings(plan="every:5"), timeout_s=9)
    assert given.decode == DecodeSettings(plan="every:5", timeout_s=9)
    det = custom.detector_config()  # where the detector runs follows the scan
    assert (det.max_side, det.batch_size, det.device, det.threads, det.spin) == (320, 4, "cpu", 3, False)
    with pytest.raises(TypeError, match="unexpected keyword argument.*detector_side"):
        ScanConfig(tmp_path / "m.onnx", detector_side=320)
    with pytest.raises(ContractError, match="timeout"):
        ScanConfig(tmp_path / "m.onnx", timeout_s=0)
    with pytest.raises(ContractError, match="score_threshold"):
        ScanConfig(tmp_path / "m.onnx", detector_threshold=1.5)


# -- the session ---------------------------------------------------------------------------------------------------


@pytest.fixture
def videos(tmp_path) -> list[str]:
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (folder / name).write_bytes(f"not decoded here: {name}".encode())  # distinct: equal files are copies
        paths.append(str(folder / name))
    (folder / "notes.txt").write_text("skipped")
    return paths


def _outcome(path: str, score: float | None = 0.8) -> VideoOutcome:
    return VideoOutcome(video_row(path, threshold=0.5, score=score, frames_sampled=2), [], {"path": path,
                        "thumbs": [], "timeline": []})  # fmt: skip


def _session(config: ScanConfig, videos: list[str], out: Path, **kw) -> ScanSession:
    return ScanSession(config, [Path(videos[0]).parent], out, **kw)


def test_session_writes_each_video_once_reports_progress_and_returns_the_header(tmp_path, videos):
    config = ScanConfig(tmp_path / "m.onnx", faces_jsonl=True)
    seen: list[tuple[str, int, int]] = []
    with _session(config, videos, tmp_path / "out", on_outcome=lambda r, d, t: seen.append((r["name"], d, t))) as s:
        assert list(s.todo()) == videos and s.total == 3
        s.start({"engine": "fake"}, model_manifest={"precision": "fp32"}, details=lambda: {"stages": {"detect_s": 1}})
        assert s.append(_outcome(videos[0])) and not s.append(_outcome(videos[0]))  # a second row is refused
        s.append(_outcome(videos[1], score=None))
        s.append(error_outcome(videos[2], "bad", "NotAVideoError", threshold=0.5))
    result = s.result
    assert isinstance(result, ScanResult) and seen == [("a.mp4", 1, 3), ("b.mp4", 2, 3), ("c.mp4", 3, 3)]
    assert result["status"] == {"ok": 1, "no_face": 1, "error": 1} and dict(result) == result.summary
    assert result.summary["stages"] == {"detect_s": 1} and result.summary["skipped_non_video"] == 1
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run == result.header and run["finished"] and not run["resumed"] and "urls" not in run["inputs"]
    assert list(run)[:4] == ["tool", "started", "finished", "fingerprint"] and run["model_manifest"]
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "faces.jsonl").is_file()

    with _session(config, videos, tmp_path / "out", resume=True) as again:  # the lock was released
        assert list(again.todo()) == []
        again.start({"engine": "fake"})
    assert again.result["skipped_done"] == 3 and again.result.header["resumed"]


def test_ctrl_c_writes_the_summary_and_report_then_propagates(tmp_path, videos):
    config = ScanConfig(tmp_path / "m.onnx")
    with pytest.raises(KeyboardInterrupt), _session(config, videos, tmp_path / "out") as s:
        s.start({})
        s.append(_outcome(videos[0]))
        raise KeyboardInterrupt
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["finished"] is None and run["summary"]["interrupted"] and run["summary"]["scanned_this_run"] == 1
    assert (tmp_path / "out" / "report.html").is_file()
    with _session(config, videos, tmp_path / "out", resume=True) as resumed:
        assert list(resumed.todo()) == videos[1:]
        resumed.start({})


def test_a_failed_driver_keeps_its_rows_and_an_early_failure_writes_no_summary(tmp_path, videos):
    config = ScanConfig(tmp_path / "m.onnx", report=False)
    with _session(config, videos, tmp_path / "out") as s:
        s.start({})
        s.append(_outcome(videos[0]))
        result = s.finish(complete=False)  # e.g. the Ray job failed part-way
    assert result.header["finished"] is None and not result["interrupted"] and result["files"] == 1
    assert not (tmp_path / "out" / "report.html").exists()

    with pytest.raises(RuntimeError), _session(config, videos, tmp_path / "early") as early:
        raise RuntimeError("the engine could not load")  # before start(): nothing to summarise
    assert early.result is None and not (tmp_path / "early" / "run.json").exists()
    ResultsStore(tmp_path / "early", overwrite=True).open()  # the folder's lock was released


def test_session_with_a_discovery_that_takes_urls(tmp_path, videos):
    def with_urls(inputs, all_files=False) -> Discovery:
        found = discover([i for i in inputs if "://" not in str(i)], all_files=all_files)
        found.urls = [str(i) for i in inputs if "://" in str(i)]
        return found

    url = "s3://bucket/d.mp4"
    with ScanSession(ScanConfig(tmp_path / "m.onnx"), [videos[0], url], tmp_path / "out", discover=with_urls) as s:
        assert list(s.todo()) == [videos[0], url]
        s.start({}, ray={"address": "local"})
        s.append(error_outcome(url, "unreadable", "RemoteReadError", threshold=0.5))
    assert s.result.header["inputs"]["urls"] == 1 and s.result.header["ray"] == {"address": "local"}
    assert list(s.result.header)[-3:] == ["resumed", "ray", "summary"]


# -- allow_truncated end to end ------------------------------------------------------------------------------------


class _ConstantEngine(Engine):
    """A real Engine (the interface the scanner is typed against) that scores every crop 0.75."""

    name = "constant"
    artifact_suffixes = (".const",)

    @property
    def input_size(self) -> int:
        return 16

    def _load(self) -> None:
        pass

    def _infer(self, faces: torch.Tensor) -> torch.Tensor:
        return torch.full((faces.shape[0],), 0.75, device=faces.device)


def test_allow_truncated_reaches_the_decoder(tmp_path):
    from lib_deepfake.pipeline.run import run_scan

    data = make_clip(tmp_path / "src.mkv", frames=40, gop=10, noise=True).read_bytes()
    cut = tmp_path / "in" / "cut.mkv"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])  # the header says 40 frames, 18 are there
    artifact = tmp_path / "m.const"
    artifact.write_bytes(b"")
    rows = {}
    for allow in (False, True):
        config = ScanConfig(artifact, engine="torch", plan="uniform:8", detector="center", workers=1, threads=1,
                            allow_truncated=allow, report=False)  # fmt: skip
        engine = _ConstantEngine(artifact)
        kwargs = {"engine": engine.load(), "detector": CenterCropDetector(), "in_process": True}
        result = run_scan(config, [cut], tmp_path / f"out-{allow}", scanner_kwargs=kwargs)
        engine.close()
        assert result.header["config"]["allow_truncated"] is allow
        (rows[allow],) = read_jsonl(tmp_path / f"out-{allow}" / RESULTS_JSONL)[0]
    assert rows[False]["status"] == "error" and rows[False]["error_kind"] == "CorruptVideoError"
    assert rows[True]["status"] == "ok", (rows[True]["error_kind"], rows[True]["error"])
    assert rows[True]["score"] == pytest.approx(0.75) and rows[True]["frames_sampled"] == 8
