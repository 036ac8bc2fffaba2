"""``lib-bench grouped``: the N backbones as one network of grouped convolutions against the ordinary export.

Both ONNX graphs of one checkpoint (``lib-export to-onnx`` and :func:`lib_deepfake.export.grouped.export_grouped_onnx`)
run on each requested engine and precision. Parity first: each against the PyTorch FP32 model on face crops, with the
precision's limits. Then the two graphs of each (engine, precision) take turns in interleaved rounds at one batch
size; the grouped graph's speed is reported as the median (min-max) of the per-round ratios. The result says, per
pair, whether the grouped graph is faster at equal parity - the only case where it would be worth shipping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: (engine, precision) pairs this benchmark can run on a CPU, in table order
PAIRS = (("onnxrt", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"))


def _engine_options(engine: str, precision: str, threads: int | None, work: Path) -> dict[str, Any]:
    if engine == "openvino":
        return {"precision": precision, "threads": threads, "cache_dir": work / "openvino-cache"}
    return {"threads": threads}


def run_grouped_bench(checkpoint: Path, *, pairs: list[tuple[str, str]], batch: int = 16, rounds: int = 5,
                      calls: int = 3, threads: int | None = None, work_dir: Path = Path("bench/artifacts"),
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Export both graphs (reused from ``work_dir`` when present), check parity, time them; the result dict."""
    from lib_deepfake.bench.machine import machine_info
    from lib_deepfake.bench.protocol import mark, ratio_stats
    from lib_deepfake.bench.side_by_side import Side, median, reference_on_face_crops, time_side_by_side
    from lib_deepfake.export.grouped import export_grouped_onnx
    from lib_deepfake.export.onnx_export import export_onnx

    say = progress or (lambda msg: None)
    work_dir.mkdir(parents=True, exist_ok=True)
    graphs = {"ordinary": work_dir / f"{checkpoint.stem}.ungrouped.onnx",
              "grouped": work_dir / f"{checkpoint.stem}.grouped.onnx"}  # fmt: skip
    t0 = time.perf_counter()
    if not graphs["ordinary"].is_file():
        say("exporting the ordinary ONNX")
        export_onnx(checkpoint, graphs["ordinary"])
    if not graphs["grouped"].is_file():
        say("exporting the grouped ONNX")
        export_grouped_onnx(checkpoint, graphs["grouped"])
    export_s = time.perf_counter() - t0
    faces, reference = reference_on_face_crops(checkpoint, batch)
    sides = {f"{engine} {precision} {variant}": Side(engine, artifact, precision,
                                                     _engine_options(engine, precision, threads, work_dir))
             for engine, precision in pairs for variant, artifact in graphs.items()}  # fmt: skip
    rates, parity, record = time_side_by_side(sides, faces, reference, batch=batch, rounds=rounds, calls=calls, say=say)
    rows = []
    for engine, precision in pairs:
        ordinary, grouped = rates[f"{engine} {precision} ordinary"], rates[f"{engine} {precision} grouped"]
        stats = ratio_stats(grouped, ordinary)
        p_ord = parity[f"{engine} {precision} ordinary"]
        p_grp = parity[f"{engine} {precision} grouped"]
        equal_parity = bool(p_ord["passed"]) and bool(p_grp["passed"])
        rows.append({"engine": engine, "precision": precision, "batch": batch,
                     "ordinary_faces_per_s": round(median(ordinary), 2),
                     "grouped_faces_per_s": round(median(grouped), 2),
                     "grouped_vs_ordinary": stats, "parity_ordinary": p_ord, "parity_grouped": p_grp,
                     "keep_grouped": equal_parity and (stats.get("min") or 0) > 1.0})  # fmt: skip
    result = {"benchmark": "grouped-backbones", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine_info("cpu"), "checkpoint": str(checkpoint), "export_s": round(export_s, 1),
              "settings": {"batch": batch, "rounds": rounds, "calls_per_round": calls, "threads": threads},
              "parity_inputs": f"{faces.shape[0]} face crops of the bundled face-crop set", "rows": rows}  # fmt: skip
    return mark(result, record)


def to_markdown(result: dict[str, Any]) -> str:
    """The result as a markdown table."""
    from lib_deepfake.bench.machine import describe_machine
    from lib_deepfake.bench.protocol import format_ratio, markdown_line

    s = result["settings"]
    setup = (
        f"Checkpoint {Path(result['checkpoint']).name}; batch {s['batch']}, {s['rounds']} interleaved rounds of "
        f"{s['calls_per_round']} calls per graph; parity on {result['parity_inputs']} against torch FP32."
    )
    lines = [f"# lib-bench grouped: {describe_machine(result['machine'])}", "", markdown_line(result.get("protocol")),
             "", setup, "",
             "| engine | precision | ordinary faces/s | grouped faces/s | grouped / ordinary | parity ordinary | "
             "parity grouped | keep grouped |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        po, pg = r["parity_ordinary"], r["parity_grouped"]
        lines.append(f"| {r['engine']} | {r['precision']} | {r['ordinary_faces_per_s']:.1f} | "
                     f"{r['grouped_faces_per_s']:.1f} | {format_ratio(r['grouped_vs_ordinary'])} | "
                     f"{'pass' if po['passed'] else 'FAIL'} (max dlogit {po['max_abs_dlogit']:.1e}) | "
                     f"{'pass' if pg['passed'] else 'FAIL'} (max dlogit {pg['max_abs_dlogit']:.1e}) | "
                     f"{'yes' if r['keep_grouped'] else 'no'} |")  # fmt: skip
    lines += ["", "Keep grouped: both graphs pass parity and the grouped one is faster in every round."]
    return "\n".join(lines) + "\n"


__all__ = ["PAIRS", "run_grouped_bench", "to_markdown"]
