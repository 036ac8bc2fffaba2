"""Verdicts of the GPU check: one ``check`` per thing proved (pass, fail or skip), a step's status from its checks,
and the one-line form of an exception that a step records instead of raising."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: what a step can end as; the parent adds ``error`` (no result) and ``timeout`` (killed at its limit)
STATUSES = ("pass", "fail", "skip", "error", "timeout")


def check(name: str, status: str, detail: str = "", **data: Any) -> dict[str, Any]:
    """One verdict inside a step: ``status`` is pass, fail or skip; ``detail`` one line; extra numbers in ``data``."""
    if status not in ("pass", "fail", "skip"):
        raise ValueError(f"bad check status {status!r}")
    out: dict[str, Any] = {"name": name, "status": status, "detail": " ".join(str(detail).split())}
    if data:
        out["data"] = data
    return out


def step_status(checks: list[dict[str, Any]]) -> str:
    """fail if any check failed, pass if any passed, else skip (nothing could run here)."""
    statuses = {c["status"] for c in checks}
    if "fail" in statuses:
        return "fail"
    return "pass" if "pass" in statuses else "skip"


def describe_error(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 300 characters of message (for a check's detail or a summary)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def guarded_check(name: str, fn: Callable[[], tuple[str, str]]) -> dict[str, Any]:
    """``check(name, *fn())``, with an exception turned into a failed check (the step goes on)."""
    try:
        status, detail = fn()
    except Exception as exc:  # noqa: BLE001 - recorded as the check's failure
        status, detail = "fail", describe_error(exc)
    return check(name, status, detail)


def guarded_probe(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn()``, or ``{"ok": False, "reason": ...}`` when it raises: a probe reports, it never stops the check."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the reason is the result
        return {"ok": False, "reason": describe_error(exc)}
