"""A step's child process: ``python -m lib_deepfake.bench.gpu_check.child STEP CONTEXT_JSON``.

Started by :func:`lib_deepfake.bench.gpu_check.harness.run_step_process`, not by users (``lib-bench gpu-check`` is
the command). Reads the context, runs the step, writes ``steps/<step>.json``; an exception in the step is its
result (status ``error``), not a crash of the kit.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from pathlib import Path

from lib_deepfake.bench.gpu_check.checks import describe_error, step_status
from lib_deepfake.bench.gpu_check.harness import json_default
from lib_deepfake.bench.gpu_check.profiles import profile_from_dict
from lib_deepfake.bench.gpu_check.steps import STEP_TABLE


def run_step_in_process(name: str, ctx_path: Path) -> int:
    """Read the context, run step ``name``, write ``steps/<name>.json``; returns the exit status (0)."""
    ctx = json.loads(ctx_path.read_text(encoding="utf-8"))
    profile = profile_from_dict(ctx["profile"])
    out = Path(ctx["out"]) / "steps" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    try:
        res = STEP_TABLE[name].run(ctx, profile)
        res["status"] = res.get("status") or step_status(res.get("checks", []))
    except Exception as exc:  # noqa: BLE001 - the step's failure is a result, not a crash of the kit
        res = {"status": "error", "summary": describe_error(exc), "checks": [], "traceback": traceback.format_exc()}
    res["step"] = name
    res["seconds"] = round(time.perf_counter() - t0, 1)
    out.write_text(json.dumps(res, indent=2, default=json_default) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process by the harness
    if len(sys.argv) != 3 or sys.argv[1] not in STEP_TABLE:
        sys.exit(f"usage: python -m {__spec__.name if __spec__ else 'child'} STEP CONTEXT_JSON (internal)")
    sys.exit(run_step_in_process(sys.argv[1], Path(sys.argv[2])))
