"""Run the GPU check: the steps in table order, each in its own process with a time limit cut from the run's
budget, then the result JSON and the markdown report. Standard library only at import time."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lib_deepfake.atomic import atomic_open
from lib_deepfake.bench.gpu_check.harness import json_default, run_step_process
from lib_deepfake.bench.gpu_check.profiles import DRY_PROFILE, GPU_PROFILE
from lib_deepfake.bench.gpu_check.report import SCHEMA, device_label, read_install_log, to_markdown
from lib_deepfake.bench.gpu_check.steps import STEPS

logger = logging.getLogger(__name__)

#: time kept back for each step still to come
MIN_STEP_S = 20.0


def find_repo(start: Path | None = None) -> Path:
    """The source tree (pyproject.toml + tests/): ``start``, else the checkout this package lives in, else the cwd."""
    candidates = [start] if start else []
    candidates += [Path(__file__).resolve().parents[4], Path.cwd()]  # src/lib_deepfake/bench/gpu_check/ -> root
    for c in candidates:
        if c is not None and (c / "pyproject.toml").is_file() and (c / "tests").is_dir():
            return c.resolve()
    return (start or Path.cwd()).resolve()


def run_gpu_check(
    out: Path | str,
    *,
    dry_run: bool = False,
    steps: tuple[str, ...] = STEPS,
    budget_s: float | None = None,
    repo: Path | str | None = None,
    work: Path | str | None = None,
    python: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the check and write its results; returns the result dict (schema :data:`SCHEMA`).

    Args:
        out: result folder (created): gpu-check-<device>.json/.md, steps/, logs/.
        dry_run: the CPU profile (small inputs, GPU parts skipped or replaced by CPU equivalents).
        steps: which steps; they run in the step table's order.
        budget_s: overall time limit [profile default: 330 s GPU, 420 s dry run]; each step gets at most its own
            limit and what is left.
        repo: the source tree (CMakeLists.txt, tests/) [found from the package location or the cwd].
        work: scratch folder for checkpoints, ONNX files, clips (large; keep it out of ``out``)
            [repo/build/gpu-check/<mode>].
        python: interpreter for the step processes [this one].
        echo: progress lines (the CLI prints them); default: logging.

    Raises:
        ValueError: a step name not in the step table.
    """
    say = echo or (lambda line: logger.info("%s", line))
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    profile = DRY_PROFILE if dry_run else GPU_PROFILE
    if budget_s is not None:
        profile = replace(profile, budget_s=float(budget_s))
    out = Path(out).resolve()
    repo_path = find_repo(Path(repo).resolve() if repo else None)
    work_path = Path(work).resolve() if work else repo_path / "build" / "gpu-check" / profile.name
    for sub in ("steps", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    work_path.mkdir(parents=True, exist_ok=True)
    py = python or sys.executable
    ctx: dict[str, Any] = {"out": str(out), "work": str(work_path), "repo": str(repo_path), "profile": asdict(profile)}
    started = datetime.now(timezone.utc)
    t_start = time.monotonic()
    deadline = t_start + profile.budget_s
    results: list[dict[str, Any]] = []
    ordered = [s for s in STEPS if s in steps]
    no_gpu = ""
    for i, name in enumerate(ordered):
        if no_gpu:
            results.append(_not_run(name, no_gpu))
            say(f"[skip] {name}: {no_gpu}")
            continue
        left = deadline - time.monotonic()
        # Keep MIN_STEP_S for every later step, so one slow step cannot starve all the others.
        limit = min(profile.timeouts.get(name, 120), left - MIN_STEP_S * (len(ordered) - i - 1))
        if limit < 10:
            results.append(_not_run(name, f"out of time ({profile.budget_s:.0f} s budget spent)"))
            say(f"[skip] {name}: out of time")
            continue
        say(f"[....] {name} (limit {limit:.0f} s)")
        res = run_step_process(py, name, ctx, limit, out)
        results.append(res)
        ctx.update(res.pop("context", None) or {})
        if name == "env" and profile.name == "gpu" and not _env_has_cuda(res):
            # Nothing after this can prove a GPU path; say so once instead of failing every step.
            no_gpu = "not run: no usable CUDA device (see env; use --dry-run on a CPU machine)"
        say(f"[{res['status']:>4}] {name} ({res['seconds']} s): {res.get('summary', '')}")
    total = time.monotonic() - t_start
    env = next((r for r in results if r["step"] == "env"), None)
    machine = ((env or {}).get("data") or {}).get("machine") or _light_machine()
    label = device_label(machine, profile)
    failed = [r["step"] for r in results if r["status"] in ("fail", "error", "timeout")]
    result = {
        "schema": SCHEMA,
        "created_utc": started.isoformat(timespec="seconds"),
        "mode": profile.name,
        "device_label": label,
        "passed": not failed,
        "failed_steps": failed,
        "total_s": round(total, 1),
        "budget_s": profile.budget_s,
        "profile": asdict(profile),
        "repo": str(repo_path),
        "python": py,
        "install": read_install_log(out),
        "machine": machine,
        "steps": results,
    }
    json_path = out / f"gpu-check-{label}.json"
    with atomic_open(json_path) as fh:
        fh.write(json.dumps(result, indent=2, default=json_default) + "\n")
    with atomic_open(json_path.with_suffix(".md")) as fh:
        fh.write(to_markdown(result))
    result["files"] = [str(json_path), str(json_path.with_suffix(".md"))]
    return result


def _not_run(name: str, why: str) -> dict[str, Any]:
    return {"step": name, "status": "skip", "summary": why, "checks": [], "seconds": 0.0}


def _env_has_cuda(env_result: dict[str, Any]) -> bool:
    return any(c["name"] == "cuda device" and c["status"] == "pass" for c in env_result.get("checks", []))


def _light_machine() -> dict[str, Any]:
    from lib_deepfake.bench.machine import cpu_model, usable_cores  # standard library only at import time

    return {"cpu": cpu_model(), "cpu_cores": usable_cores(), "gpu": None}
