"""Scan progress for lib-infer: files done out of the total (once discovery has ended), videos/s, ETA and counts by
status; one line rewritten in place on a terminal, plain periodic lines otherwise (CI, logs), nothing with --quiet.

The library reports each finished file through a callback; only this CLI-side object draws.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ScanProgress:
    """Args:
    stream: where to draw (stderr).
    tty: rewrite one line (True) or print a line every ``interval_s`` (False); default: ``stream.isatty()``.
    quiet: draw nothing (the summary is printed by the caller).
    interval_s: seconds between plain lines (a terminal line is redrawn at most every 0.2 s).
    clock: seconds, monotonic (tests pass a fake).
    """

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None, quiet: bool = False,
                 interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet = quiet
        self.interval_s = 0.2 if self.tty else interval_s
        self.clock = clock
        self.total: int | None = None
        self.done = 0
        self.counts: dict[str, int] = {}
        self.extra: dict[str, int] = {}
        self._start = clock()
        self._last = float("-inf")
        self._width = 0

    def set_total(self, total: int) -> None:
        """Discovery has ended: ``total`` files in this run (resumed files excluded)."""
        self.total = total
        self._draw(force=True)

    def update(self, row: dict[str, Any], done: int | None = None, total: int | None = None) -> None:
        """One finished file (the library's ``on_outcome(row, done, total)`` callback shape)."""
        self.done = self.done + 1 if done is None else done
        if total is not None:
            self.total = total
        status = str(row.get("status") or "?")
        self.counts[status] = self.counts.get(status, 0) + 1
        for key in ("duplicate_of", "cached"):
            if row.get(key):
                self.extra[key] = self.extra.get(key, 0) + 1
        self._draw()

    def rate(self) -> float | None:
        elapsed = self.clock() - self._start
        return self.done / elapsed if self.done and elapsed > 0 else None

    def line(self) -> str:
        rate = self.rate()
        if self.total is None:
            where = f"{self.done}/? (discovering)"
            eta = None
        else:
            pct = 100.0 * self.done / self.total if self.total else 100.0
            where = f"{self.done}/{self.total} {pct:5.1f}%"
            eta = (self.total - self.done) / rate if rate else None
        counts = " ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        extra = " ".join(f"{'duplicates' if k == 'duplicate_of' else k} {v}" for k, v in sorted(self.extra.items()))
        parts = [where, f"{rate:.2f} videos/s" if rate else "-- videos/s", f"ETA {format_eta(eta)}"]
        if counts:
            parts.append(counts)
        if extra:
            parts.append(extra)
        return " | ".join(parts)

    def _draw(self, force: bool = False) -> None:
        if self.quiet:
            return
        now = self.clock()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        text = self.line()
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(f"progress: {text}\n")
        self.stream.flush()

    def close(self) -> None:
        """The last state, and a newline after a terminal line."""
        if self.quiet:
            return
        self._draw(force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


__all__ = ["ScanProgress", "format_eta"]
