"""Training-step throughput: ``lib-bench train --out bench/results/train-cpu-NAME``.

Times the whole default-recipe step (uint8 faces -> normalise -> mixup -> forward -> LIB losses -> auto balance ->
backward -> AdamW step) on random faces already on the device, so it measures compute, not the data loader (the
loader's cost is reported separately by ``lib-train`` as images/s per epoch). Synchronised ``perf_counter`` timing
after warm-up; p50/p90 step time and images/s; the environment is recorded.
"""

from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np
import torch

from lib_deepfake.model import LIBConfig, Preprocessing, create_lib
from lib_deepfake.train.balance import create_balancer
from lib_deepfake.train.loop import StepContext, _autocast, resolve_amp
from lib_deepfake.train.losses import LIBCriterion, LossSettings
from lib_deepfake.train.normalize import make_normalizer
from lib_deepfake.train.schedule import build_optimizer


def bench_train_step(
    *,
    backbone: str,
    num_libs: int,
    width_mult: float,
    size: int,
    batch_size: int,
    device: str,
    amp: str,
    channels_last: bool,
    warmup: int,
    iters: int,
) -> dict[str, Any]:
    dev = torch.device(device)
    cfg = LIBConfig(backbone, num_libs=num_libs, width_mult=width_mult, preprocessing=Preprocessing(size))
    net = create_lib(cfg).to(dev)
    if channels_last:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    normalize = make_normalizer(net, cfg.preprocessing, dev)
    settings = LossSettings(kl_reduction="batchmean")
    criterion = LIBCriterion(settings)
    balancer = create_balancer("auto", settings.term_names()).to(dev)
    optimizer = build_optimizer("default", net, balancer, lr=1e-4, weight_decay=1e-2, fused=dev.type == "cuda")
    amp_dtype = resolve_amp(amp, dev)
    scaler = torch.amp.GradScaler(dev.type) if amp_dtype == torch.float16 else None
    ctx = StepContext(net, normalize, criterion, balancer, optimizer, lambda s: 1.0, dev, amp_dtype, scaler)
    faces = torch.randint(0, 256, (batch_size, size, size, 3), dtype=torch.uint8, device=dev)
    labels = torch.randint(0, 2, (batch_size,), device=dev)
    net.train()

    def step() -> None:
        x = ctx.normalize(faces)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        perm = torch.randperm(batch_size, device=dev)
        x = 0.7 * x + 0.3 * x[perm]
        with _autocast(dev, amp_dtype):
            out = net(x)
        loss = balancer(criterion(out, labels, (0.7, perm)))
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    result: dict[str, Any] = {
        "config": {
            "backbone": backbone,
            "num_libs": num_libs,
            "width_mult": width_mult,
            "size": size,
            "batch_size": batch_size,
            "device": device,
            "amp": str(amp_dtype),
            "channels_last": channels_last,
            "warmup": warmup,
            "iters": iters,
            "threads": torch.get_num_threads(),
        },  # fmt: skip
        "step_ms": {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)), "mean": float(ms.mean())},
        "images_per_s": float(batch_size * len(times) / sum(times)),
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
        },  # fmt: skip
    }
    if dev.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        result["environment"]["gpu"] = torch.cuda.get_device_name(dev)
    return result


def format_markdown(r: dict[str, Any]) -> str:
    """The result of :func:`bench_train_step` as a one-row markdown table naming the device and the machine."""
    c = r["config"]
    machine = r["environment"].get("machine") or "unnamed machine"
    return (
        f"# Training-step throughput ({c['device']}, {machine})\n\n"
        "| backbone | LIBs | width | size | batch | amp | threads | step p50 ms | step p90 ms | images/s |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {c['backbone']} | {c['num_libs']} | {c['width_mult']} | {c['size']} | {c['batch_size']} | {c['amp']} | "
        f"{c['threads']} | {r['step_ms']['p50']:.1f} | {r['step_ms']['p90']:.1f} | {r['images_per_s']:.1f} |\n"
    )
