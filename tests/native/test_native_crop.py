"""The native crop library (native/, CMake) through its ctypes binding, against the torch crop path.

Needs a built library: `make native` and LIB_DEEPFAKE_NATIVE_LIB=build/native (what `make test` sets), or an
installed copy in src/lib_deepfake/native/. Without one these tests skip with that reason - unless
LIB_DEEPFAKE_NATIVE_LIB is set, in which case a library that does not load is a failure.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest
import torch

from lib_deepfake.bench.crops import format_markdown, run_crop_bench
from lib_deepfake.errors import ContractError, NativeLibraryError
from lib_deepfake.faces import crop, native


@pytest.fixture(scope="module")
def lib_status():
    native.reset()
    st = native.status()
    if st.cpu is None:
        if os.environ.get(native.ENV_LIB):
            pytest.fail(f"{native.ENV_LIB} is set but the native library did not load: {st.cpu_reason}")
        pytest.skip(f"native crop library not built ({st.cpu_reason}); run `make native`")
    return st


def random_case(seed: int, f: int = 3, h: int = 97, w: int = 131, m: int = 40, *, inside: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (f, h, w, 3), dtype=torch.uint8, generator=g)
    xy = torch.rand(m, 2, generator=g) * torch.tensor([w * inside + 40.0, h * inside + 40.0]) - 30
    wh = torch.rand(m, 2, generator=g) * 0.8 * max(h, w) + 0.2
    fi = torch.randint(0, f, (m, 1), generator=g).float()
    return frames, torch.cat([fi, xy, xy + wh], dim=1)


@pytest.mark.parametrize(
    "seed,f,h,w,size,scale",
    [(0, 3, 97, 131, 41, 1.3), (1, 2, 240, 320, 112, 1.3), (2, 4, 31, 17, 64, 1.0), (3, 1, 1, 1, 5, 1.3),
     (4, 2, 7, 5, 3, 2.0), (5, 2, 480, 640, 224, 1.3)],
)  # fmt: skip
def test_native_cpu_equals_torch_path(lib_status, seed, f, h, w, size, scale):
    frames, boxes = random_case(seed, f, h, w)
    want = crop.crop_faces(frames, boxes, size, scale, backend="torch")
    got = crop.crop_faces(frames, boxes, size, scale, backend="native")
    diff = (got.int() - want.int()).abs()
    assert diff.max() <= 1
    # Same float32 operations in the same order on both sides: expected to be identical, not merely close.
    assert (diff > 0).sum() <= diff.numel() // 10000


def test_auto_backend_uses_native_on_cpu(lib_status, monkeypatch):
    assert crop.crop_backend("cpu").name == "native-cpu"
    calls = []
    real = native.crop_rgb
    monkeypatch.setattr(native, "crop_rgb", lambda *a, **k: calls.append(1) or real(*a, **k))
    frames, boxes = random_case(6, m=3)
    crop.crop_faces(frames, boxes, 8)
    assert calls == [1]


def test_threads_do_not_change_results(lib_status):
    frames, boxes = random_case(7, m=30)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native.crop_rgb(frames, boxes, 48)
        torch.set_num_threads(max(2, old))
        assert torch.equal(native.crop_rgb(frames, boxes, 48), one)
    finally:
        torch.set_num_threads(old)


def test_non_contiguous_frames(lib_status):
    frames, boxes = random_case(8, m=5)
    sliced = torch.cat([frames, frames], dim=2)[:, :, ::2]  # strided view
    assert not sliced.is_contiguous()
    assert torch.equal(native.crop_rgb(sliced, boxes, 20), crop.crop_faces_torch(sliced.contiguous(), boxes, 20))


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("full_range", [False, True])
def test_native_nv12_equals_torch(lib_status, matrix, full_range):
    g = torch.Generator().manual_seed(9)
    nv12 = torch.randint(0, 256, (2, 60, 46), dtype=torch.uint8, generator=g)
    _, boxes = random_case(9, f=2, h=40, w=46, m=12)
    conv_native = native.nv12_to_rgb(nv12, matrix=matrix, full_range=full_range)
    conv_torch = crop.nv12_to_rgb(nv12, matrix=matrix, full_range=full_range)
    assert (conv_native.int() - conv_torch.int()).abs().max() <= 1
    got = crop.crop_faces_nv12(nv12, boxes, 24, matrix=matrix, full_range=full_range, backend="native")
    want = crop.crop_faces_nv12(nv12, boxes, 24, matrix=matrix, full_range=full_range, backend="torch")
    assert (got.int() - want.int()).abs().max() <= 1
    # And exactly the crop of the library's own conversion (the documented definition).
    assert torch.equal(got, native.crop_rgb(conv_native, boxes, 24))


NAN = float("nan")


@pytest.mark.parametrize(
    "box,size,match",
    [
        ([0, NAN, 0, 5, 5], 8, "finite"),
        ([0, 5, 0, 5, 5], 8, "positive size"),
        ([0, 0, 5, 5, 1], 8, "positive size"),
        ([7, 0, 0, 5, 5], 8, "frame index"),
        ([0, 0, 0, 5, 5], 0, "crop size"),
    ],
)
def test_library_rejects_bad_input_itself(lib_status, box, size, match):
    # Straight to the binding (no Python validation in front): the C++ checks must catch it.
    frames, _ = random_case(10, m=1)
    with pytest.raises(ContractError, match=match):
        native.crop_rgb(frames, torch.tensor([box], dtype=torch.float32), size)


def _cuda_lib_or_skip(lib_status):
    if lib_status.cuda is None:
        pytest.skip(f"CUDA library not built: {lib_status.cuda_reason}")
    return native._load()[1]


def test_cuda_entry_validates_before_touching_the_device(lib_status):
    lib = _cuda_lib_or_skip(lib_status)
    bad = torch.tensor([[0, 5, 0, 5, 5]], dtype=torch.float32)
    # Device pointers are dummies: validation fails before anything could dereference them or launch.
    fake = ctypes.c_void_p(16)
    with pytest.raises(ContractError, match="positive size"):
        lib.call("libdf_crop_rgb_cuda", 0, None, fake, 1, 10, 10, bad.data_ptr(), fake, 1, 8, 1.3, fake)
    good = torch.tensor([[0, 0, 0, 5, 5]], dtype=torch.float32)  # kept alive: the library reads it
    with pytest.raises(ContractError, match="matrix"):
        lib.call(
            "libdf_crop_nv12_cuda", 0, None, fake, 150, 10, fake, 150, 10, 1, 10, 10, 5, 0, good.data_ptr(), fake, 1,
            8, 1.3, fake,
        )  # fmt: skip


def test_cuda_library_without_usable_gpu_reports_cleanly(lib_status):
    lib = _cuda_lib_or_skip(lib_status)
    err = ctypes.create_string_buffer(512)
    if lib.dll.libdf_cuda_probe(0, err, 512) == 0:
        pytest.skip("a usable GPU is present: covered by the gpu-marked tests")
    assert err.value  # e.g. "cudaGetDeviceCount: cudaErrorNoDevice (no CUDA-capable device is detected)"
    assert "cuda" in lib.build_info.lower() and "80" in lib.build_info
    ok, why = native.available("cuda:0")
    assert not ok and why


def test_loader_env_variants(lib_status, monkeypatch, tmp_path):
    lib_dir = lib_status.cpu.parent
    try:
        monkeypatch.setenv(native.ENV_LIB, str(lib_status.cpu))  # a file: its directory is searched
        native.reset()
        assert native.status().cpu == lib_status.cpu
        monkeypatch.setenv(native.ENV_LIB, str(tmp_path / "nowhere"))
        native.reset()
        st = native.status()
        assert "does not exist" in st.cpu_reason or st.cpu != lib_status.cpu
        # A file that is not a library must not break anything: reported, torch path still works.
        (tmp_path / native.CPU_LIB_NAME).write_bytes(b"not an ELF file")
        monkeypatch.setenv(native.ENV_LIB, str(tmp_path))
        monkeypatch.setattr(native, "PACKAGE_LIB_DIR", tmp_path / "empty")
        native.reset()
        st = native.status()
        assert st.cpu is None and "cannot load" in st.cpu_reason
        assert crop.crop_backend("cpu").name == "torch"
        frames, boxes = random_case(11, m=2)
        assert crop.crop_faces(frames, boxes, 6).shape == (2, 6, 6, 3)
        with pytest.raises(NativeLibraryError):
            crop.crop_faces(frames, boxes, 6, backend="native")
    finally:
        monkeypatch.undo()
        native.reset()
    assert native.status().cpu is not None and Path(native.status().cpu).parent == lib_dir


def test_crop_bench_cpu_small(lib_status):
    r = run_crop_bench("cpu", frame_size=(60, 80), crop_size=16, faces=6, iters=2, frames=2, warmup=1)
    assert r["device"] == "cpu" and r["machine"]["cpu_cores"] >= 1
    assert r["backends"]["torch"]["crops_per_s"] > 0 and r["backends"]["native"]["crops_per_s"] > 0
    assert r["max_abs_diff"] <= 1 and r["speedup_native_vs_torch"] > 0
    md = format_markdown(r)
    assert "| native |" in md and "| torch |" in md


# ---- GPU: the kernel vs the C++ reference and the torch path -------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("h,w,size", [(1080, 1920, 224), (97, 131, 41), (1, 1, 5), (7, 5, 3)])
def test_kernel_equals_cpu_reference(lib_status, h, w, size):
    ok, why = native.available("cuda")
    assert ok, why
    frames, boxes = random_case(20, 3, h, w, m=64)
    cpu = native.crop_rgb(frames, boxes, size)
    gpu = native.crop_rgb(frames.cuda(), boxes, size)
    assert gpu.device.type == "cuda"
    diff = (gpu.cpu().int() - cpu.int()).abs()
    assert diff.max() <= 1
    assert (diff > 0).sum() == 0, "kernel and C++ reference are built without FMA: expected bit-identical"
    torch_gpu = crop.crop_faces(frames.cuda(), boxes.cuda(), size, backend="torch")
    assert (gpu.int() - torch_gpu.int()).abs().max() <= 1


@pytest.mark.gpu
def test_kernel_on_side_stream_with_gpu_boxes(lib_status):
    frames, boxes = random_case(21, m=20)
    want = native.crop_rgb(frames, boxes, 32)
    frames_d, boxes_d = frames.cuda(), boxes.cuda()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        got = crop.crop_faces(frames_d, boxes_d, 32)
    torch.cuda.current_stream().wait_stream(s)
    assert torch.equal(got.cpu(), want)
    assert crop.crop_backend("cuda").name == "native-cuda"


@pytest.mark.gpu
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_kernel_nv12_equals_cpu_reference(lib_status, matrix):
    g = torch.Generator().manual_seed(22)
    nv12 = torch.randint(0, 256, (2, 360, 642), dtype=torch.uint8, generator=g)
    _, boxes = random_case(22, f=2, h=240, w=642, m=16)
    cpu = native.crop_nv12(nv12, boxes, 64, matrix=matrix)
    gpu = native.crop_nv12(nv12.cuda(), boxes, 64, matrix=matrix)
    assert torch.equal(gpu.cpu(), cpu)


@pytest.mark.gpu
def test_kernel_rejects_bad_boxes_before_launch(lib_status):
    frames, _ = random_case(23, m=1)
    with pytest.raises(ContractError, match="frame index"):
        native.crop_rgb(frames.cuda(), torch.tensor([[5, 0, 0, 4, 4]], dtype=torch.float32), 8)
    torch.cuda.synchronize()  # nothing was launched, nothing failed asynchronously


@pytest.mark.gpu
def test_crop_bench_gpu_small(lib_status):
    r = run_crop_bench("cuda", frame_size=(270, 480), crop_size=64, faces=8, iters=2, frames=2, warmup=1)
    assert r["machine"]["gpu"] and r["max_abs_diff"] <= 1
