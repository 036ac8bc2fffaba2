"""The benchmark protocol (lib_deepfake.bench.protocol): the quiet-machine gate with a monkeypatched load average
and clock (waits, then refuses; --allow-noisy measures and marks), the load record, and the pure ratio statistics.
CPU only, no markers; nothing sleeps for real."""

from __future__ import annotations

import pytest

from lib_deepfake.bench import protocol
from lib_deepfake.bench.protocol import (
    BenchProtocol,
    NoisyMachineError,
    current_protocol,
    format_ratio,
    interleaved,
    mark,
    markdown_line,
    noisy_tag,
    ratio_stats,
    spread,
    use_protocol,
)
from lib_deepfake.errors import LibDeepfakeError


class FakeMachine:
    """A load average that follows a script, a clock that only moves when the protocol sleeps."""

    def __init__(self, loads: list[float], cores: int = 2) -> None:
        self.loads = list(loads)
        self.now = 0.0
        self.sleeps: list[float] = []
        self.cores = cores
        self.readings = 0

    def load(self) -> float:
        self.readings += 1
        return self.loads.pop(0) if len(self.loads) > 1 else self.loads[0]

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def machine(monkeypatch):
    def install(loads: list[float], cores: int = 2) -> FakeMachine:
        fake = FakeMachine(loads, cores)
        monkeypatch.setattr(protocol, "load_1min", fake.load)
        monkeypatch.setattr(protocol, "usable_cores", lambda: fake.cores)
        monkeypatch.setattr(protocol, "_sleep", fake.sleep)
        monkeypatch.setattr(protocol, "_clock", lambda: fake.now)
        return fake

    return install


def test_busy_machine_waits_then_refuses(machine):
    fake = machine([1.8])  # 2 cores: quiet below 1.0
    said: list[str] = []
    with pytest.raises(NoisyMachineError) as err:
        BenchProtocol(allow_noisy=False, quiet_wait_s=120, poll_s=5).start(say=said.append)
    message = str(err.value)
    assert isinstance(err.value, LibDeepfakeError) and "\n" not in message
    assert "1.80 > 1 (half of 2 usable cores)" in message and "waiting 120 s" in message and "--allow-noisy" in message
    assert sum(fake.sleeps) == pytest.approx(120) and max(fake.sleeps) <= 5  # bounded, polling
    assert said and "waiting for quiet" in said[0]


def test_waits_until_quiet_then_measures(machine):
    fake = machine([3.0, 2.0, 1.2, 0.6])
    run = BenchProtocol(allow_noisy=False, quiet_wait_s=120, poll_s=5).start()
    assert not run.noisy and run.load_before == 0.6 and run.waited_s == pytest.approx(15)
    assert fake.sleeps == [5, 5, 5]


def test_quiet_machine_does_not_wait(machine):
    fake = machine([0.4])
    run = BenchProtocol(allow_noisy=False, quiet_wait_s=120).start()
    assert not run.noisy and fake.sleeps == [] and run.waited_s == 0


def test_allow_noisy_measures_and_marks(machine):
    fake = machine([2.5, 2.5, 2.5, 1.9])
    run = BenchProtocol(allow_noisy=True, quiet_wait_s=10, poll_s=5).start()
    assert run.noisy and sum(fake.sleeps) == pytest.approx(10)  # still waited (bounded) before going on
    record = run.finish()
    assert record["noisy"] is True and record["load_1min_before"] == 2.5 and record["load_1min_after"] == 1.9
    assert record["usable_cores"] == 2 and record["quiet_load_limit"] == 1.0 and record["allow_noisy"] is True
    result = mark({"rows": []}, record)
    assert result["noisy"] is True and result["protocol"] is record
    assert markdown_line(record).startswith("**NOISY RESULT**") and noisy_tag(record) == " (noisy)"


def test_limit_is_half_the_cores(machine):
    machine([3.9], cores=8)
    run = BenchProtocol(allow_noisy=False).start()  # 3.9 <= 4
    assert not run.noisy and run.load_limit == 4
    machine([4.1], cores=8)
    with pytest.raises(NoisyMachineError):
        BenchProtocol(allow_noisy=False).start()


def test_library_default_never_waits_or_refuses(machine):
    fake = machine([9.0])
    run = current_protocol().start()
    assert run.noisy and fake.sleeps == []
    quiet = markdown_line(run.finish() | {"noisy": False})
    assert "NOISY" not in quiet and "Load average (1 min) 9.0 before" in quiet


def test_use_protocol_sets_the_current_one():
    strict = BenchProtocol(allow_noisy=False, quiet_wait_s=30)
    assert current_protocol() == BenchProtocol()
    with use_protocol(strict):
        assert current_protocol() is strict
    assert current_protocol() == BenchProtocol()


def test_bad_protocol_settings():
    with pytest.raises(ValueError):
        BenchProtocol(quiet_wait_s=-1)


def test_ratio_stats_per_round():
    stats = ratio_stats([2.0, 3.3, 2.4], [1.0, 1.1, 1.2])
    assert stats == {"median": 2.0, "min": 2.0, "max": 3.0, "n": 3, "values": [2.0, 3.0, 2.0]}
    assert format_ratio(stats) == "2.00x (2.00-3.00, 3 rounds)"


def test_ratio_stats_skips_missing_rounds_and_even_median():
    stats = ratio_stats([1.0, None, 3.0, 5.0], [1.0, 1.0, 0.0, 1.0])
    assert stats["values"] == [1.0, 5.0] and stats["median"] == 3.0 and stats["n"] == 2
    empty = ratio_stats([None], [1.0])
    assert empty["median"] is None and format_ratio(empty) == "-"
    assert format_ratio(ratio_stats([2.0], [1.0])) == "2.00x (1 round)"
    with pytest.raises(ValueError, match="2 candidate rounds against 1"):
        ratio_stats([1.0, 2.0], [1.0])


def test_spread_and_interleaving():
    assert spread([]) == {"median": None, "min": None, "max": None, "n": 0, "values": []}
    assert spread([4.0, None, 1.0])["median"] == 2.5
    assert interleaved(["ours", "ref"], 0) == ["ours", "ref"] and interleaved(["ours", "ref"], 3) == ["ref", "ours"]
