"""A tiny LIB that has really been trained, and a realistic defect, for tests that parity checks see errors.

A random-weight network is no stand-in: near-dead channels after BatchNorm calibration amplify FP16 and INT8
rounding, and its outputs sit in a narrow band. Training here: 2 x ResNet-34 (width 0.25) at 32 px, CE on the fused
head, AdamW, 60 steps of 16 (about a minute on 2 cores), on crops generated like tests/train/synthetic.py: jittered
crops of scikit-image photos (real) against self-blended copies and noise crops (fake). Noise is in the fake class
because full-size detectors are certain about noise (P(fake) at 0 or 1, the reason parity moved to face crops);
the tiny model learns a little of that, while its face-crop outputs stay spread out. ResNet rather than MobileNet:
MobileNet's depthwise layers quantize so coarsely that INT8 rounding alone exceeds a 5 % weight error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tests.train.synthetic import _base_images, _crop, self_blend

from lib_deepfake.model.checkpoint import save_checkpoint
from lib_deepfake.model.config import LIBConfig, Preprocessing
from lib_deepfake.model.inference import FaceNormalizer
from lib_deepfake.model.lib import LIBNet
from lib_deepfake.model.testing import random_faces

SIZE = 32


def training_crops(n: int, size: int = SIZE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [n, size, size, 3] crops and int64 [n] labels: per 6, 3 real crops, 1 self-blended, 2 noise (fake)."""
    rng = np.random.default_rng(seed)
    bases = _base_images()
    crops, labels = [], []
    for i in range(n):
        img = bases[int(rng.integers(len(bases)))]
        h, w = img.shape[:2]
        side = rng.uniform(0.3, 0.6) * min(h, w)
        cx, cy = rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)
        face = _crop(img, cx, cy, side, size)
        if i % 6 in (3, 5):
            face = random_faces(1, size, seed=seed * 100_000 + i)[0].numpy()
        elif i % 6 == 1:
            face = self_blend(face, rng)
        crops.append(face)
        labels.append(i % 2)
    return torch.from_numpy(np.stack(crops)), torch.tensor(labels)


def train_tiny(path: Path, *, steps: int = 60, batch: int = 16, seed: int = 0) -> Path:
    """Train the tiny LIB and save it in our checkpoint format; returns ``path``."""
    torch.manual_seed(seed)
    config = LIBConfig("resnet34", num_libs=2, width_mult=0.25, preprocessing=Preprocessing(input_size=SIZE))
    net = LIBNet(config)
    normalize = FaceNormalizer(config.preprocessing)
    faces, labels = training_crops(512, SIZE, seed)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(faces), (batch,), generator=gen)
        loss = torch.nn.functional.cross_entropy(net.fused_logits(normalize(faces[idx])), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_checkpoint(path, net.eval(), config, epoch=1)


def scale_largest_weights(src: Path, dst: Path, factor: float = 1.05, count: int = 3) -> list[str]:
    """Write ``src`` (ONNX) to ``dst`` with its ``count`` largest weight tensors multiplied by ``factor``: a small,
    realistic defect (a wrong scale somewhere in an export or quantization step). FP32/FP16 weights are scaled
    directly; INT8 (QDQ) weights through the scale of their DequantizeLinear. Returns the scaled tensors' names."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    kinds = (*floats, onnx.TensorProto.INT8)
    weights = [t for t in model.graph.initializer if t.data_type in kinds and len(t.dims) > 1]
    largest = sorted(weights, key=lambda t: -int(np.prod(t.dims)))[:count]
    targets = {t.name for t in largest if t.data_type in floats}
    quantized = {t.name for t in largest} - targets
    targets |= {n.input[1] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in quantized}
    for tensor in model.graph.initializer:
        if tensor.name in targets:
            array = numpy_helper.to_array(tensor)
            tensor.CopyFrom(numpy_helper.from_array((array * factor).astype(array.dtype), tensor.name))
    onnx.save(model, str(dst))
    return [t.name for t in largest]
