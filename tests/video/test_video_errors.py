"""Bad input: every case is a typed VideoError with a one-line reason; nothing hangs or crashes the caller."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers.media import make_clip, write_audio_only

from lib_deepfake.errors import LibDeepfakeError, VideoError
from lib_deepfake.video import (
    CorruptVideoError,
    DecodeTimeoutError,
    EmptyVideoError,
    NotAVideoError,
    NoVideoStreamError,
    ResolutionTooLargeError,
    decode_in_subprocess,
    open_video,
    probe,
    read_frames,
    run_in_subprocess,
)


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad_video")
    files: dict[str, Path] = {}
    (d / "text.mp4").write_text("this is not a video\n" * 40)
    files["text"] = d / "text.mp4"
    (d / "notes.txt").write_text("plain text\n" * 40)
    files["txt"] = d / "notes.txt"
    (d / "empty.mp4").write_bytes(b"")
    files["empty"] = d / "empty.mp4"
    (d / "noise.mkv").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["noise"] = d / "noise.mkv"
    good = make_clip(d / "good.mp4", frames=40, gop=10, noise=True)
    files["good"] = good
    data = good.read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])  # moov atom (the index) is at the end: lost
    files["cut_mp4"] = d / "cut.mp4"
    fs = make_clip(d / "fs.mp4", frames=40, gop=10, noise=True, container_options={"movflags": "faststart"})
    fdata = fs.read_bytes()
    (d / "cut_fs.mp4").write_bytes(fdata[: len(fdata) // 2])  # index intact, half the frames gone
    files["cut_faststart"] = d / "cut_fs.mp4"
    mk = make_clip(d / "good.mkv", frames=40, gop=10, noise=True)
    mdata = mk.read_bytes()
    (d / "cut.mkv").write_bytes(mdata[: len(mdata) // 2])
    files["cut_mkv"] = d / "cut.mkv"
    files["audio"] = write_audio_only(d / "audio.m4a")
    files["zero_frames"] = make_clip(d / "zero.avi", frames=0)
    files["one_frame"] = make_clip(d / "one.mp4", frames=1)
    import cv2

    cv2.imwrite(str(d / "still.png"), np.zeros((16, 16, 3), np.uint8))
    files["still"] = d / "still.png"
    files["missing"] = d / "does-not-exist.mp4"
    files["dir"] = d
    return files


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("text", NotAVideoError, "not a video"),
        ("txt", NotAVideoError, "not a video"),
        ("empty", NotAVideoError, "empty file"),
        ("noise", NotAVideoError, "not a video"),
        ("cut_mp4", CorruptVideoError, "truncated"),
        ("cut_faststart", CorruptVideoError, "truncated"),
        ("cut_mkv", CorruptVideoError, "truncated"),
        ("audio", NoVideoStreamError, "audio-only"),
        ("zero_frames", EmptyVideoError, "no decodable frame"),
        ("still", NotAVideoError, "still image"),
        ("missing", NotAVideoError, "not found"),
        ("dir", NotAVideoError, "directory"),
    ],
)
def test_bad_input_raises_a_typed_one_line_error(bad, name, error, words):
    t0 = time.monotonic()
    with pytest.raises(error) as ei:
        read_frames(bad[name], "uniform:32")
    err = ei.value
    assert isinstance(err, VideoError) and isinstance(err, LibDeepfakeError)
    assert "\n" not in str(err) and err.reason and words in err.reason
    assert time.monotonic() - t0 < 10


def test_truncated_files_can_be_decoded_on_request(bad):
    batch = read_frames(bad["cut_faststart"], "all", allow_truncated=True)
    assert 0 < len(batch) < 40
    batch = read_frames(bad["cut_mkv"], "all", allow_truncated=True)
    assert 0 < len(batch) < 40


@pytest.mark.parametrize("threads", [1, 2])
def test_a_cut_indexed_mp4_decodes_the_same_with_any_thread_count(bad, threads):
    """The index at the front promises frames the cut removed: a single-threaded decoder reports the cut packet (it
    used to fail the file), a frame-threaded one drops it; both must give the frames before the cut."""
    auto = read_frames(bad["cut_faststart"], "uniform:8", allow_truncated=True)
    got = read_frames(bad["cut_faststart"], "uniform:8", allow_truncated=True, threads=threads)
    assert 0 < len(got) < 8 and got.indices.tolist() == auto.indices.tolist()
    assert torch.equal(got.frames, auto.frames)


def test_one_frame_video(bad):
    batch = read_frames(bad["one_frame"], "uniform:32")
    assert batch.indices.tolist() == [0] and batch.frames.shape == (1, 48, 64, 3)
    assert read_frames(bad["one_frame"], "gop:32").indices.tolist() == [0]
    assert read_frames(bad["one_frame"], "fps:5").indices.tolist() == [0]


def test_huge_resolution_is_refused_before_decoding(bad):
    with pytest.raises(ResolutionTooLargeError, match="64x48 exceeds"):
        probe(bad["good"], max_pixels=1000)
    with pytest.raises(ResolutionTooLargeError):
        open_video(bad["good"], max_pixels=1000)


def test_decode_time_limit(bad):
    with pytest.raises(DecodeTimeoutError, match="time limit"):
        open_video(bad["good"], timeout_s=1e-9)
    with open_video(bad["good"]) as src:
        src.timeout_s = 1e-9
        with pytest.raises(DecodeTimeoutError):
            src.read("all")


def test_decode_in_subprocess_matches_and_reraises_typed(bad):
    here = read_frames(bad["good"], "uniform:5")
    there = decode_in_subprocess(bad["good"], "uniform:5", timeout_s=60, start_method="fork")
    assert there.indices.tolist() == here.indices.tolist()
    assert np.array_equal(there.frames.numpy(), here.frames.numpy())
    with pytest.raises(NoVideoStreamError, match="audio-only"):
        decode_in_subprocess(bad["audio"], timeout_s=60, start_method="fork")


def test_a_hung_child_is_killed_at_the_deadline():
    t0 = time.monotonic()
    with pytest.raises(DecodeTimeoutError, match="killed"):
        run_in_subprocess(time.sleep, 60, timeout_s=1.0, start_method="fork")
    assert time.monotonic() - t0 < 10


def test_a_plan_too_big_for_one_batch_is_refused_not_an_oom(bad, monkeypatch):
    from lib_deepfake.video import PlanError, frames

    monkeypatch.setattr(frames, "MAX_BATCH_BYTES", 10 * 64 * 48 * 3)
    with open_video(bad["good"]) as src:
        assert len(src.read("uniform:10")) == 10
        with pytest.raises(PlanError, match="iter_frames"):
            src.read("all")
        assert len(list(src.iter_frames("all"))) == 40  # streaming still works
