"""Small, deterministic LIB models and inputs for tests, benchmarks and GPU checks (no downloads).

A freshly initialised LIB has BatchNorm running statistics of 0/1, so deep backbones (MobileNet, EfficientNet)
shrink every input to nearly the same features and P(fake) barely varies - useless for parity checks.
:func:`calibrate_batchnorm` sets the running statistics from real forward passes so outputs depend on the input.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lib_deepfake.model.config import LIBConfig, Preprocessing
from lib_deepfake.model.inference import InferenceModel
from lib_deepfake.model.lib import LIBNet


def random_faces(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """Deterministic uint8 [batch, size, size, 3] crops: noise over a ramp, every other sample inverted."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (batch, size, size, 3), generator=gen, dtype=torch.int32)
    ramp = torch.linspace(0, 255, size).view(1, 1, size, 1).expand(batch, size, size, 3)
    faces = ((noise + ramp.int()) // 2).clamp(0, 255).to(torch.uint8)
    faces[1::2] = 255 - faces[1::2]
    return faces


@torch.no_grad()
def calibrate_batchnorm(net: LIBNet, preprocessing: Preprocessing, batches: int = 3, batch_size: int = 16) -> LIBNet:
    """Replace BatchNorm running statistics by cumulative averages over a few random batches (eval mode after)."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    wrapper = InferenceModel(net, preprocessing)
    net.train()
    for i in range(batches):
        net(wrapper.normalize(random_faces(batch_size, preprocessing.input_size, seed=1000 + i)))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return net.eval()


def build_test_model(
    backbone: str = "mobilenet",
    *,
    num_libs: int = 2,
    size: int = 32,
    width_mult: float = 0.25,
    channel_order: str = "RGB",
    seed: int = 0,
) -> tuple[LIBNet, LIBConfig]:
    """A small calibrated LIB network (random weights, input-dependent outputs)."""
    torch.manual_seed(seed)
    config = LIBConfig(
        backbone,
        num_libs=num_libs,
        width_mult=width_mult if not backbone.startswith("efficientnet") else 1.0,
        preprocessing=Preprocessing(input_size=size, channel_order=channel_order),  # type: ignore[arg-type]
    )
    net = LIBNet(config)
    return calibrate_batchnorm(net, config.preprocessing), config


def write_test_checkpoint(path: Path | str, *, official: bool = False, data_parallel: bool = True, **kwargs) -> Path:
    """Write a small calibrated checkpoint, in our format or as the official code would (``{'state_dict',
    'epoch'}``, with DataParallel's ``module.`` prefix when ``data_parallel``)."""
    from lib_deepfake.model.checkpoint import save_checkpoint

    path = Path(path)
    if official:
        kwargs.setdefault("channel_order", "BGR")
    net, config = build_test_model(**kwargs)
    if official:
        prefix = "module." if data_parallel else ""
        torch.save({"state_dict": {prefix + k: v for k, v in net.state_dict().items()}, "epoch": 3}, path)
        return path
    return save_checkpoint(path, net, config, epoch=1)
