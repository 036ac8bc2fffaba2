"""lib-bench pipeline (lib_deepfake.bench.pipeline*): the fair reference (forward decode converting only the
sampled frames; the same detector settings as our FP32 row, recorded under the same keys), our rows, per-round
ratios, accuracy effect against the FP32 row, the protocol record, and the clip sets. A tiny run: 2 tiny clips,
the 'center' detector, a tiny random model; no timing asserts. CPU, no markers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.helpers.media import make_clip

from lib_deepfake.bench.pipeline import plan_rows, run_pipeline_bench
from lib_deepfake.bench.pipeline_clips import CLIP_SETS, clip_set
from lib_deepfake.bench.pipeline_reference import read_sampled_frames
from lib_deepfake.bench.pipeline_report import format_markdown, score_effect
from lib_deepfake.bench.protocol import BenchProtocol
from lib_deepfake.errors import ContractError


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from lib_deepfake.model.testing import write_test_checkpoint

    root = tmp_path_factory.mktemp("pipeline_bench")
    model = write_test_checkpoint(root / "tiny.pth", size=32, width_mult=0.25)
    clips = [make_clip(root / "real.mp4", frames=12, size=(64, 48), gop=5, bframes=2),
             make_clip(root / "fake.mp4", frames=10, size=(64, 48), gop=5, bframes=2)]  # fmt: skip
    labels = root / "labels.csv"
    labels.write_text("path,label\nreal.mp4,0\nfake.mp4,1\n")
    return {"root": root, "model": model, "clips": clips, "labels": labels}


def test_reference_reader_keeps_only_the_sampled_frames(setup):
    from lib_deepfake.video import open_video

    clip = str(setup["clips"][0])
    frames, indices, decoded = read_sampled_frames(clip, 4)
    assert indices == [0, 3, 7, 11] and decoded == 12  # linspace(0, 11, 4) -> 0, 3, 7, 11; stops after 11
    with open_video(clip, decoder="pyav") as src:
        ours = src.read("uniform:4")
    assert [int(i) for i in ours.indices] == indices
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(frames, ours.frames))
    _, early, decoded_early = read_sampled_frames(clip, 1)
    assert early == [0] and decoded_early == 1  # nothing decoded past the last wanted frame


@pytest.fixture(scope="module")
def result(setup):
    messages: list[str] = []
    res = run_pipeline_bench(setup["clips"], setup["model"], plan="uniform:4", workers=1, batch_size=8, rounds=2,
                             detector="center", detect_every=2, labels=setup["labels"],
                             protocol=BenchProtocol(allow_noisy=True), progress=messages.append)  # fmt: skip
    res["_messages"] = messages
    return res


def test_reference_settings_recorded_like_ours(result):
    ours, ref = result["ours"]["resolved"], result["reference"]["resolved"]
    assert set(ref) == set(ours)
    assert ref["decoder"] == "pyav" and ours["decoder"] == "pyav" and "converts only" not in ref["decoder"]
    assert ref["engine"] == "torch" and ref["precision"] == "fp32" and ref["provider"] == "torch"
    for key in ("detector", "detector_max_side", "detect_batch", "threads", "input_size", "device"):
        assert ref[key] == ours[key], key
    assert ref["detector"] == "center" and ref["detector_max_side"] == 640 and ref["detect_batch"] == 8
    assert ref["detect_every"] == 1 and ref["workers"] == 0
    assert result["reference"]["frames_decoded"] == 22 and result["reference"]["decoded_frames_per_video"] == 11


def test_rows_ratios_and_accuracy(result):
    rows = {r["name"]: r for r in result["rows"]}
    assert list(rows) == ["fp32", "fp32+detect-every-2"] and result["ours"] is result["rows"][0]
    assert rows["fp32+detect-every-2"]["resolved"]["detect_every"] == 2
    for row in rows.values():
        assert row["speedup"]["n"] == 2 and row["speedup"]["min"] <= row["speedup"]["median"] <= row["speedup"]["max"]
        assert {"videos_per_s", "stages_s", "peak_rss", "decoded_frames_per_video"} <= set(row)
        assert row["accuracy"]["labels"]["labelled"] == 2 and "auc" in row["accuracy"]["labels"]
    assert "verdict_agreement" not in rows["fp32"]["accuracy"]  # the baseline is not compared with itself
    assert rows["fp32+detect-every-2"]["accuracy"]["videos_compared"] == 2
    assert result["speedup_videos_per_s"] == rows["fp32"]["speedup"]["median"]
    # Same model on torch, same frames, detector, tracker and crops: the fair reference computes our scores.
    assert result["score_agreement"]["videos_compared"] == 2 and result["score_agreement"]["max_abs_diff"] < 1e-4
    assert result["reference"]["accuracy"]["verdict_agreement"] == 1.0
    assert result["ours"]["resolved"]["detector_provider"] is None or result["ours"]["resolved"]["provider"]
    assert sum("round 2/2" in m for m in result["_messages"]) == 3


def test_protocol_record_and_markdown(result):
    assert isinstance(result["noisy"], bool) and result["protocol"]["usable_cores"] >= 1
    assert result["protocol"]["load_1min_after"] is not None
    text = format_markdown(result)
    assert text.startswith("# Pipeline benchmark") and "| ours: fp32 |" in text and "| reference |" in text
    assert "rounds)" in text and "NVDEC" not in text
    noisy = format_markdown({**result, "protocol": {**result["protocol"], "noisy": True}})
    assert "NOISY" in noisy.splitlines()[0] and "(noisy)" in noisy


def test_plan_rows_and_clip_sets():
    rows = plan_rows(Path("m.onnx"), best_model=Path("m.int8.onnx"), detect_every=2, detector_max_side=320)
    assert [r.name for r in rows] == ["fp32", "best", "best+detect-every-2", "best+detector-320",
                                      "best+detect-every-2+detector-320"]  # fmt: skip
    assert rows[-1].model == Path("m.int8.onnx") and rows[-1].detect_every == 2 and rows[-1].detector_max_side == 320
    assert [r.name for r in plan_rows(Path("m.pth"), detector_max_side=640)] == ["fp32"]  # 640 is the default
    gop250, gop30 = CLIP_SETS["1080p-gop250"], CLIP_SETS["1080p-gop30"]
    assert (gop250.width, gop250.height, gop250.frames, gop250.gop, gop250.bframes) == (1920, 1080, 300, 250, 3)
    assert gop30.gop == 30 and clip_set("640x360-2s").frames == 60
    with pytest.raises(ContractError, match="unknown clip set"):
        clip_set("8k")


def test_score_effect():
    base = [{"path": "a", "score": 0.2}, {"path": "b", "score": 0.7}, {"path": "c", "score": None}]
    rows = [{"path": "a", "score": 0.6}, {"path": "b", "score": 0.75}, {"path": "c", "score": 0.1}]
    effect = score_effect(rows, base, 0.5)
    assert effect == {"videos_compared": 2, "max_abs_score_diff": 0.4, "mean_abs_score_diff": 0.225,
                      "verdict_agreement": 0.5, "status_changed": 1}  # fmt: skip


def test_generated_clip_set_has_its_gop_and_labels(tmp_path):
    import av

    from lib_deepfake.bench.pipeline_clips import ClipSet, make_bench_clips

    tiny = ClipSet("tiny-gop4", 96, 64, seconds=1.0, fps=12, gop=4, bframes=2)
    paths = make_bench_clips(tmp_path, 2, tiny)
    assert [p.name for p in paths] == ["real_000.mp4", "fake_000.mp4"]
    with av.open(str(paths[0])) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
    assert len(packets) == 12 and [i for i, p in enumerate(packets) if p.is_keyframe] == [0, 4, 8]
    assert any(p.pts != p.dts for p in packets)  # B-frames reorder presentation against decode order
    assert (tmp_path / "labels.csv").read_text() == "path,label\ntiny-gop4/fake_000.mp4,1\ntiny-gop4/real_000.mp4,0\n"
    mtime = paths[0].stat().st_mtime_ns
    assert make_bench_clips(tmp_path, 2, tiny)[0].stat().st_mtime_ns == mtime  # reused
