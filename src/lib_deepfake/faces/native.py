"""ctypes binding of the native face-crop library (``native/``, built with CMake; see docs/readme/native.md).

Two shared libraries implement the crop geometry of ``faces/crop.py`` (docs/ARCHITECTURE.md "Crop geometry"):
``libdeepfake_crop.so`` (C++, the reference and a fast CPU path) and ``libdeepfake_crop_cuda.so`` (the same C++
functions plus the CUDA kernels). They are looked up, in order, in:

1. ``$LIB_DEEPFAKE_NATIVE_LIB``: a build directory (``build/native``) or one of the two library files;
2. ``lib_deepfake/native/`` inside the package (``cmake --install build/native --prefix src`` puts them there).

Nothing is built or downloaded at run time; when neither place has a library, :func:`status` says why and
``faces.crop`` uses its torch path. ``LIB_DEEPFAKE_NATIVE=0`` disables the library altogether.
No torch headers are involved: tensors cross the boundary as raw data pointers (and the current CUDA stream).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lib_deepfake.errors import ContractError, NativeLibraryError

logger = logging.getLogger(__name__)

ENV_LIB = "LIB_DEEPFAKE_NATIVE_LIB"
ENV_ENABLE = "LIB_DEEPFAKE_NATIVE"
CPU_LIB_NAME = "libdeepfake_crop.so"
CUDA_LIB_NAME = "libdeepfake_crop_cuda.so"
PACKAGE_LIB_DIR = Path(__file__).resolve().parent.parent / "native"
ABI_VERSION = 1

_OK, _EINVAL, _ECUDA, _ENOTSUP = 0, 1, 2, 3
MATRICES = {"bt601": 0, "bt709": 1}
_ERR_LEN = 512

_u8p = ctypes.POINTER(ctypes.c_uint8)
_f32p = ctypes.POINTER(ctypes.c_float)
_i64 = ctypes.c_int64
_i32 = ctypes.c_int32
_vp = ctypes.c_void_p

_SIGNATURES: dict[str, list] = {
    "libdf_crop_rgb_cpu": [_vp, _i64, _i64, _i64, _vp, _i64, _i32, ctypes.c_float, _vp, _i32, ctypes.c_char_p, _i64],
    "libdf_crop_nv12_cpu": [_vp, _i64, _i64, _vp, _i64, _i64, _i64, _i64, _i64, _i32, _i32, _vp, _i64, _i32,
                            ctypes.c_float, _vp, _i32, ctypes.c_char_p, _i64],
    "libdf_nv12_to_rgb_cpu": [_vp, _i64, _i64, _vp, _i64, _i64, _i64, _i64, _i64, _i32, _i32, _vp, ctypes.c_char_p,
                              _i64],
}  # fmt: skip
_CUDA_SIGNATURES: dict[str, list] = {
    "libdf_crop_rgb_cuda": [_i32, _vp, _vp, _i64, _i64, _i64, _vp, _vp, _i64, _i32, ctypes.c_float, _vp,
                            ctypes.c_char_p, _i64],
    "libdf_crop_nv12_cuda": [_i32, _vp, _vp, _i64, _i64, _vp, _i64, _i64, _i64, _i64, _i64, _i32, _i32, _vp, _vp,
                             _i64, _i32, ctypes.c_float, _vp, ctypes.c_char_p, _i64],
    "libdf_cuda_probe": [_i32, ctypes.c_char_p, _i64],
}  # fmt: skip


@dataclass(frozen=True)
class NativeStatus:
    """What was found. ``cpu``/``cuda`` are the loaded libraries' paths (None when unusable, see the reasons)."""

    cpu: Path | None
    cuda: Path | None
    cpu_reason: str
    cuda_reason: str
    cpu_build_info: str = ""
    cuda_build_info: str = ""


class _Lib:
    """One loaded library with its ctypes signatures set."""

    def __init__(self, path: Path, *, cuda: bool) -> None:
        self.path = path
        self.dll = ctypes.CDLL(str(path))
        self.dll.libdf_abi_version.restype = _i32
        self.dll.libdf_build_info.restype = ctypes.c_char_p
        abi = int(self.dll.libdf_abi_version())
        if abi != ABI_VERSION:
            raise NativeLibraryError(f"{path} has ABI version {abi}, this lib_deepfake needs {ABI_VERSION}; rebuild it")
        self.build_info = self.dll.libdf_build_info().decode()
        for name, argtypes in {**_SIGNATURES, **(_CUDA_SIGNATURES if cuda else {})}.items():
            fn = getattr(self.dll, name)
            fn.argtypes = argtypes
            fn.restype = _i32

    def call(self, name: str, *args) -> None:
        """Calls ``name`` with the error buffer appended; raises ContractError / NativeLibraryError on failure."""
        err = ctypes.create_string_buffer(_ERR_LEN)
        rc = getattr(self.dll, name)(*args, err, _ERR_LEN)
        if rc == _OK:
            return
        msg = err.value.decode(errors="replace")
        if rc == _EINVAL:
            raise ContractError(f"native crop: {msg}")
        raise NativeLibraryError(f"native crop ({self.path.name}): {msg}")


def _candidates() -> tuple[list[Path], list[str]]:
    """Directories/files to search, with notes on why earlier ones were skipped."""
    notes: list[str] = []
    dirs: list[Path] = []
    env = os.environ.get(ENV_LIB, "").strip()
    if env:
        p = Path(env).expanduser().resolve()
        if p.is_file():
            dirs.append(p.parent)
        elif p.is_dir():
            dirs.append(p)
        else:
            notes.append(f"${ENV_LIB}={env} does not exist")
    dirs.append(PACKAGE_LIB_DIR)
    return dirs, notes


@functools.lru_cache(maxsize=1)
def _load() -> tuple[_Lib | None, _Lib | None, NativeStatus]:
    if os.environ.get(ENV_ENABLE, "1").strip().lower() in ("0", "off", "false", "no"):
        reason = f"disabled by {ENV_ENABLE}=0"
        return None, None, NativeStatus(None, None, reason, reason)
    dirs, notes = _candidates()
    env_file = os.environ.get(ENV_LIB, "").strip()
    libs: dict[str, _Lib | None] = {"cpu": None, "cuda": None}
    reasons: dict[str, str] = {}
    for kind, name in (("cpu", CPU_LIB_NAME), ("cuda", CUDA_LIB_NAME)):
        tried: list[str] = []
        kind_notes = list(notes)
        for d in dirs:
            path = d / name
            tried.append(str(path))
            if not path.is_file():
                continue
            try:
                libs[kind] = _Lib(path, cuda=kind == "cuda")
                break
            except (OSError, AttributeError, NativeLibraryError) as exc:
                # A stale or foreign build must not break the torch path: report it and keep looking.
                kind_notes.append(f"{path}: cannot load ({exc})")
        if libs[kind] is None:
            reasons[kind] = "; ".join([*kind_notes, f"no usable library (looked for {', '.join(tried)})"])
        else:
            reasons[kind] = f"loaded {libs[kind].path}"  # type: ignore[union-attr]
    # The CUDA library also exports the CPU entry points: use it for CPU crops when only it was found.
    if libs["cpu"] is None and libs["cuda"] is not None:
        libs["cpu"] = libs["cuda"]
        reasons["cpu"] = f"loaded {libs['cuda'].path} (CPU entry points of the CUDA library)"
    if env_file and not any(libs.values()):
        logger.warning("%s is set but no native crop library could be loaded: %s", ENV_LIB, reasons["cpu"])
    status_ = NativeStatus(
        cpu=libs["cpu"].path if libs["cpu"] else None,
        cuda=libs["cuda"].path if libs["cuda"] else None,
        cpu_reason=reasons["cpu"],
        cuda_reason=reasons["cuda"],
        cpu_build_info=libs["cpu"].build_info if libs["cpu"] else "",
        cuda_build_info=libs["cuda"].build_info if libs["cuda"] else "",
    )
    return libs["cpu"], libs["cuda"], status_


def reset() -> None:
    """Forget the loaded libraries and probe results (tests change the environment variables)."""
    _load.cache_clear()
    _probe_cuda.cache_clear()


def status() -> NativeStatus:
    """Where the libraries were found (or why not). Loads them on first use; never raises."""
    return _load()[2]


@functools.lru_cache(maxsize=16)
def _probe_cuda(index: int) -> str:
    """Empty string when CUDA device ``index`` can run the kernels, else the reason."""
    lib = _load()[1]
    if lib is None:
        return _load()[2].cuda_reason
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    err = ctypes.create_string_buffer(_ERR_LEN)
    with torch.cuda.device(index):
        rc = lib.dll.libdf_cuda_probe(index, err, _ERR_LEN)
    return "" if rc == _OK else err.value.decode(errors="replace")


def available(device: torch.device | str) -> tuple[bool, str]:
    """Whether the native library can crop frames living on ``device``, and the reason (path or failure)."""
    device = torch.device(device)
    cpu, cuda, st = _load()
    if device.type == "cpu":
        return (cpu is not None), (f"native CPU library {st.cpu}" if cpu is not None else st.cpu_reason)
    if device.type == "cuda":
        if cuda is None:
            return False, st.cuda_reason
        if not torch.cuda.is_available():
            return False, f"{st.cuda} loaded, but torch sees no CUDA device"
        index = device.index if device.index is not None else torch.cuda.current_device()
        why = _probe_cuda(index)
        if why:
            return False, f"{st.cuda}: {why}"
        return True, f"native CUDA library {st.cuda}"
    return False, f"no native crop for device type {device.type!r}"


def _require(device: torch.device) -> _Lib:
    ok, why = available(device)
    if not ok:
        raise NativeLibraryError(f"native crop not available for {device}: {why}")
    cpu, cuda, _ = _load()
    lib = cuda if device.type == "cuda" else cpu
    assert lib is not None
    return lib


def _boxes_pair(boxes: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(host copy for validation, copy on ``device`` for the kernel), both float32 [M, 5] contiguous."""
    host = boxes.detach().to("cpu", torch.float32).contiguous()
    dev = boxes.detach().to(device, torch.float32).contiguous() if device.type == "cuda" else host
    return host, dev


def _check_basic(frames: torch.Tensor, boxes: torch.Tensor, ndim: int, what: str) -> None:
    # Everything else (box values, sizes) is validated by the library itself before it touches a pixel.
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != ndim:
        raise ContractError(f"{what} must be a uint8 tensor with {ndim} dims")
    if not isinstance(boxes, torch.Tensor) or boxes.ndim != 2 or boxes.shape[1] != 5:
        raise ContractError(f"boxes must be a float32 tensor [M, 5], got {tuple(getattr(boxes, 'shape', ()))}")


def crop_rgb(frames: torch.Tensor, boxes: torch.Tensor, size: int, scale: float = 1.3) -> torch.Tensor:
    """Crops faces with the native library (geometry of ``faces.crop``).

    Args:
        frames: uint8 [F, H, W, 3] RGB on CPU or CUDA (made contiguous if it is not).
        boxes: float32 [M, 5] (frame_index, x1, y1, x2, y2) in pixels, on CPU or the frames' device.
        size: output side S.
        scale: box expansion factor.

    Returns:
        uint8 [M, S, S, 3] RGB on the frames' device. On CUDA the kernel runs asynchronously on the current stream.

    Raises:
        ContractError: invalid boxes/size/scale (checked before any launch).
        NativeLibraryError: library missing for this device, or a CUDA error.
    """
    _check_basic(frames, boxes, 4, "frames")
    if frames.shape[-1] != 3:
        raise ContractError(f"frames must be [F, H, W, 3], got {tuple(frames.shape)}")
    device = frames.device
    lib = _require(device)
    frames = frames.contiguous()
    f, h, w, _ = frames.shape
    m = boxes.shape[0]
    size, scale = int(size), float(scale)
    out = torch.empty((m, max(size, 0), max(size, 0), 3), dtype=torch.uint8, device=device)
    host, dev = _boxes_pair(boxes, device)
    if device.type == "cpu":
        lib.call(
            "libdf_crop_rgb_cpu", frames.data_ptr(), f, h, w, host.data_ptr(), m, size, scale, out.data_ptr(),
            torch.get_num_threads(),
        )  # fmt: skip
        return out
    with torch.cuda.device(device):
        stream = torch.cuda.current_stream(device).cuda_stream
        lib.call(
            "libdf_crop_rgb_cuda", device.index, stream, frames.data_ptr(), f, h, w, host.data_ptr(), dev.data_ptr(),
            m, size, scale, out.data_ptr(),
        )  # fmt: skip
    return out


def _nv12_dims(nv12: torch.Tensor) -> tuple[int, int, int]:
    f, rows, w = nv12.shape
    # rows = 3k gives H = 2k, always even; NVDEC surfaces and this layout have even W as well.
    if rows % 3 != 0 or w % 2 != 0:
        raise ContractError(f"NV12 frames must be uint8 [F, H*3/2, W] with H and W even, got {tuple(nv12.shape)}")
    return f, 2 * rows // 3, w


def crop_nv12(
    nv12: torch.Tensor,
    boxes: torch.Tensor,
    size: int,
    scale: float = 1.3,
    *,
    matrix: str = "bt601",
    full_range: bool = False,
) -> torch.Tensor:
    """Crops faces straight from NV12 frames (NVDEC's output layout), converting only the pixels it reads.

    Equal, bit for bit, to ``crop_rgb(nv12_to_rgb(nv12), ...)``: each source pixel is converted to uint8 RGB
    (chroma: nearest sample) and then interpolated.

    Args:
        nv12: uint8 [F, H*3/2, W] (Y plane rows, then interleaved UV rows), H and W even, CPU or CUDA.
        boxes: float32 [M, 5] as for :func:`crop_rgb`.
        size: output side S.
        scale: box expansion factor.
        matrix: ``"bt601"`` or ``"bt709"``.
        full_range: False for limited range (Y 16..235), which is what NVDEC produces for most video.

    Returns:
        uint8 [M, S, S, 3] RGB on the frames' device.
    """
    _check_basic(nv12, boxes, 3, "nv12")
    if matrix not in MATRICES:
        raise ContractError(f"matrix must be one of {sorted(MATRICES)}, got {matrix!r}")
    f, h, w = _nv12_dims(nv12)
    device = nv12.device
    lib = _require(device)
    nv12 = nv12.contiguous()
    m = boxes.shape[0]
    size, scale = int(size), float(scale)
    out = torch.empty((m, max(size, 0), max(size, 0), 3), dtype=torch.uint8, device=device)
    host, dev = _boxes_pair(boxes, device)
    y, uv, stride = nv12.data_ptr(), nv12.data_ptr() + h * w, h * 3 // 2 * w
    layout = (y, stride, w, uv, stride, w, f, h, w, MATRICES[matrix], int(bool(full_range)))
    if device.type == "cpu":
        lib.call(
            "libdf_crop_nv12_cpu", *layout, host.data_ptr(), m, size, scale, out.data_ptr(), torch.get_num_threads()
        )
        return out
    with torch.cuda.device(device):
        stream = torch.cuda.current_stream(device).cuda_stream
        lib.call(
            "libdf_crop_nv12_cuda", device.index, stream, *layout, host.data_ptr(), dev.data_ptr(), m, size, scale,
            out.data_ptr(),
        )  # fmt: skip
    return out


def nv12_to_rgb(nv12: torch.Tensor, *, matrix: str = "bt601", full_range: bool = False) -> torch.Tensor:
    """Whole-frame NV12 -> RGB on the CPU with the library's conversion (a reference for tests).

    Args:
        nv12: uint8 [F, H*3/2, W] CPU tensor, H and W even.

    Returns:
        uint8 [F, H, W, 3] RGB.
    """
    if not isinstance(nv12, torch.Tensor) or nv12.dtype != torch.uint8 or nv12.ndim != 3 or nv12.device.type != "cpu":
        raise ContractError("nv12 must be a uint8 CPU tensor [F, H*3/2, W]")
    if matrix not in MATRICES:
        raise ContractError(f"matrix must be one of {sorted(MATRICES)}, got {matrix!r}")
    f, h, w = _nv12_dims(nv12)
    lib = _require(torch.device("cpu"))
    nv12 = nv12.contiguous()
    out = torch.empty((f, h, w, 3), dtype=torch.uint8)
    stride = h * 3 // 2 * w
    lib.call(
        "libdf_nv12_to_rgb_cpu", nv12.data_ptr(), stride, w, nv12.data_ptr() + h * w, stride, w, f, h, w,
        MATRICES[matrix], int(bool(full_range)), out.data_ptr(),
    )  # fmt: skip
    return out
