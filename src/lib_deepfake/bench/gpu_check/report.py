"""The GPU check's report: the file label naming the card, the markdown report beside the JSON, and the short table
printed last."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lib_deepfake.bench.gpu_check.profiles import Profile

#: the result JSON's format; the JSON is the source of truth, the markdown a view of it
SCHEMA = "lib-deepfake/gpu-check/1"


def device_label(machine: dict[str, Any], profile: Profile) -> str:
    """File-name label naming the card (``nvidia-h100-80gb-hbm3``) or ``dry-run-cpu-...``."""
    gpu = machine.get("gpu")
    if profile.name == "gpu" and gpu:
        return re.sub(r"[^a-z0-9]+", "-", gpu["name"].lower()).strip("-")
    cpu = re.sub(r"\((?:r|tm)\)|cpu @.*$|processor|\d+-core", "", str(machine.get("cpu", "cpu")).lower())
    cpu = re.sub(r"[^a-z0-9]+", "-", cpu).strip("-")
    return f"{'dry-run' if profile.name != 'gpu' else 'nogpu'}-{cpu}-{machine.get('cpu_cores')}c"


def read_install_log(out: Path) -> dict[str, Any] | None:
    """What bench/gpu_check.sh installed (``install.json`` it writes into the result folder), if it ran."""
    path = out / "install.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {"error": "install.json is not valid JSON"}


def to_markdown(result: dict[str, Any]) -> str:
    """The report: a header naming the machine, the short table, then every check."""
    m = result["machine"]
    gpu = m.get("gpu")
    where = (
        f"{gpu['name']} (sm {gpu['compute_capability']}, {gpu['memory_gib']} GiB), driver {gpu.get('driver')}, "
        f"CUDA {gpu.get('cuda')}"
        if gpu
        else "no GPU"
    )
    versions = m.get("versions", {})
    libs = ", ".join(
        f"{k} {versions[k]}"
        for k in ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "nvidia-dali-cuda130", "av")
        if k in versions
    )
    lines = [
        f"# GPU check ({result['mode']}) - {result['device_label']}",
        "",
        f"{result['created_utc']}; {'PASSED' if result['passed'] else 'FAILED: ' + ', '.join(result['failed_steps'])}"
        f" in {result['total_s']} s (budget {result['budget_s']:.0f} s).",
        "",
        f"Machine: {where}; CPU {m.get('cpu')} ({m.get('cpu_cores')} cores); {libs}.",
        "",
        short_table(result),
        "",
        "## Checks",
        "",
        "| step | check | status | detail |",
        "|---|---|---|---|",
    ]
    for r in result["steps"]:
        if not r.get("checks"):
            lines.append(f"| {r['step']} | - | {r['status']} | {_cell(r.get('summary', ''))} |")
        for c in r.get("checks", []):
            lines.append(f"| {r['step']} | {_cell(c['name'])} | {c['status']} | {_cell(c['detail'])} |")
    inst = result.get("install")
    if inst:
        lines += ["", "## Install (bench/gpu_check.sh)", "", "```", json.dumps(inst, indent=1)[:3000], "```"]
    lines += ["", f"Raw data: gpu-check-{result['device_label']}.json, steps/*.json; logs in logs/."]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def short_table(result: dict[str, Any]) -> str:
    """step | status | seconds | summary - what the command prints last."""
    lines = ["| step | status | s | summary |", "|---|---|---:|---|"]
    for r in result["steps"]:
        lines.append(f"| {r['step']} | {r['status']} | {r.get('seconds', 0)} | {_cell(r.get('summary', ''))[:160]} |")
    return "\n".join(lines)
