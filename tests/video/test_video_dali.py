"""DALI source: same indices as PyAV for the same plan; CPU backend with VP9/MJPEG here, NVDEC on a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers.media import make_clip, read_index_code

from lib_deepfake.errors import ContractError, VideoError
from lib_deepfake.video import CorruptVideoError, UnsupportedCodecError, open_video, read_frames
from lib_deepfake.video.dali_source import (
    FrameCountMismatchError,
    check_frame_count,
    dali_codec_support,
    nvdec_has_av1,
    parse_dali_device,
    rotation_to_apply,
)

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


@pytest.mark.parametrize(
    ("device", "cuda", "expected"),
    [
        (None, True, ("gpu", 0)),
        (None, False, ("cpu", None)),
        ("cpu", True, ("cpu", None)),
        ("gpu", True, ("gpu", 0)),
        ("cuda", True, ("gpu", 0)),
        ("mixed", True, ("gpu", 0)),
        ("gpu:1", True, ("gpu", 1)),
        ("cuda:3", True, ("gpu", 3)),
    ],
)
def test_parse_dali_device_keeps_the_index(device, cuda, expected):
    assert parse_dali_device(device, cuda) == expected


@pytest.mark.parametrize("device", ["tpu", "cpu:1", "cuda:x", "gpu:-1", ""])
def test_parse_dali_device_refuses(device):
    with pytest.raises(ContractError, match="DALI device"):
        parse_dali_device(device, True)


def test_frame_count_check():
    check_frame_count(8, 8, "v.mp4")
    with pytest.raises(FrameCountMismatchError, match="returned 6 frames for the 8 asked.*--decoder pyav") as err:
        check_frame_count(8, 6, "v.mp4")
    # A VideoError subclass: the scan records an error row for the file instead of black frames and no_face.
    assert isinstance(err.value, VideoError) and isinstance(err.value, CorruptVideoError)


@pytest.mark.parametrize(
    ("rotation", "frame_hw", "expected"),
    [
        (0, (48, 64), 0),
        (90, (48, 64), 90),  # coded frames (what DALI returns): rotate
        (270, (48, 64), 270),
        (90, (64, 48), 0),  # already in display shape: the decoder rotated, do not rotate again
        (270, (64, 48), 0),
        (180, (48, 64), 180),  # the shape cannot tell: DALI returns coded frames
    ],
)
def test_rotation_to_apply(rotation, frame_hw, expected):
    assert rotation_to_apply(rotation, frame_hw, (48, 64), "v.mp4") == expected


def test_rotation_of_square_frames_and_bad_sizes():
    assert rotation_to_apply(90, (64, 64), (64, 64), "v.mp4") == 90
    with pytest.raises(CorruptVideoError, match="decoded frames are 32x48, the stream says 64x48"):
        rotation_to_apply(0, (48, 32), (48, 64), "v.mp4")
    with pytest.raises(CorruptVideoError):
        rotation_to_apply(180, (64, 48), (48, 64), "v.mp4")


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
def test_dali_past_its_own_end_is_an_error_not_black_frames(dali_clips, tmp_path):
    """Our index says 40 frames, DALI's stream holds 30 (as with an edit list it reads differently): frame 35 must
    fail the file. With DALI's default pad_mode it came back as a black frame and the video scanned as no_face."""
    short = make_clip(tmp_path / "short.webm", frames=30, gop=10, codec="libvpx-vp9", noise=True)
    with open_video(dali_clips["vp9"], decoder="dali", device="cpu") as d:
        assert d.info.frame_count == 40
        d._data = np.fromfile(short, dtype=np.uint8)
        with pytest.raises(FrameCountMismatchError, match="--decoder pyav"):
            d.read("indices:0,35")
        # The failed pipeline is rebuilt: frames DALI does have still decode.
        batch = d.read("indices:0,29")
        assert [read_index_code(f) for f in batch.frames.numpy()] == [0, 29]


@pytest.mark.dali
def test_dali_short_run_is_an_error(dali_clips, monkeypatch):
    """Whatever DALI returns, a run must hold as many frames as asked (pad_mode 'none' may shorten sequences)."""

    class ShortPipe:
        def feed_input(self, name, data):
            self.asked = len(data[0]) if name == "frames" else getattr(self, "asked", 0)

        def run(self):
            return ([np.zeros((self.asked - 1, 48, 64, 3), np.uint8)],)

    with open_video(dali_clips["vp9"], decoder="dali", device="cpu") as d:
        d._pipe = ShortPipe()
        with pytest.raises(FrameCountMismatchError, match="returned 3 frames for the 4 asked"):
            d.read("indices:0,1,2,3")


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
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_nvdec_rotated_clips_match_pyav(tmp_path, rotation):
    """A clip with a display matrix (PyAV's set_display_rotation): NVDEC + our rotation must give PyAV's frames. If
    NVDEC rotated 180-degree frames itself (the shape cannot tell), they would be rotated twice and fail here."""
    path = make_clip(tmp_path / "r.mp4", frames=30, size=(96, 64), gop=10, codec="libx264", rotation=rotation)
    bd = read_frames(path, "every:3", decoder="dali", device="gpu")
    ba = read_frames(path, "every:3")
    assert bd.frames.shape == ba.frames.shape
    assert (bd.frames.cpu().float() - ba.frames.float()).abs().mean() < 3.0
    k = -rotation // 90
    assert [read_index_code(np.rot90(f, k)) for f in bd.frames.cpu().numpy()] == [i % 256 for i in bd.indices]


@pytest.mark.gpu
@pytest.mark.dali
def test_nvdec_raw_output_orientation(tmp_path):
    """Tells how NVDEC (through DALI) returns a 90-degree clip: as coded (we rotate) or already rotated (we must not).
    Both are handled (rotation_to_apply); anything else is an error. The finding is reported as a warning."""
    import warnings

    path = make_clip(tmp_path / "r90.mp4", frames=10, size=(96, 64), gop=5, codec="libx264", rotation=90)
    with open_video(path, decoder="dali", device="gpu") as d:
        raw = d._decode_chunk(np.asarray([0], np.int32))
        shape = tuple(raw.shape[1:3])
        assert shape in ((64, 96), (96, 64)), f"NVDEC returned {shape}, neither coded nor display size"
        rotated = shape == (96, 64)
    warnings.warn(f"NVDEC output for a 90-degree clip is {'already rotated' if rotated else 'as coded'} ({shape})",
                  UserWarning, stacklevel=1)  # fmt: skip


@pytest.mark.gpu
@pytest.mark.dali
def test_nvdec_decodes_on_the_named_gpu_from_a_thread(tmp_path):
    """cuda:N decodes on GPU N even from a worker thread (whose current device is 0)."""
    from concurrent.futures import ThreadPoolExecutor

    index = 1 if torch.cuda.device_count() > 1 else 0
    path = make_clip(tmp_path / "g.mp4", frames=20, size=(64, 48), gop=10, codec="libx264")
    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(read_frames, path, "uniform:4", decoder="dali", device=f"cuda:{index}").result()
    assert batch.frames.device == torch.device("cuda", index)


@pytest.mark.gpu
@pytest.mark.dali
def test_nvdec_av1_on_gpus_without_it_names_pyav(tmp_path):
    if nvdec_has_av1(torch.cuda.get_device_capability()):
        pytest.skip("this GPU decodes AV1")
    path = make_clip(tmp_path / "a.mkv", frames=10, size=(64, 64), codec="libsvtav1")
    with pytest.raises(UnsupportedCodecError, match="--decoder pyav"):
        open_video(path, decoder="dali", device="gpu")
