"""Views of an engine-benchmark result: a markdown table, a PNG plot, and the files under bench/results/.

The JSON written by :func:`write_results` is the source; the table and the plot are rebuilt from it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lib_deepfake.bench.protocol import format_ratio, markdown_line, noisy_tag


def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def machine_line(result: dict[str, Any]) -> str:
    """One line naming the machine: CPU, cores, load, GPU, driver, CUDA, key library versions."""
    m = result["machine"]
    parts = [f"CPU {m['cpu']} ({m['cpu_cores']} usable cores)"]
    load = result.get("load_average", {})
    if load.get("start"):
        parts.append(f"load avg {load['start'][0]:.1f} -> {(load.get('end') or [math.nan])[0]:.1f}")
    gpu = m.get("gpu")
    if gpu:
        parts.append(f"GPU {gpu['name']} (sm {gpu['compute_capability']}, driver {gpu.get('driver') or '?'}, "
                     f"CUDA {gpu.get('cuda')})")  # fmt: skip
    versions = m.get("versions", {})
    libs = [f"{k} {versions[k]}" for k in ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt") if k in versions]
    parts.append(", ".join(libs))
    return "; ".join(parts)


def runtime_line(engine: dict[str, Any]) -> str:
    rt = engine.get("runtime") or {}
    bits = []
    if rt.get("providers"):
        bits.append("providers " + ", ".join(rt["providers"]))
    if rt.get("fallback"):
        bits.append(f"FALLBACK: {rt['fallback']}")
    if rt.get("tensorrt"):
        bits.append(f"TensorRT {rt['tensorrt']}")
    opts = {k: v for k, v in (engine.get("options") or {}).items() if v not in (False, None, "")}
    if opts:
        bits.append(", ".join(f"{k}={v}" for k, v in opts.items()))
    return "; ".join(bits) or "-"


def _ratio_cell(row: dict[str, Any]) -> str:
    # Results from before the protocol carry one ratio, without per-round statistics.
    if row.get("ratio_stats"):
        return format_ratio(row["ratio_stats"])
    return f"{_fmt(row.get('ratio_vs_reference'), '.2f')}x"


def _limits(parity: dict[str, Any]) -> str:
    # Results from before face-crop parity carry one max |dprob| number.
    tolerance = parity.get("tolerance")
    if isinstance(tolerance, dict):
        from lib_deepfake.engines.parity import Tolerance

        return Tolerance(**tolerance).describe()
    return _fmt(tolerance, "g")


def to_markdown(result: dict[str, Any]) -> str:
    """The benchmark as markdown: machine, model, parity per engine, then throughput/latency per batch size."""
    model = result["model"]
    tag = noisy_tag(result.get("protocol"))
    lines = [
        f"### lib-bench engines on {result['device']} ({result['created_utc']}){' - NOISY' if tag else ''}",
        "",
        f"Machine: {machine_line(result)}.",
        "",
        markdown_line(result.get("protocol")),
        "",
        f"Model: LIB {model['num_libs']}x{model['backbone']} (width x{model['width_mult']:g}) at "
        f"{model['input_size']}px, checkpoint sha256 {model['sha256'][:12]}. Reference: {result['reference']}.",
        "",
        "| engine | parity max abs dlogit | mean abs dlogit | max abs dprob | mean abs dprob | agreement @0.5 "
        "| limits | prep s | load s | runtime |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["engines"]:
        p = e["parity"]
        verdict = "" if p.get("passed") in (None, True) else " FAIL"
        lines.append(
            f"| {e['label']} | {_fmt(p.get('max_abs_dlogit'), '.2e')}{verdict} "
            f"| {_fmt(p.get('mean_abs_dlogit'), '.2e')} | {p['max_abs_diff']:.2e} | {p['mean_abs_diff']:.2e} "
            f"| {p['agreement']:.4f} | {_limits(p)} "
            f"| {_fmt(e['prep'].get('prep_s'), '.1f')} | {_fmt(e['load_s'], '.2f')} | {runtime_line(e)} |"
        )
    if result["engines"] and result["engines"][0]["parity"].get("inputs"):
        lines += ["", f"Parity inputs: {result['engines'][0]['parity']['inputs']}."]
    lines += [
        "",
        "| engine | batch | faces/s | x reference: median (min-max) | p50 ms | p90 ms | p99 ms | calls "
        "| peak memory MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        mem = r.get("memory") or {}
        peak = mem.get("torch_peak_allocated_mib", mem.get("process_peak_rss_mib"))
        lat = r["latency_ms"]
        lines.append(
            f"| {r['label']} | {r['batch']} | {_fmt(r['faces_per_s'])} | {_ratio_cell(r)}{tag} "
            f"| {_fmt(lat['p50'], '.2f')} | {_fmt(lat['p90'], '.2f')} | {_fmt(lat['p99'], '.2f')} | {r['calls']} "
            f"| {_fmt(peak, '.0f')} |"
        )
    cfg = result["config"]
    per_round = "; a ratio is the median (min-max) of the per-round ratios" if result.get("protocol") else ""
    lines += [
        "",
        f"Timed calls per engine and batch: {cfg['iters']} in {cfg['rounds']} interleaved rounds after {cfg['warmup']} "
        f"warm-up calls{per_round}. Peak memory: "
        + (
            "torch allocator peak on the GPU."
            if result["device"].startswith("cuda")
            else "process peak RSS (all engines share the process, so it only grows)."
        ),  # fmt: skip
    ]
    from lib_deepfake.bench.flops import compute_lines

    lines += compute_lines(result)
    for note in result.get("notes", []):
        lines.append(f"Note: {note}")
    return "\n".join(lines) + "\n"


def plot_png(result: dict[str, Any], path: Path | str) -> Path:
    """Throughput vs batch size, one line per engine (matplotlib, Agg backend)."""
    from lib_deepfake._optional import require

    matplotlib = require("matplotlib", purpose="plotting benchmark results", extra="bench")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    labels = list(dict.fromkeys(r["label"] for r in result["results"]))
    for label in labels:
        rows = sorted((r for r in result["results"] if r["label"] == label), key=lambda r: r["batch"])
        ax.plot([r["batch"] for r in rows], [r["faces_per_s"] for r in rows], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("faces / s")
    model = result["model"]
    where = result["machine"]["gpu"]["name"] if result["device"].startswith("cuda") else result["machine"]["cpu"]
    ax.set_title(f"LIB {model['num_libs']}x{model['backbone']} @{model['input_size']} on {where}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_results(result: dict[str, Any], json_path: Path | str, *, png: bool = True) -> dict[str, Path]:
    """Write the JSON and, beside it, the markdown table (.md) and the plot (.png)."""
    from lib_deepfake.atomic import write_json_atomic

    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(json_path, result)
    md = json_path.with_suffix(".md")
    md.write_text(to_markdown(result), encoding="utf-8")
    written = {"json": json_path, "md": md}
    if png:
        written["png"] = plot_png(result, json_path.with_suffix(".png"))
    return written


def load_result(path: Path | str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))
