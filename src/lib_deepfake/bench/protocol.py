"""The measuring protocol every ``lib-bench`` benchmark follows on a shared, possibly noisy machine.

1. **Quiet start.** Before timing, the 1-minute load average is compared with half the usable cores. Above it the
   benchmark waits (up to ``quiet_wait_s``, polling) for the machine to calm down; still above it, it refuses with
   a one-line :class:`NoisyMachineError`, unless ``allow_noisy``, in which case the result is marked
   ``"noisy": true``. A result measured at a load above the core count measures the other jobs, not the code.
2. **Load recorded.** The 1-minute load before and after is written into every result (``"protocol"``). The value
   after includes the benchmark's own threads, so it is reported, not judged.
3. **Interleaved rounds.** The compared sides take turns (:func:`interleaved`: the order is reversed every other
   round) so that a change in load falls on all of them alike, and each round gives one ratio.
4. **Ratios as distributions.** A ratio is reported as the median and the spread (min-max) over the rounds
   (:func:`ratio_stats`), never as one value.

The library functions default to ``BenchProtocol()`` (no wait, noisy results marked, never refused); the
``lib-bench`` commands use the options ``--allow-noisy`` and ``--quiet-wait-s`` (default 120 s, refusing) through
:func:`use_protocol`, which makes their protocol the one :func:`current_protocol` returns.
"""

from __future__ import annotations

import contextlib
import contextvars
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lib_deepfake.bench.machine import load_average, usable_cores
from lib_deepfake.errors import LibDeepfakeError

T = TypeVar("T")

#: The load average (1 min) above which a machine counts as busy, as a fraction of its usable cores.
QUIET_LOAD_FRACTION = 0.5
#: How long the ``lib-bench`` commands wait for quiet by default before refusing.
DEFAULT_QUIET_WAIT_S = 120.0


class NoisyMachineError(LibDeepfakeError):
    """The machine stayed busier than the protocol allows and ``--allow-noisy`` was not given."""


def load_1min() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    loads = load_average()
    return loads[0] if loads else None


# Seams for tests (monkeypatched): waiting must not really sleep there.
_sleep = time.sleep
_clock = time.monotonic


@dataclass(frozen=True)
class BenchProtocol:
    """How strict a benchmark is about a busy machine.

    Attributes:
        allow_noisy: run even when the load stays above the limit (the result is marked ``"noisy": true``).
        quiet_wait_s: how long to wait for the load to fall below the limit before judging (0: judge at once).
        poll_s: seconds between load readings while waiting.
        load_fraction: the limit as a fraction of the usable cores.
    """

    allow_noisy: bool = True
    quiet_wait_s: float = 0.0
    poll_s: float = 5.0
    load_fraction: float = QUIET_LOAD_FRACTION

    def __post_init__(self) -> None:
        if self.quiet_wait_s < 0 or self.poll_s <= 0 or self.load_fraction <= 0:
            raise ValueError("quiet_wait_s must be >= 0, poll_s and load_fraction > 0")

    def start(self, say: Callable[[str], None] | None = None) -> ProtocolRun:
        """Wait for a quiet machine (bounded), then refuse or go on; returns the run to :meth:`ProtocolRun.finish`.

        Raises:
            NoisyMachineError: still busy after ``quiet_wait_s`` and not ``allow_noisy``.
        """
        cores = usable_cores()
        limit = round(cores * self.load_fraction, 2)
        began = _clock()
        load = load_1min()
        while _is_busy(load, limit) and _clock() - began < self.quiet_wait_s:
            if say is not None:
                say(f"load average {load:.2f} > {limit:g} (half of {cores} usable cores): waiting for quiet")
            _sleep(max(0.0, min(self.poll_s, self.quiet_wait_s - (_clock() - began))))
            load = load_1min()
        waited = round(_clock() - began, 1)
        noisy = _is_busy(load, limit)
        if noisy and not self.allow_noisy:
            raise NoisyMachineError(
                f"machine busy: 1-min load average {load:.2f} > {limit:g} (half of {cores} usable cores) after "
                f"waiting {waited:g} s; run on a quiet machine, or pass --allow-noisy to measure anyway (the result "
                "is then marked noisy)"
            )
        return ProtocolRun(self, cores, limit, load, waited, noisy)


@dataclass
class ProtocolRun:
    """A started measurement: what the quiet check found. :meth:`finish` adds the load after."""

    protocol: BenchProtocol
    cores: int
    load_limit: float
    load_before: float | None
    waited_s: float
    noisy: bool

    def finish(self) -> dict[str, Any]:
        """The ``"protocol"`` record of a result (JSON-ready)."""
        return {
            "noisy": self.noisy,
            "load_1min_before": self.load_before,
            "load_1min_after": load_1min(),
            "usable_cores": self.cores,
            "quiet_load_limit": self.load_limit,
            "waited_s": self.waited_s,
            "quiet_wait_s": self.protocol.quiet_wait_s,
            "allow_noisy": self.protocol.allow_noisy,
        }


def _is_busy(load: float | None, limit: float) -> bool:
    return load is not None and load > limit


_ACTIVE: contextvars.ContextVar[BenchProtocol | None] = contextvars.ContextVar("bench_protocol", default=None)


def current_protocol() -> BenchProtocol:
    """The protocol set by the running ``lib-bench`` command (:func:`use_protocol`), else the library default."""
    return _ACTIVE.get() or BenchProtocol()


@contextlib.contextmanager
def use_protocol(protocol: BenchProtocol) -> Iterator[BenchProtocol]:
    """Make ``protocol`` the one benchmarks started inside the block follow."""
    token = _ACTIVE.set(protocol)
    try:
        yield protocol
    finally:
        _ACTIVE.reset(token)


def mark(result: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Put a :meth:`ProtocolRun.finish` record into ``result`` (``"protocol"``, and ``"noisy"`` at the top)."""
    result["noisy"] = bool(record["noisy"])
    result["protocol"] = record
    return result


def interleaved(items: Sequence[T], round_index: int) -> list[T]:
    """The order of the compared sides in round ``round_index`` (0-based): as given, reversed every other round.

    >>> interleaved(["a", "b", "c"], 0), interleaved(["a", "b", "c"], 1)
    (['a', 'b', 'c'], ['c', 'b', 'a'])
    """
    return list(items) if round_index % 2 == 0 else list(items)[::-1]


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Median, min and max of ``values`` (None entries skipped), with the values themselves.

    >>> spread([3.0, 1.0, 2.0])
    {'median': 2.0, 'min': 1.0, 'max': 3.0, 'n': 3, 'values': [3.0, 1.0, 2.0]}
    """
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(kept), "min": min(kept), "max": max(kept), "n": len(kept), "values": kept}


def ratio_stats(candidate: Sequence[float | None], reference: Sequence[float | None], digits: int = 3
                ) -> dict[str, Any]:  # fmt: skip
    """Per-round ratios ``candidate[i] / reference[i]`` (rates measured in the same round) and their
    :func:`spread`, rounded to ``digits``. Rounds where either side is missing or the reference is 0 are skipped.

    >>> ratio_stats([2.0, 3.0, 2.4], [1.0, 1.0, 1.2])["median"]
    2.0

    Raises:
        ValueError: the two sides have a different number of rounds.
    """
    if len(candidate) != len(reference):
        raise ValueError(f"{len(candidate)} candidate rounds against {len(reference)} reference rounds")
    ratios = [None if c is None or not r else c / r for c, r in zip(candidate, reference)]
    stats = spread(ratios)
    return {k: (round(v, digits) if isinstance(v, float) else [round(x, digits) for x in v] if k == "values" else v)
            for k, v in stats.items()}  # fmt: skip


def format_ratio(stats: dict[str, Any] | None, unit: str = "x") -> str:
    """``1.30x (1.25-1.38, 3 rounds)`` from :func:`ratio_stats`; ``-`` without a value.

    >>> format_ratio({"median": 1.3, "min": 1.25, "max": 1.38, "n": 3})
    '1.30x (1.25-1.38, 3 rounds)'
    """
    if not stats or stats.get("median") is None:
        return "-"
    if stats["n"] == 1:
        return f"{stats['median']:.2f}{unit} (1 round)"
    return f"{stats['median']:.2f}{unit} ({stats['min']:.2f}-{stats['max']:.2f}, {stats['n']} rounds)"


def markdown_line(record: dict[str, Any] | None) -> str:
    """One markdown line saying under which load a result was measured, and loudly when it is noisy."""
    if not record:
        return "Protocol: not recorded (a result from before the benchmark protocol)."
    text = (f"Load average (1 min) {record['load_1min_before']} before and {record['load_1min_after']} after, on "
            f"{record['usable_cores']} usable cores (quiet below {record['quiet_load_limit']:g}; the value after "
            "includes the benchmark's own threads).")  # fmt: skip
    if record["noisy"]:
        text = (f"**NOISY RESULT**: the machine was busy at the start (load {record['load_1min_before']} > "
                f"{record['quiet_load_limit']:g} after waiting {record['waited_s']:g} s, run with --allow-noisy); "
                f"these figures are not a speed result. {text}")  # fmt: skip
    return text


def noisy_tag(record: dict[str, Any] | None) -> str:
    """`` (noisy)`` for table cells of a noisy result, else empty."""
    return " (noisy)" if record and record.get("noisy") else ""


__all__ = [
    "DEFAULT_QUIET_WAIT_S", "QUIET_LOAD_FRACTION", "BenchProtocol", "NoisyMachineError", "ProtocolRun",
    "current_protocol", "format_ratio", "interleaved", "load_1min", "mark", "markdown_line", "noisy_tag",
    "ratio_stats", "spread", "use_protocol",
]  # fmt: skip
