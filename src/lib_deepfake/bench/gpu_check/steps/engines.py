"""Step ``engines``: ``lib-bench engines`` on the profile's LIB model: PyTorch FP32 eager (the reference), FP16 +
channels_last + CUDA graphs, ONNX Runtime CUDA / TensorRT FP16 when present, each with its parity check. The dry
run uses CPU stand-ins (channels_last FP32, ONNX Runtime CPU)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib_deepfake.bench.gpu_check.checks import check, describe_error
from lib_deepfake.bench.gpu_check.probes import has
from lib_deepfake.bench.gpu_check.workdir import ensure_checkpoint

if TYPE_CHECKING:
    from lib_deepfake.bench.gpu_check.profiles import Profile

logger = logging.getLogger(__name__)


def step_engines(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    import torch

    from lib_deepfake.bench.machine import device_slug
    from lib_deepfake.bench.report import write_results
    from lib_deepfake.bench.runner import EngineBenchConfig, run_engine_bench
    from lib_deepfake.engines.registry import engine_availability

    on_gpu = profile.device.startswith("cuda")
    if on_gpu and not torch.cuda.is_available():
        return {"checks": [check("engines", "fail", "no CUDA device")], "summary": "no CUDA device"}
    checks: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    ckpt = ensure_checkpoint(ctx, profile)
    ckpt_s = time.perf_counter() - t0
    engines = ["torch"]
    skipped: dict[str, str] = {}
    for name in ("onnxrt", "trt"):
        if name == "trt" and not on_gpu:
            skipped[name] = "TensorRT needs a GPU (dry run)"
            continue
        avail = engine_availability(name, profile.device)
        if not avail.ok:
            skipped[name] = avail.reason
        elif not (has("onnx") and has("onnxscript")):
            skipped[name] = "the ONNX export needs onnx and onnxscript (add them to --wheels)"
        else:
            engines.append(name)
    if on_gpu:
        precisions = ("fp16",)
        torch_options = {"channels_last": True, "cuda_graphs": True}
    else:
        # CPU stand-ins: channels_last FP32 for the torch row, ONNX Runtime CPU FP32 for the exported graph.
        precisions = ("fp32",)
        torch_options = {"channels_last": True}
    base: dict[str, Any] = dict(
        model=ckpt,
        precisions=precisions,
        batch_sizes=profile.batch_sizes,
        device=profile.device,
        warmup=profile.warmup,
        iters=profile.iters,
        rounds=profile.rounds,
        parity_samples=profile.parity_samples,
        torch_options=torch_options,
        work_dir=Path(ctx["work"]) / "artifacts",
    )

    def progress(message: str) -> None:
        logger.info("engines: %s", message)

    try:
        result = run_engine_bench(EngineBenchConfig(engines=tuple(engines), **base), progress=progress)
    except Exception as exc:
        if engines == ["torch"]:
            raise
        # An export/build/provider failure must not cost the torch numbers: record it and rerun torch alone.
        why = describe_error(exc)
        logger.exception("engines %s failed; rerunning torch only", engines[1:])
        checks.append(check(f"engine {'+'.join(engines[1:])}", "fail", why))
        result = run_engine_bench(EngineBenchConfig(engines=("torch",), **base), progress=progress)
    result["gpu_check"] = {"checkpoint_s": round(ckpt_s, 1), "skipped_engines": skipped}
    slug = device_slug(result["machine"], profile.device)
    png = has("matplotlib")
    written = write_results(result, Path(ctx["out"]) / f"engines-{slug}.json", png=png)
    for e in result["engines"]:
        p = e["parity"]
        status = "fail" if p.get("passed") is False else "pass"
        fallback = (e.get("runtime") or {}).get("fallback")
        detail = f"max |dprob| {p['max_abs_diff']:.2e} (tolerance {p.get('tolerance')}), agreement {p['agreement']:.4f}"
        if fallback:
            detail += f"; FALLBACK {fallback}"
        checks.append(check(f"parity {e['label']}", status, detail))
    for name, why in skipped.items():
        checks.append(check(f"engine {name}", "skip", why))
    top = max(profile.batch_sizes)
    rows = {r["label"]: r for r in result["results"] if r["batch"] == top}
    parts = [
        f"{label}: {r['faces_per_s']:.0f} faces/s ({r.get('ratio_vs_reference') or 0:.2f}x)"
        for label, r in rows.items()
    ]
    data = {
        "result_files": {k: str(v) for k, v in written.items()},
        "batch": top,
        "rows": [
            {
                "label": r["label"],
                "batch": r["batch"],
                "faces_per_s": round(r["faces_per_s"], 1),
                "p50_ms": round(r["latency_ms"]["p50"], 3),
                "ratio_vs_reference": r.get("ratio_vs_reference"),
            }
            for r in result["results"]
        ],
    }
    return {
        "checks": checks,
        "data": data,
        "summary": f"batch {top}: " + "; ".join(parts),
        "context": {"checkpoint": str(ckpt)},
    }
