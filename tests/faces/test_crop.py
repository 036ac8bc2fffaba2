"""The torch crop path (faces/crop.py) against the geometry contract, grid_sample and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tests.conftest import devices

from lib_deepfake.errors import ContractError
from lib_deepfake.faces import crop, native


def random_case(seed: int, f: int = 3, h: int = 61, w: int = 83, m: int = 20):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (f, h, w, 3), dtype=torch.uint8, generator=g)
    xy = torch.rand(m, 2, generator=g) * torch.tensor([w + 40.0, h + 40.0]) - 30
    wh = torch.rand(m, 2, generator=g) * 60 + 0.3
    fi = torch.randint(0, f, (m, 1), generator=g).float()
    return frames, torch.cat([fi, xy, xy + wh], dim=1)


def grid_sample_crop(frames: torch.Tensor, boxes: torch.Tensor, size: int, scale: float) -> torch.Tensor:
    """The contract stated with torch's own bilinear sampler (zero padding, align_corners=False), in float64."""
    out = []
    h, w = frames.shape[1:3]
    for b in boxes.double():
        cx, cy = (b[1] + b[3]) / 2, (b[2] + b[4]) / 2
        side = max(b[3] - b[1], b[4] - b[2]) * scale
        t = torch.arange(size, dtype=torch.float64) + 0.5
        sx = cx - side / 2 + t * side / size - 0.5
        sy = cy - side / 2 + t * side / size - 0.5
        # grid_sample (align_corners=False) maps g in [-1, 1] to pixel ((g + 1) * W - 1) / 2.
        gx, gy = (2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1
        grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)[None]
        img = frames[int(b[0])].permute(2, 0, 1)[None].double()
        v = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out.append(torch.floor(v[0].permute(1, 2, 0) + 0.5).clamp(0, 255).to(torch.uint8))
    return torch.stack(out)


@pytest.mark.parametrize("device", devices())
def test_identity_crop_is_exact(device):
    frames, _ = random_case(0, f=2, h=32, w=32)
    boxes = torch.tensor([[1, 0, 0, 32, 32]], dtype=torch.float32)
    out = crop.crop_faces(frames.to(device), boxes, 32, scale=1.0, backend="torch")
    assert out.device.type == device and out.dtype == torch.uint8 and out.shape == (1, 32, 32, 3)
    assert torch.equal(out.cpu()[0], frames[1])


@pytest.mark.parametrize("seed,size,scale", [(1, 24, 1.3), (2, 57, 1.0), (3, 8, 2.0), (4, 1, 1.3)])
def test_torch_path_matches_grid_sample(seed, size, scale):
    frames, boxes = random_case(seed)
    got = crop.crop_faces(frames, boxes, size, scale, backend="torch")
    want = grid_sample_crop(frames, boxes, size, scale)
    diff = (got.int() - want.int()).abs()
    assert diff.max() <= 1, f"max diff {diff.max()}"
    assert (diff > 0).float().mean() < 0.01  # only float32-vs-float64 rounding ties


def test_ramp_values_and_black_border():
    # 10 * x ramp, window [2, 6) sampled at x = 1.75, 2.25, ...: 17.5 -> 18 (floor(v + 0.5)), 22.5 -> 23, ...
    frames = (torch.arange(8) * 10).to(torch.uint8).view(1, 1, 8, 1).expand(1, 4, 8, 3).contiguous()
    out = crop.crop_faces(frames, torch.tensor([[0, 2, 0, 6, 4]], dtype=torch.float32), 8, 1.0, backend="torch")
    assert out[0, 3, :, 0].tolist() == [18, 23, 28, 33, 38, 43, 48, 53]
    # Row 0 samples y = -0.25: a quarter of it comes from the zero padding above the frame.
    assert out[0, 0, 0, 0].item() == math.floor(17.5 * 0.75 + 0.5)
    far = crop.crop_faces(frames, torch.tensor([[0, 100, 100, 110, 110]], dtype=torch.float32), 5, backend="torch")
    assert far.sum() == 0


def test_expand_boxes_square_and_centred():
    b = torch.tensor([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 5.0, 1.0]])
    e = crop.expand_boxes(b, 1.5)
    torch.testing.assert_close(e[0], torch.tensor([-10.0, 10.0, 50.0, 70.0]))
    torch.testing.assert_close(e[1], torch.tensor([-1.25, -3.25, 6.25, 4.25]))
    with pytest.raises(ContractError):
        crop.expand_boxes(torch.zeros(2, 5), 1.3)
    with pytest.raises(ContractError):
        crop.expand_boxes(b, 0.0)


def test_expand_boxes_agrees_with_crop_window():
    # Cropping the expanded window at scale 1 is the same as cropping the box at scale s.
    frames, boxes = random_case(5)
    sq = crop.expand_boxes(boxes[:, 1:], 1.3)
    a = crop.crop_faces(frames, boxes, 20, 1.3, backend="torch")
    b = crop.crop_faces(frames, torch.cat([boxes[:, :1], sq], 1), 20, 1.0, backend="torch")
    assert (a.int() - b.int()).abs().max() <= 1


def test_chunking_does_not_change_results(monkeypatch):
    frames, boxes = random_case(6)
    whole = crop.crop_faces_torch(frames, boxes, 16)
    monkeypatch.setattr(crop, "_CHUNK_ELEMS", 16 * 16 * 3 * 3)  # 3 boxes per chunk
    assert torch.equal(crop.crop_faces_torch(frames, boxes, 16), whole)


def test_empty_boxes():
    frames, _ = random_case(7)
    out = crop.crop_faces(frames, torch.zeros(0, 5), 12)
    assert out.shape == (0, 12, 12, 3) and out.dtype == torch.uint8


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "box,size,scale,match",
    [
        ([0, NAN, 0, 5, 5], 8, 1.3, "finite"),
        ([0, 0, 0, INF, 5], 8, 1.3, "finite"),
        ([0, 5, 0, 5, 5], 8, 1.3, "positive size"),
        ([0, 0, 9, 5, 2], 8, 1.3, "positive size"),
        ([3, 0, 0, 5, 5], 8, 1.3, "frame index"),
        ([-1, 0, 0, 5, 5], 8, 1.3, "frame index"),
        ([0.5, 0, 0, 5, 5], 8, 1.3, "frame index"),
        ([0, 0, 0, 5, 5], 0, 1.3, "crop size"),
        ([0, 0, 0, 5, 5], -4, 1.3, "crop size"),
        ([0, 0, 0, 5, 5], 8.0, 1.3, "crop size"),
        ([0, 0, 0, 5, 5], True, 1.3, "crop size"),
        ([0, 0, 0, 5, 5], 8, 0.0, "scale"),
        ([0, 0, 0, 5, 5], 8, NAN, "scale"),
        ([0, -3e38, 0, 3e38, 5], 8, 1.3, "float32"),
    ],
)
@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_bad_boxes_and_sizes_rejected(box, size, scale, match, backend):
    frames, _ = random_case(8)
    with pytest.raises(ContractError, match=match):
        crop.crop_faces(frames, torch.tensor([box], dtype=torch.float32), size, scale, backend=backend)


def test_bad_tensors_rejected():
    frames, boxes = random_case(9)
    with pytest.raises(ContractError, match="uint8"):
        crop.crop_faces(frames.float(), boxes, 8)
    with pytest.raises(ContractError, match=r"\[F, H, W, 3\]"):
        crop.crop_faces(frames[0], boxes, 8)
    with pytest.raises(ContractError, match=r"\[F, H, W, 3\]"):
        crop.crop_faces(frames[..., :2], boxes, 8)
    with pytest.raises(ContractError, match="float32"):
        crop.crop_faces(frames, boxes.double(), 8)
    with pytest.raises(ContractError, match="float32"):
        crop.crop_faces(frames, boxes[:, :4], 8)
    with pytest.raises(ContractError, match="backend"):
        crop.crop_faces(frames, boxes, 8, backend="opencv")  # type: ignore[arg-type]


def test_nv12_to_rgb_reference_values():
    # BT.601 limited: Y 16 -> black, 235 -> white, 126 -> mid grey, pure red (Y 81, U 90, V 240).
    y = torch.tensor([[16, 235, 126, 126], [81, 81, 81, 81]], dtype=torch.uint8)
    uv = torch.tensor([[128, 128, 128, 128]], dtype=torch.uint8)
    nv12 = torch.cat([y, uv]).view(1, 3, 4)
    rgb = crop.nv12_to_rgb(nv12)
    assert rgb[0, 0, :3].tolist() == [[0, 0, 0], [255, 255, 255], [128, 128, 128]]
    red = crop.nv12_to_rgb(torch.tensor([[81, 81], [81, 81], [90, 240]], dtype=torch.uint8).view(1, 3, 2))
    assert (red[0, 0, 0].int() - torch.tensor([255, 0, 0])).abs().max() <= 1
    # Full range: Y passes straight through when chroma is neutral.
    full = crop.nv12_to_rgb(
        torch.tensor([[7, 200], [7, 200], [128, 128]], dtype=torch.uint8).view(1, 3, 2), full_range=True
    )
    assert full[0, 0, :, 0].tolist() == [7, 200]


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("full_range", [False, True])
def test_nv12_to_rgb_against_float64_formula(matrix, full_range):
    g = torch.Generator().manual_seed(10)
    nv12 = torch.randint(0, 256, (2, 12, 10), dtype=torch.uint8, generator=g)
    got = crop.nv12_to_rgb(nv12, matrix=matrix, full_range=full_range).int()
    kr, kb = (0.2126, 0.0722) if matrix == "bt709" else (0.299, 0.114)
    y = nv12[:, :8].double()
    uv = nv12[:, 8:].reshape(2, 4, 5, 2).double().repeat_interleave(2, 1).repeat_interleave(2, 2)
    yn = y / 255 if full_range else (y - 16) / 219
    pb = (uv[..., 0] - 128) / (255 if full_range else 224)
    pr = (uv[..., 1] - 128) / (255 if full_range else 224)
    r, b = yn + 2 * (1 - kr) * pr, yn + 2 * (1 - kb) * pb
    gch = (yn - kr * r - kb * b) / (1 - kr - kb)
    want = torch.floor(torch.stack([r, gch, b], -1) * 255 + 0.5).clamp(0, 255).int()
    assert (got - want).abs().max() <= 1


def test_nv12_crop_equals_crop_of_converted_frames():
    g = torch.Generator().manual_seed(11)
    nv12 = torch.randint(0, 256, (2, 36, 30), dtype=torch.uint8, generator=g)
    _, boxes = random_case(11, f=2, h=24, w=30, m=6)
    a = crop.crop_faces_nv12(nv12, boxes, 16, matrix="bt709", backend="torch")
    b = crop.crop_faces(crop.nv12_to_rgb(nv12, matrix="bt709"), boxes, 16, backend="torch")
    assert torch.equal(a, b)
    with pytest.raises(ContractError, match="NV12"):
        crop.crop_faces_nv12(nv12[:, :35], boxes, 16)
    with pytest.raises(ContractError, match="matrix"):
        crop.crop_faces_nv12(nv12, boxes, 16, matrix="bt2020")


def test_crop_backend_reports_torch_when_native_disabled(monkeypatch):
    monkeypatch.setenv(native.ENV_ENABLE, "0")
    native.reset()
    try:
        b = crop.crop_backend("cpu")
        assert b.name == "torch" and "disabled" in b.detail and str(b).startswith("torch (")
        frames, boxes = random_case(12)
        assert torch.equal(crop.crop_faces(frames, boxes, 9), crop.crop_faces_torch(frames, boxes, 9))
    finally:
        monkeypatch.undo()
        native.reset()


@pytest.mark.gpu
def test_torch_path_cuda_matches_cpu():
    frames, boxes = random_case(13, m=40)
    cpu = crop.crop_faces(frames, boxes, 33, backend="torch")
    gpu = crop.crop_faces(frames.cuda(), boxes.cuda(), 33, backend="torch")
    assert gpu.device.type == "cuda"
    assert (gpu.cpu().int() - cpu.int()).abs().max() <= 1
