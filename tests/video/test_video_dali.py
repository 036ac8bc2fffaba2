"""DALI source: same indices as PyAV for the same plan; CPU backend with VP9/MJPEG here, NVDEC on a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers.media import make_clip, read_index_code

from lib_deepfake.video import UnsupportedCodecError, open_video, read_frames
from lib_deepfake.video.dali_source import dali_codec_support, nvdec_has_av1

PLANS = ["uniform:16", "gop:6", "every:5", "fps:3", "keyframes", "indices:0,7,33"]


# ---- pure support table: runs everywhere ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "pix", "device", "cc", "ok"),
    [
        ("vp9", "yuv420p", "cpu", None, True),
        ("mjpeg", "yuvj420p", "cpu", None, True),
        ("h264", "yuv420p", "cpu", None, False),
        ("h264", "yuv420p", "gpu", (9, 0), True),
        ("hevc", "yuv420p10le", "gpu", (9, 0), True),
        ("h264", "yuv420p10le", "gpu", (9, 0), False),  # no 10-bit H.264 in NVDEC
        ("av1", "yuv420p", "gpu", (9, 0), False),  # Hopper has no AV1 NVDEC
        ("av1", "yuv420p", "gpu", (8, 0), False),  # nor A100
        ("av1", "yuv420p", "gpu", (8, 9), True),  # Ada has
        ("h264", "gray", "gpu", (9, 0), False),
        ("prores", "yuv422p10le", "gpu", (9, 0), False),
    ],
)
def test_codec_support_table(codec, pix, device, cc, ok):
    why = dali_codec_support(codec, pix, device, cc)
    assert (why is None) == ok, why


def test_av1_generations():
    assert not nvdec_has_av1((7, 5)) and not nvdec_has_av1((8, 0)) and not nvdec_has_av1((9, 0))
    assert nvdec_has_av1((8, 6)) and nvdec_has_av1((8, 9)) and nvdec_has_av1((10, 0)) and nvdec_has_av1((12, 0))


# ---- DALI CPU pipeline (the same pipeline code as NVDEC, decoder device "cpu") --------------------------------


@pytest.fixture(scope="module")
def dali_clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dali_clips")
    return {
        "vp9": make_clip(d / "a.webm", frames=40, gop=10, codec="libvpx-vp9", noise=True),
        "vp9_mp4": make_clip(d / "b.mp4", frames=40, gop=10, codec="libvpx-vp9"),
        "mjpeg": make_clip(d / "c.avi", frames=40, codec="mjpeg"),
        "vp9_rot": make_clip(d / "d.webm", frames=20, gop=10, codec="libvpx-vp9", rotation=270),
        "h264": make_clip(d / "e.mp4", frames=20, gop=10),
    }


@pytest.mark.dali
@pytest.mark.parametrize("name", ["vp9", "vp9_mp4", "mjpeg", "vp9_rot"])
def test_dali_cpu_selects_the_same_frames_as_pyav(dali_clips, name):
    with open_video(dali_clips[name], decoder="dali", device="cpu") as d, open_video(dali_clips[name]) as a:
        assert d.name == "dali" and d.info.rotation == a.info.rotation
        for plan in PLANS:
            bd, ba = d.read(plan), a.read(plan)
            assert bd.decoder == "dali" and bd.frames.device.type == "cpu" and bd.frames.dtype == torch.uint8
            np.testing.assert_array_equal(bd.indices, ba.indices)
            assert bd.frames.shape == ba.frames.shape
            # Different YUV->RGB code paths: small differences only (DALI's own tests use the same bound).
            assert (bd.frames.float() - ba.frames.float()).abs().mean() < 3.0
            k = -d.info.rotation // 90
            codes = [read_index_code(np.rot90(f, k)) for f in bd.frames.numpy()]
            assert codes == [i % 256 for i in bd.indices], plan


@pytest.mark.dali
def test_dali_iter_frames_and_chunks(dali_clips):
    with open_video(dali_clips["vp9"], decoder="dali", device="cpu") as d:
        d.chunk_frames = 3  # several DALI runs per plan
        frames = [f.image.clone() for f in d.iter_frames("every:4")]
        batch = d.read("every:4")
    assert len(frames) == len(batch) == 10
    assert all(torch.equal(f, g) for f, g in zip(frames, batch.frames, strict=True))


@pytest.mark.dali
def test_dali_cpu_refuses_h264_naming_pyav(dali_clips):
    with pytest.raises(UnsupportedCodecError, match="--decoder pyav"):
        open_video(dali_clips["h264"], decoder="dali", device="cpu")


# ---- NVDEC (GPU) ------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.dali
@pytest.mark.parametrize("codec", ["libx264", "libx265", "libvpx-vp9"])
def test_nvdec_frames_stay_on_the_gpu_and_match_pyav(tmp_path, codec):
    path = make_clip(tmp_path / "g.mkv", frames=60, size=(256, 144), gop=12, codec=codec, noise=True)
    for plan in ("uniform:32", "gop:8", "keyframes"):
        bd = read_frames(path, plan, decoder="dali", device="gpu")
        ba = read_frames(path, plan)
        assert bd.frames.is_cuda and bd.frames.dtype == torch.uint8
        np.testing.assert_array_equal(bd.indices, ba.indices)
        assert (bd.frames.cpu().float() - ba.frames.float()).abs().mean() < 3.0
        codes = [read_index_code(f) for f in bd.frames.cpu().numpy()]
        assert codes == [i % 256 for i in bd.indices]


@pytest.mark.gpu
@pytest.mark.dali
def test_nvdec_av1_on_gpus_without_it_names_pyav(tmp_path):
    if nvdec_has_av1(torch.cuda.get_device_capability()):
        pytest.skip("this GPU decodes AV1")
    path = make_clip(tmp_path / "a.mkv", frames=10, size=(64, 64), codec="libsvtav1")
    with pytest.raises(UnsupportedCodecError, match="--decoder pyav"):
        open_video(path, decoder="dali", device="gpu")
