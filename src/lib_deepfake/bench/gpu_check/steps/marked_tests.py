"""Step ``pytest``: the tests marked gpu, trt or dali (the conftest skips what is missing, with a reason)."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib_deepfake.bench.gpu_check.checks import check
from lib_deepfake.bench.gpu_check.harness import run_cmd, tail
from lib_deepfake.bench.gpu_check.probes import has

if TYPE_CHECKING:
    from lib_deepfake.bench.gpu_check.profiles import Profile


def parse_junit(path: Path) -> dict[str, Any]:
    """pytest's JUnit XML -> pass/fail/skip counts, the failures with their messages, skip reasons counted."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    passed: list[str] = []
    failed: list[dict[str, str]] = []
    skipped: dict[str, int] = {}
    for suite in suites:
        for case in suite.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            skip = case.find("skipped")
            if bad is not None:
                failed.append({"test": name, "message": " ".join((bad.get("message") or "").split())[:300]})
            elif skip is not None:
                reason = " ".join((skip.get("message") or "").split())[:200]
                skipped[reason] = skipped.get(reason, 0) + 1
            else:
                passed.append(name)
    return {
        "passed": len(passed),
        "failed": len(failed),
        "skipped": sum(skipped.values()),
        "failures": failed,
        "skip_reasons": skipped,
        "passed_tests": passed,
    }


def step_pytest(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    repo = Path(ctx["repo"])
    if not has("pytest"):
        return {
            "checks": [check("pytest", "skip", "pytest not installed (add pytest, pluggy, iniconfig to --wheels)")],
            "summary": "pytest missing",
        }
    if not (repo / "tests").is_dir():
        return {"checks": [check("pytest", "skip", f"no tests/ in {repo}")], "summary": "no tests"}
    junit = Path(ctx["out"]) / "logs" / "pytest-junit.xml"
    junit.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu or trt or dali",
        "-v",
        "-rs",
        "-p",
        "no:cacheprovider",
        # A module whose imports are missing on the GPU box (no PyAV, say) must not hide the GPU tests of the others.
        "--continue-on-collection-errors",
        f"--junitxml={junit}",
        "tests",
    ]
    budget = float(ctx.get("step_budget_s", 150)) - 5
    code, out = run_cmd(cmd, timeout=budget, cwd=repo, log=Path(ctx["out"]) / "logs" / "pytest.log")
    data: dict[str, Any] = {"command": " ".join(cmd[1:]), "exit_code": code}
    if code == 5:
        # pytest's "no tests collected": nothing carries the markers - not a failure of the GPU paths.
        return {
            "checks": [check("gpu/trt/dali tests", "skip", "no test carries the gpu, trt or dali marker")],
            "data": data,
            "summary": "no marked tests",
        }
    if code is None:
        done = [line for line in out.splitlines() if " PASSED" in line or " FAILED" in line or " SKIPPED" in line]
        data["completed_lines"] = done[-50:]
        return {
            "checks": [
                check(
                    "gpu/trt/dali tests",
                    "fail",
                    f"timed out after {budget:.0f} s; {len(done)} "
                    f"tests had finished; last: {done[-1] if done else '-'}",
                )
            ],
            "data": data,
            "summary": "timed out",
        }
    if not junit.is_file():
        return {
            "checks": [check("gpu/trt/dali tests", "fail", f"pytest exit {code}: {tail(out, 3)}")],
            "data": data,
            "summary": f"pytest exit {code}",
        }
    res = parse_junit(junit)
    data.update(res)
    checks = []
    detail = f"{res['passed']} passed, {res['failed']} failed, {res['skipped']} skipped"
    if code not in (0, 1):
        checks.append(check("gpu/trt/dali tests", "fail", f"pytest exit {code} ({detail}): {tail(out, 2)}"))
    elif res["failed"]:
        names = "; ".join(f["test"].split("::")[-1] for f in res["failures"][:5])
        checks.append(check("gpu/trt/dali tests", "fail", f"{detail}: {names}"))
    elif res["passed"]:
        checks.append(check("gpu/trt/dali tests", "pass", detail))
    else:
        checks.append(check("gpu/trt/dali tests", "skip", detail))
    for reason, count in sorted(res["skip_reasons"].items(), key=lambda kv: -kv[1]):
        checks.append(check(f"skipped x{count}", "skip", reason))
    return {"checks": checks, "data": data, "summary": detail}
