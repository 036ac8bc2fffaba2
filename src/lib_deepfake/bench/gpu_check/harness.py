"""The subprocess harness: every command and every step runs in a process group of its own with a deadline, so a
crash, a hang or a missing library is recorded and the run goes on.

Parent side: :func:`run_cmd` (any command) and :func:`run_step_process` (one step: ``python -m
lib_deepfake.bench.gpu_check.child``). Standard library only, so the parent can report a broken torch instead of
dying on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

#: the module a step's child process runs (``python -m CHILD_MODULE STEP CONTEXT_JSON``)
CHILD_MODULE = "lib_deepfake.bench.gpu_check.child"


def run_cmd(
    cmd: list[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group; returns (exit code or None on timeout, combined output).

    The whole group is killed at the deadline (cmake, pytest and lib-infer start children of their own).
    """
    start = time.perf_counter()
    with subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=max(timeout, 1.0))
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            code = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{out}\n[exit {code} after {time.perf_counter() - start:.1f} s]\n\n")
    return code, out or ""


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def tail(text: str, lines: int = 15) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.strip().splitlines()[-lines:])


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback for the step results: paths as text, arrays as lists, the rest as ``str``."""
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def run_step_process(py: str, name: str, ctx: dict[str, Any], limit: float, out: Path) -> dict[str, Any]:
    """Run step ``name`` in a child interpreter ``py`` with at most ``limit`` seconds; its result dict.

    The context goes to the child as a JSON file; the child writes ``out/steps/<name>.json``. A child killed at the
    limit is a ``timeout``, one that exits without a result an ``error``; both keep the end of its output.
    """
    ctx = {**ctx, "step_budget_s": limit}
    ctx_path = out / "steps" / f".{name}.context.json"
    ctx_path.write_text(json.dumps(ctx, indent=2, default=json_default), encoding="utf-8")
    step_json = out / "steps" / f"{name}.json"
    step_json.unlink(missing_ok=True)
    log = out / "logs" / f"{name}.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ)
    if ctx.get("native_lib"):
        env["LIB_DEEPFAKE_NATIVE_LIB"] = ctx["native_lib"]
    env.setdefault("PYTHONUNBUFFERED", "1")
    t0 = time.perf_counter()
    code, text = run_cmd([py, "-m", CHILD_MODULE, name, str(ctx_path)], timeout=limit, env=env, log=log)
    seconds = round(time.perf_counter() - t0, 1)
    ctx_path.unlink(missing_ok=True)
    res: dict[str, Any]
    if code is None:
        res = {
            "step": name,
            "status": "timeout",
            "summary": f"killed after {limit:.0f} s; last output: {tail(text, 1)[:200]}",
            "checks": [],
            "output_tail": tail(text, 30),
        }
    elif not step_json.is_file():
        res = {
            "step": name,
            "status": "error",
            "summary": f"step process exited {code} without a result: {tail(text, 1)[:200]}",
            "checks": [],
            "output_tail": tail(text, 30),
        }
    else:
        res = json.loads(step_json.read_text(encoding="utf-8"))
    res["seconds"] = seconds  # the parent's clock: includes the child's start-up
    return res
