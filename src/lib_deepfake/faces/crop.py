"""Face crops: square box expansion and the bilinear crop-resize of docs/ARCHITECTURE.md "Crop geometry".

Two implementations of the same math:

* the **torch path** (:func:`crop_faces_torch`): float32 tensor ops on CPU or CUDA that gather only the four
  neighbours of every output pixel (no full-frame float copy) - also the baseline of ``lib-bench crops``;
* the **native path** (``faces.native``): the C++/CUDA library built from ``native/`` with CMake.

:func:`crop_faces` checks the tensors and dispatches: native when the library is loaded and usable for the frames'
device (about 14x faster on CPU, see docs/readme/native.md), else torch. Box values (finite, integer frame index in
range, positive size) are checked by whichever path runs, before any pixel is read: the library does it in C++,
the torch path in NumPy, with the same rules and messages. Both paths perform the same
float32 operations in the same order (no fused multiply-add), so they agree bit for bit in practice and within one
grey level by contract. :func:`crop_backend` tells which one is active and why (for ``lib-bench env``).
"""

from __future__ import annotations

import math
import numbers
from typing import Literal, NamedTuple

import numpy as np
import torch

from lib_deepfake.errors import ContractError

DEFAULT_SCALE = 1.3
MAX_SIZE = 16384  # same limit as the native library
MATRICES = ("bt601", "bt709")
Backend = Literal["auto", "native", "torch"]

# Torch path works on chunks of boxes so its float intermediates stay around 64 MB each.
_CHUNK_ELEMS = 1 << 24


class CropBackend(NamedTuple):
    """The crop implementation :func:`crop_faces` uses for a device: ``name`` and a one-line ``detail``."""

    name: str  # "native-cpu", "native-cuda" or "torch"
    detail: str

    def __str__(self) -> str:
        return f"{self.name} ({self.detail})"


def expand_boxes(boxes_xyxy: torch.Tensor, scale: float = DEFAULT_SCALE) -> torch.Tensor:
    """Square crop windows around boxes: centre kept, side = max(width, height) * scale.

    Args:
        boxes_xyxy: float32 [K, 4] (x1, y1, x2, y2) in pixels, any device.
        scale: expansion factor (> 0).

    Returns:
        float32 [K, 4] square windows (x1, y1, x2, y2), same device, computed with the float32 operations the crop
        itself uses.
    """
    if boxes_xyxy.ndim != 2 or boxes_xyxy.shape[1] != 4 or not boxes_xyxy.is_floating_point():
        raise ContractError(f"boxes_xyxy must be a float tensor [K, 4], got {tuple(boxes_xyxy.shape)}")
    _check_scale(scale)
    b = boxes_xyxy.to(torch.float32)
    x0, y0, side = _window(b[:, 0], b[:, 1], b[:, 2], b[:, 3], float(scale))
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


def _window(
    x1: torch.Tensor, y1: torch.Tensor, x2: torch.Tensor, y2: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Operation order mirrors libdf::box_geometry (native/include/libdf/crop_math.h).
    cx = (x1 + x2) * 0.5
    cy = (y1 + y2) * 0.5
    w = x2 - x1
    h = y2 - y1
    side = torch.where(w >= h, w, h) * scale
    half = side * 0.5
    return cx - half, cy - half, side


def _check_scale(scale: float) -> None:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
        raise ContractError(f"scale must be a finite number > 0, got {scale!r}")


def check_crop_inputs(
    frames: torch.Tensor,
    boxes: torch.Tensor,
    size: int,
    scale: float,
    *,
    nv12: bool = False,
    values: bool = True,
) -> None:
    """Validates crop arguments; raises :class:`ContractError` naming the first problem.

    Args:
        frames: uint8 [F, H, W, 3] (or [F, H*3/2, W] NV12 when ``nv12``), any device.
        boxes: float32 [M, 5] (frame_index, x1, y1, x2, y2), on CPU or the frames' device.
        size: output side S, 1..16384.
        scale: expansion factor, finite and > 0.
        values: also check every box (finite, integer frame index in range, positive size). The native library
            does these checks itself before launching, so the dispatcher skips them on that path.
    """
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8:
        raise ContractError(f"frames must be a uint8 tensor, got {getattr(frames, 'dtype', type(frames).__name__)}")
    if nv12:
        if frames.ndim != 3 or frames.shape[1] % 3 != 0 or frames.shape[2] % 2 != 0 or 0 in frames.shape:
            raise ContractError(f"NV12 frames must be [F, H*3/2, W] with H, W even and > 0, got {tuple(frames.shape)}")
    elif frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
        raise ContractError(f"frames must be [F, H, W, 3] RGB with F, H, W > 0, got {tuple(frames.shape)}")
    if not isinstance(boxes, torch.Tensor) or boxes.dtype != torch.float32 or boxes.ndim != 2 or boxes.shape[1] != 5:
        raise ContractError(
            "boxes must be a float32 tensor [M, 5] (frame_index, x1, y1, x2, y2), got "
            f"{getattr(boxes, 'dtype', type(boxes).__name__)} {tuple(getattr(boxes, 'shape', ()))}"
        )
    if boxes.device.type != "cpu" and boxes.device != frames.device:
        raise ContractError(f"boxes must be on the CPU or on the frames' device {frames.device}, got {boxes.device}")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or not 1 <= int(size) <= MAX_SIZE:
        raise ContractError(f"crop size must be an int in [1, {MAX_SIZE}], got {size!r}")
    _check_scale(scale)
    if values and boxes.shape[0] > 0:
        _check_box_values(boxes.detach().cpu().numpy(), frames.shape[0], int(size), float(scale))


def _check_box_values(b: np.ndarray, num_frames: int, size: int, scale: float) -> None:
    # NumPy rather than torch: a handful of tiny ops, ~10x less overhead per call. float32 throughout, the same
    # operations as libdf's validation, so both paths accept and reject the same boxes.
    def first(bad: np.ndarray) -> int:
        return int(np.flatnonzero(bad)[0])

    with np.errstate(all="ignore"):
        bad = ~np.isfinite(b).all(axis=1)
        if bad.any():
            i = first(bad)
            raise ContractError(f"box {i}: values must be finite, got {b[i].tolist()}")
        fi = b[:, 0]
        bad = (fi != np.floor(fi)) | (fi < 0) | (fi >= num_frames)
        if bad.any():
            i = first(bad)
            raise ContractError(f"box {i}: frame index {fi[i]:g} is not an integer in [0, {num_frames})")
        bad = ~((b[:, 3] > b[:, 1]) & (b[:, 4] > b[:, 2]))
        if bad.any():
            i = first(bad)
            raise ContractError(
                f"box {i}: needs x2 > x1 and y2 > y1 (positive size), got (x1, y1, x2, y2) = {b[i, 1:].tolist()}"
            )
        half = np.float32(0.5)
        w, h = b[:, 3] - b[:, 1], b[:, 4] - b[:, 2]
        side = np.where(w >= h, w, h) * np.float32(scale)
        x0 = (b[:, 1] + b[:, 3]) * half - side * half
        y0 = (b[:, 2] + b[:, 4]) * half - side * half
        step = side / np.float32(size)
        bad = ~(np.isfinite(x0) & np.isfinite(y0) & np.isfinite(step) & (step > 0))
        if bad.any():
            raise ContractError(f"box {first(bad)}: expanded crop window is not representable in float32")


def _axis_taps(s: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear taps along one axis (libdf::axis_tap): indices i0, i1 (int64) and weights w0, w1 (float32).

    A tap outside [0, n-1] gets index 0 and weight 0 ("zero padding"); the float comparisons come before any
    integer conversion so that far-away windows cannot overflow.
    """
    fl = torch.floor(s)
    f = s - fl
    v0 = (fl >= 0) & (fl <= n - 1)
    v1 = (fl >= -1) & (fl <= n - 2)
    zero = torch.zeros((), dtype=s.dtype, device=s.device)
    i0 = torch.where(v0, fl, zero).long()
    i1 = torch.where(v1, fl + 1, zero).long()
    w0 = torch.where(v0, 1.0 - f, zero)
    w1 = torch.where(v1, f, zero)
    return i0, i1, w0, w1


def _crop_chunk(flat: torch.Tensor, h: int, w: int, boxes: torch.Tensor, size: int, scale: float) -> torch.Tensor:
    fi = boxes[:, 0].long()
    x0, y0, side = _window(boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4], scale)
    step = side / size
    t = torch.arange(size, dtype=torch.float32, device=boxes.device) + 0.5
    sx = (x0[:, None] + t[None, :] * step[:, None]) - 0.5  # [M, S]
    sy = (y0[:, None] + t[None, :] * step[:, None]) - 0.5
    xi0, xi1, wx0, wx1 = _axis_taps(sx, w)
    yi0, yi1, wy0, wy1 = _axis_taps(sy, h)
    row0 = ((fi[:, None] * h + yi0) * w)[:, :, None]  # [M, S, 1] flat pixel index of the row start
    row1 = ((fi[:, None] * h + yi1) * w)[:, :, None]
    c0, c1 = xi0[:, None, :], xi1[:, None, :]  # [M, 1, S]

    def px(index: torch.Tensor) -> torch.Tensor:  # [M, S, S] -> float32 [M, S, S, 3]
        return flat[index].to(torch.float32)

    wx0, wx1 = wx0[:, None, :, None], wx1[:, None, :, None]
    top = px(row0 + c0) * wx0 + px(row0 + c1) * wx1
    bot = px(row1 + c0) * wx0 + px(row1 + c1) * wx1
    v = top * wy0[:, :, None, None] + bot * wy1[:, :, None, None]
    return torch.floor(v + 0.5).clamp_(0, 255).to(torch.uint8)


def crop_faces_torch(
    frames: torch.Tensor, boxes: torch.Tensor, size: int, scale: float = DEFAULT_SCALE
) -> torch.Tensor:
    """The torch implementation of the crop (no validation; :func:`crop_faces` validates).

    Args:
        frames: uint8 [F, H, W, 3] RGB, CPU or CUDA.
        boxes: float32 [M, 5] (frame_index, x1, y1, x2, y2), CPU or the frames' device.
        size: output side S.
        scale: box expansion factor.

    Returns:
        uint8 [M, S, S, 3] RGB on the frames' device.
    """
    _, h, w, _ = frames.shape
    flat = frames.reshape(-1, 3)
    boxes = boxes.to(frames.device, torch.float32)
    chunk = max(1, _CHUNK_ELEMS // (size * size * 3))
    parts = [_crop_chunk(flat, h, w, boxes[i : i + chunk], size, float(scale)) for i in range(0, boxes.shape[0], chunk)]
    if not parts:
        return torch.empty((0, size, size, 3), dtype=torch.uint8, device=frames.device)
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _native():
    # Imported lazily: keeps `import lib_deepfake.faces.crop` free of ctypes loading until a crop is asked for.
    from lib_deepfake.faces import native

    return native


def crop_backend(device: torch.device | str = "cpu") -> CropBackend:
    """Which implementation :func:`crop_faces` uses for frames on ``device``, and why (for ``lib-bench env``)."""
    device = torch.device(device)
    ok, why = _native().available(device)
    if ok:
        return CropBackend(f"native-{device.type}", why)
    return CropBackend("torch", f"native library unavailable: {why}")


def _resolve(backend: Backend, frames: torch.Tensor) -> str:
    # Called before the full validation: a non-tensor reaches check_crop_inputs and its error message.
    device = frames.device if isinstance(frames, torch.Tensor) else torch.device("cpu")
    if backend not in ("auto", "native", "torch"):
        raise ContractError(f"backend must be 'auto', 'native' or 'torch', got {backend!r}")
    if backend == "auto":
        return "native" if _native().available(device)[0] else "torch"
    return backend


def crop_faces(
    frames: torch.Tensor,
    boxes: torch.Tensor,
    size: int,
    scale: float = DEFAULT_SCALE,
    *,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Crops square face windows and resizes them bilinearly to S x S (docs/ARCHITECTURE.md "Crop geometry").

    Args:
        frames: uint8 [F, H, W, 3] RGB frames, CPU or CUDA.
        boxes: float32 [M, 5] (frame_index, x1, y1, x2, y2) in pixels of that frame (x2/y2 exclusive), on the
            CPU or the frames' device.
        size: output side S (the model's input size).
        scale: expansion of max(width, height) around the box centre.
        backend: ``"auto"`` (native when usable for the device, else torch), ``"native"`` or ``"torch"``.

    Returns:
        uint8 [M, S, S, 3] RGB on the frames' device (asynchronous on the current stream for CUDA).

    Raises:
        ContractError: wrong dtype/shape, NaN/inf boxes, zero or negative box size, frame index out of range,
            size <= 0 or scale <= 0.
        NativeLibraryError: ``backend="native"`` but the library is not usable for the device.
    """
    use_native = _resolve(backend, frames) == "native"
    check_crop_inputs(frames, boxes, size, scale, values=not use_native)
    size, scale = int(size), float(scale)
    if use_native:
        return _native().crop_rgb(frames, boxes, size, scale)
    return crop_faces_torch(frames, boxes, size, scale)


def yuv_coefficients(
    matrix: str = "bt601", full_range: bool = False
) -> tuple[float, float, float, float, float, float]:
    """(yoff, ys, rv, gu, gv, bu) of R = yv + rv*v, G = (yv - gu*u) - gv*v, B = yv + bu*u, yv = (Y - yoff) * ys,
    u = U - 128, v = V - 128. Same double expressions as libdf's yuv_coeffs, rounded to float32 where used."""
    if matrix not in MATRICES:
        raise ContractError(f"matrix must be one of {MATRICES}, got {matrix!r}")
    kr, kb = (0.2126, 0.0722) if matrix == "bt709" else (0.299, 0.114)
    kg = 1.0 - kr - kb
    ys = 1.0 if full_range else 255.0 / 219.0
    cs = 1.0 if full_range else 255.0 / 224.0
    return (
        0.0 if full_range else 16.0,
        ys,
        cs * (2.0 * (1.0 - kr)),
        cs * (2.0 * (1.0 - kb) * kb / kg),
        cs * (2.0 * (1.0 - kr) * kr / kg),
        cs * (2.0 * (1.0 - kb)),
    )


def nv12_to_rgb(nv12: torch.Tensor, *, matrix: str = "bt601", full_range: bool = False) -> torch.Tensor:
    """NV12 -> RGB in torch, the same per-pixel math as the native NV12 crop.

    Chroma is upsampled by nearest neighbour (pixel (x, y) uses chroma sample (x // 2, y // 2)). The default,
    BT.601 limited range, is what NVDEC returns for most SD/HD content; pass ``matrix="bt709"`` for HD streams
    tagged BT.709 and ``full_range=True`` for JPEG-range video.

    Args:
        nv12: uint8 [F, H*3/2, W] (Y rows, then interleaved U/V rows), H and W even, CPU or CUDA.

    Returns:
        uint8 [F, H, W, 3] RGB on the same device.
    """
    if nv12.dtype != torch.uint8 or nv12.ndim != 3 or nv12.shape[1] % 3 or nv12.shape[2] % 2:
        raise ContractError(f"nv12 must be uint8 [F, H*3/2, W] with H, W even, got {nv12.dtype} {tuple(nv12.shape)}")
    yoff, ys, rv, gu, gv, bu = (
        float(torch.tensor(c, dtype=torch.float32)) for c in yuv_coefficients(matrix, full_range)
    )
    f, rows, w = nv12.shape
    h = rows // 3 * 2
    y = nv12[:, :h, :].to(torch.float32)
    uv = nv12[:, h:, :].reshape(f, h // 2, w // 2, 2)
    u = uv[..., 0].repeat_interleave(2, dim=1).repeat_interleave(2, dim=2).to(torch.float32) - 128.0
    v = uv[..., 1].repeat_interleave(2, dim=1).repeat_interleave(2, dim=2).to(torch.float32) - 128.0
    yv = (y - yoff) * ys
    rgb = torch.stack([yv + v * rv, (yv - u * gu) - v * gv, yv + u * bu], dim=-1)
    return torch.floor(rgb + 0.5).clamp_(0, 255).to(torch.uint8)


def crop_faces_nv12(
    nv12: torch.Tensor,
    boxes: torch.Tensor,
    size: int,
    scale: float = DEFAULT_SCALE,
    *,
    matrix: str = "bt601",
    full_range: bool = False,
    backend: Backend = "auto",
) -> torch.Tensor:
    """:func:`crop_faces` on NV12 frames (NVDEC's layout): equal to ``crop_faces(nv12_to_rgb(nv12), ...)``.

    The native path converts only the pixels it samples; the torch path converts whole frames first.

    Args:
        nv12: uint8 [F, H*3/2, W], H and W even, CPU or CUDA.
        boxes: float32 [M, 5] as for :func:`crop_faces`.
        size: output side S.
        scale: box expansion factor.
        matrix: ``"bt601"`` or ``"bt709"``.
        full_range: False for limited range (Y 16..235, C 16..240).
        backend: ``"auto"``, ``"native"`` or ``"torch"``.

    Returns:
        uint8 [M, S, S, 3] RGB on the frames' device.
    """
    use_native = _resolve(backend, nv12) == "native"
    check_crop_inputs(nv12, boxes, size, scale, nv12=True, values=not use_native)
    size, scale = int(size), float(scale)
    if matrix not in MATRICES:
        raise ContractError(f"matrix must be one of {MATRICES}, got {matrix!r}")
    if use_native:
        return _native().crop_nv12(nv12, boxes, size, scale, matrix=matrix, full_range=full_range)
    return crop_faces_torch(nv12_to_rgb(nv12, matrix=matrix, full_range=full_range), boxes, size, scale)
