"""PyAV source: sparse decoding returns exactly the frames a full decode would, and decodes only what it needs."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from tests.helpers.media import VFR_PATTERN_MS, make_clip, read_index_code

from lib_deepfake.video import Frame, FrameBatch, VideoSource, build_index, open_video, probe, read_frames

# name -> (file name, make_clip kwargs). Small clips: each is written in a few ms.
CLIPS = {
    "h264": ("h264.mp4", {"frames": 90, "gop": 12, "noise": True}),  # x264 veryfast: B-frames, b-pyramid
    "h264_mkv": ("h264.mkv", {"frames": 40, "gop": 10, "noise": True}),
    "hevc": ("hevc.mkv", {"frames": 40, "gop": 10, "codec": "libx265"}),
    "vp9": ("vp9.webm", {"frames": 40, "gop": 10, "codec": "libvpx-vp9"}),
    "mjpeg": ("mjpeg.avi", {"frames": 20, "codec": "mjpeg"}),
    "mpeg4": ("mpeg4.avi", {"frames": 40, "gop": 10, "codec": "mpeg4"}),
    "av1": ("av1.mkv", {"frames": 20, "size": (64, 64), "codec": "libsvtav1"}),
    "rot90": ("rot90.mp4", {"frames": 30, "gop": 10, "rotation": 90}),
    "plain": ("plain.mp4", {"frames": 30, "gop": 10}),
    "vfr": ("vfr.mkv", {"frames": 24, "gop": 8, "vfr": True}),
    "h264_10bit": ("tenbit.mp4", {"frames": 20, "gop": 10, "pix_fmt": "yuv420p10le"}),
    "hevc_gray": ("gray.mkv", {"frames": 20, "gop": 10, "codec": "libx265", "pix_fmt": "gray"}),
    "odd_444": ("odd.mp4", {"frames": 20, "gop": 10, "size": (63, 47), "pix_fmt": "yuv444p"}),
    "odd_gray_png": ("odd_gray.mov", {"frames": 10, "size": (33, 25), "codec": "png", "pix_fmt": "gray"}),
    "audio": ("audio.mp4", {"frames": 15, "audio": True}),
}
PLANS = ["uniform:8", "gop:6", "every:7", "fps:4", "keyframes", "indices:0,3,4,19", "all"]


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("video_clips")
    return {name: make_clip(d / fn, **kw) for name, (fn, kw) in CLIPS.items()}


def reference_frames(path: Path) -> list[np.ndarray]:
    """Every frame, decoded sequentially without seeking (the ground truth), RGB, not rotated."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.mark.parametrize("name", ["h264", "h264_mkv", "hevc", "vp9", "mjpeg", "mpeg4", "av1"])
def test_every_plan_returns_exactly_the_frames_a_full_decode_gives(clips, name):
    ref = reference_frames(clips[name])
    with open_video(clips[name]) as src:
        assert isinstance(src, VideoSource)
        assert src.index.frame_count == len(ref)
        for plan in PLANS:
            batch = src.read(plan)
            assert batch.frames.dtype == torch.uint8 and batch.frames.shape[1:] == (*ref[0].shape[:2], 3)
            np.testing.assert_array_equal(batch.indices, src.resolve(plan).indices)
            assert not batch.stats.missing
            for img, i in zip(batch.frames.numpy(), batch.indices, strict=True):
                assert read_index_code(img) == i % 256, (plan, i)
                np.testing.assert_array_equal(img, ref[i], err_msg=f"{name} {plan} frame {i}")


def test_decodes_only_what_the_plan_needs(clips):
    with open_video(clips["h264"]) as src:
        n, keys = src.index.frame_count, src.index.keyframe_indices
        assert len(keys) == 90 // 12 + 1
        kb = src.read("keyframes")
        assert kb.stats.frames_decoded == len(keys) and kb.stats.frames_converted == len(keys)
        assert kb.stats.seeks == len(keys)
        gb = src.read("gop:6:1")
        assert np.all(gb.indices % 12 <= 1)
        assert gb.stats.frames_decoded <= 4 * len(gb)  # a keyframe, the P-frame after, the pick (plus a B-ref)
        ub = src.read("uniform:4")
        assert ub.stats.frames_converted == 4
        assert ub.stats.frames_decoded < n // 2
        full = src.read("all")
        assert full.stats.frames_decoded == n and full.stats.seeks == 1


def test_iter_frames_matches_read(clips):
    with open_video(clips["h264"]) as src:
        frames = list(src.iter_frames("uniform:5"))
        batch = src.read("uniform:5")
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.index for f in frames] == batch.indices.tolist()
    for f, img in zip(frames, batch.frames, strict=True):
        assert torch.equal(f.image, img)


def test_batch_helper_shapes_and_times(clips):
    batch = read_frames(clips["h264"], "uniform:32")
    assert isinstance(batch, FrameBatch) and batch.decoder == "pyav" and batch.device == "cpu"
    assert batch.frames.shape == (32, 48, 64, 3)
    np.testing.assert_allclose(batch.times_s, batch.indices / 30.0, atol=1e-6)
    assert batch.shifts.tolist() == [0] * 32


def test_gop_batch_reports_shifts(clips):
    batch = read_frames(clips["h264"], "gop:8")
    np.testing.assert_array_equal(batch.shifts, batch.plan.shifts)
    assert batch.plan.max_shift == int(np.abs(batch.shifts).max()) > 0


def test_rotation_metadata_is_applied(clips):
    info = probe(clips["rot90"])
    assert info.rotation == 90 and (info.display_width, info.display_height) == (48, 64)
    rot = read_frames(clips["rot90"], "all")
    plain = read_frames(clips["plain"], "all")  # same content, no rotation
    assert rot.frames.shape == (30, 64, 48, 3)
    # 90 degrees counter-clockwise, as the display matrix says
    assert torch.equal(rot.frames, torch.rot90(plain.frames, k=1, dims=(1, 2)))


def test_variable_frame_rate_uses_timestamps(clips):
    idx = build_index(clips["vfr"])
    durations = [VFR_PATTERN_MS[i % len(VFR_PATTERN_MS)] / 1000 for i in range(24)]
    expected = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    np.testing.assert_allclose(idx.times_s, expected, atol=1e-3)
    batch = read_frames(clips["vfr"], "fps:10")
    # the frame on screen at t = j / 10 is the last one shown at or before t
    want = [int(np.searchsorted(expected, t + 1e-6, side="right") - 1) for t in np.arange(0, expected[-1], 0.1)]
    assert batch.indices.tolist() == sorted(set(want))
    assert [read_index_code(f) for f in batch.frames.numpy()] == batch.indices.tolist()
    np.testing.assert_allclose(batch.times_s, expected[batch.indices], atol=1e-3)


@pytest.mark.parametrize(
    ("name", "size", "bits", "pix"),
    [
        ("h264_10bit", (48, 64), 10, "yuv420p10le"),
        ("hevc_gray", (48, 64), 8, "gray"),
        ("odd_444", (47, 63), 8, "yuv444p"),
        ("odd_gray_png", (25, 33), 8, "gray"),
    ],
)
def test_high_bit_depth_gray_and_odd_sizes_become_rgb(clips, name, size, bits, pix):
    info = probe(clips[name])
    assert info.bit_depth == bits and info.pix_fmt == pix
    batch = read_frames(clips[name], "uniform:4")
    assert batch.frames.dtype == torch.uint8 and batch.frames.shape[1:] == (*size, 3)
    if size[1] >= 48:  # the index code needs a few pixels per cell
        assert [read_index_code(f) for f in batch.frames.numpy()] == batch.indices.tolist()
    if "gray" in name:
        f = batch.frames.int()
        assert torch.equal(f[..., 0], f[..., 1]) and torch.equal(f[..., 1], f[..., 2])


def test_probe_reads_headers(clips):
    info = probe(clips["h264"])
    assert (info.codec, info.width, info.height, info.rotation) == ("h264", 64, 48, 0)
    assert info.fps == pytest.approx(30.0) and info.duration_s == pytest.approx(3.0, abs=0.05)
    assert info.frame_count == 90 and info.frame_count_exact and not info.has_audio
    assert probe(clips["vp9"]).codec == "vp9" and probe(clips["av1"]).codec == "av1"
    assert probe(clips["audio"]).has_audio
    mkv = probe(clips["h264_mkv"])  # Matroska has no frame count in its headers: estimated from duration * fps
    assert not mkv.frame_count_exact and abs(mkv.frame_count - 40) <= 1


def test_thread_settings_do_not_change_pixels(clips):
    a = read_frames(clips["h264"], "uniform:6")
    b = read_frames(clips["h264"], "uniform:6", threads=1)
    assert torch.equal(a.frames, b.frames)
