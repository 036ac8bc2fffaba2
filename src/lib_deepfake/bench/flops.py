"""How much arithmetic one face costs (multiply-accumulates counted from the model's graph) and what rate of it an
engine row achieves: the "GFLOP/s" and "of peak" columns of ``lib-bench engines``.

The count comes from torch's ``FlopCounterMode`` over one forward pass of the inference model (convolutions, linear
layers and matmuls at their traced shapes; element-wise work such as ReLU, BatchNorm or the residual adds is not
counted, as in every published FLOP figure of these networks). One multiply-accumulate is two FLOPs. Every engine
runs the same graph (ONNX Runtime and OpenVINO from the ONNX traced from this model), so one count per model holds
for every row, whatever precision the row computes in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from lib_deepfake.model.config import LIBConfig

METHOD = "torch.utils.flop_counter.FlopCounterMode on one forward pass (conv, linear, matmul; 1 MAC = 2 FLOP)"


def count_macs(module: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of ``module(*inputs)`` (the whole batch), from the traced operators."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        module(*inputs)
    return int(counter.get_total_flops()) // 2


def model_work(config: LIBConfig) -> dict[str, Any]:
    """MACs per face of the inference graph of a LIB model (preprocessing and softmax included, negligible).

    The model is built on torch's ``meta`` device: shapes are propagated and counted, no weight is allocated and
    no arithmetic is done, so counting a 4xResNet-34 takes about a second.

    Returns:
        ``{"macs_per_face": int, "gflop_per_face": float, "input_size": S, "method": str}``.
    """
    import torch

    from lib_deepfake.model.inference import InferenceModel
    from lib_deepfake.model.lib import LIBNet

    size = config.input_size
    with torch.device("meta"):
        model = InferenceModel(LIBNet(config), config.preprocessing).eval()
        faces = torch.zeros((1, size, size, 3), dtype=torch.uint8)
    macs = count_macs(model, faces)
    return {"macs_per_face": macs, "gflop_per_face": 2 * macs / 1e9, "input_size": size, "method": METHOD}


def achieved_gflops(macs_per_face: int, faces_per_s: float | None) -> float | None:
    """GFLOP/s of useful work at ``faces_per_s``."""
    if faces_per_s is None:
        return None
    return 2.0 * macs_per_face * faces_per_s / 1e9


def annotate_results(results: list[dict[str, Any]], work: dict[str, Any], peaks: dict[str, Any]) -> None:
    """Add ``gflops`` and ``peak_fraction`` (against the peak of the row's precision; None where no peak of that
    precision was measured) to every result row of ``lib-bench engines``, in place."""
    for row in results:
        rate = achieved_gflops(work["macs_per_face"], row.get("faces_per_s"))
        peak = (peaks.get(row.get("precision", "")) or {}).get("gflops")
        row["gflops"] = rate
        row["peak_fraction"] = rate / peak if rate is not None and peak else None


def _peak_text(precision: str, peak: dict[str, Any]) -> str:
    if "gflops" not in peak:
        return f"{precision}: none ({peak.get('skipped', 'not measured')})"
    threads = f", {peak['threads']} threads" if peak.get("threads") else ""
    return (f"{precision} {peak['gflops']:.0f} (median {peak['median_gflops']:.0f}; {peak['method']}, "
            f"{peak['size']}^3{threads})")  # fmt: skip


def compute_lines(result: dict[str, Any]) -> list[str]:
    """The markdown of the work per face, the measured peaks and each row's GFLOP/s and fraction of peak (empty for
    results that predate these fields)."""
    work, peaks = result.get("work"), result.get("peak") or {}
    if not work:
        return []
    lines = [
        "",
        f"Work per face: {work['gflop_per_face']:.2f} GFLOP ({work['macs_per_face'] / 1e9:.2f} GMAC; "
        f"{work['method']}). "
        "GEMM peaks measured at the start of the run, GFLOP/s (GOP/s for int8): "
        + ("; ".join(_peak_text(p, v) for p, v in peaks.items()) or "not measured")
        + ".",
        "",
        "| engine | precision | batch | GFLOP/s of work | of the measured peak |",
        "|---|---|---|---|---|",
    ]
    for r in result["results"]:
        rate, fraction = r.get("gflops"), r.get("peak_fraction")
        share = f"{fraction:.0%}" if fraction is not None else f"- (no {r['precision']} peak)"
        lines.append(f"| {r['label']} | {r['precision']} | {r['batch']} | "
                     f"{'-' if rate is None else format(rate, '.0f')} | {share} |")  # fmt: skip
    return lines
