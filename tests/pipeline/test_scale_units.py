"""Pieces of large scans, without a scan: content identity (duplicates), the content-addressed result cache and the
progress display. CPU only; no markers."""

from __future__ import annotations

import io
import json
import os

import pytest

from lib_deepfake.cli.scan_progress import ScanProgress, format_eta
from lib_deepfake.pipeline.content_id import BLOCK_BYTES, DuplicateIndex, full_digest, quick_fingerprint
from lib_deepfake.pipeline.result_cache import ResultCache, cache_key


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_copies_are_found_and_confirmed_by_full_hash(tmp_path):
    data = os.urandom(BLOCK_BYTES * 12 + 17)
    a = _write(tmp_path / "a.mp4", data)
    b = _write(tmp_path / "b.mp4", data)
    c = _write(tmp_path / "c.mp4", data[:-1] + bytes([data[-1] ^ 1]))  # differs in a sampled block (the end)
    idx = DuplicateIndex()
    assert idx.original_of(a) is None
    assert idx.original_of(b) == str(a)
    assert idx.original_of(c) is None
    assert idx.confirmed == 1


def test_equal_fingerprints_with_different_content_are_not_merged(tmp_path):
    base = bytearray(os.urandom(BLOCK_BYTES * 20))
    a = _write(tmp_path / "a.mp4", bytes(base))
    # change a byte between the sampled blocks: same fingerprint, different content
    base[BLOCK_BYTES * 2 + 5] ^= 0xFF
    b = _write(tmp_path / "b.mp4", bytes(base))
    assert quick_fingerprint(a) == quick_fingerprint(b)
    assert full_digest(a) != full_digest(b)
    idx = DuplicateIndex()
    assert idx.original_of(a) is None
    assert idx.original_of(b) is None
    assert idx.collisions == 1


def test_small_and_unreadable_files(tmp_path):
    a = _write(tmp_path / "a.mp4", b"x" * 10)
    b = _write(tmp_path / "b.mp4", b"x" * 10)
    idx = DuplicateIndex()
    assert idx.original_of(a) is None and idx.original_of(b) == str(a)
    assert idx.original_of(tmp_path / "missing.mp4") is None


def test_cache_round_trip_rekeys_and_skips_errors(tmp_path):
    cache = ResultCache(tmp_path / "cache")
    key = cache_key("c" * 64, "model-hash", "settings")
    assert cache_key("c" * 64, "other-model", "settings") != key
    row = {"path": "/old/a.mp4", "name": "a.mp4", "status": "ok", "score": 0.9, "verdict": "fake"}
    cache.put(key, row, [{"path": "/old/a.mp4", "frame": 1}], {"path": "/old/a.mp4", "thumbs": []})
    got = cache.get(key, "/new/b.mp4")
    assert got["row"]["path"] == "/new/b.mp4" and got["row"]["name"] == "b.mp4" and got["row"]["cached"] is True
    assert got["row"]["score"] == 0.9 and got["faces"][0]["path"] == "/new/b.mp4"
    assert got["report"]["path"] == "/new/b.mp4"
    err_key = cache_key("d" * 64, "model-hash", "settings")
    cache.put(err_key, {"path": "/x.mp4", "status": "error"})
    assert cache.get(err_key, "/x.mp4") is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_damaged_cache_entry_is_a_miss(tmp_path):
    cache = ResultCache(tmp_path)
    key = cache_key("e" * 64, "m", "s")
    f = tmp_path / key[:2] / f"{key}.json"
    f.parent.mkdir(parents=True)
    f.write_text('{"format": 1, "row": ')
    assert cache.get(key, "/a.mp4") is None
    f.write_text(json.dumps({"format": 99, "row": {}}))
    assert cache.get(key, "/a.mp4") is None


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


@pytest.mark.parametrize("tty", [True, False])
def test_progress_lines(tty):
    out, clock = io.StringIO(), _Clock()
    p = ScanProgress(out, tty=tty, interval_s=10, clock=clock)
    clock.t = 1.0
    p.update({"status": "ok"})
    assert "1/? (discovering)" in out.getvalue()
    p.set_total(10)
    for i in range(4):
        clock.t = 2.0 + i * 20
        p.update({"status": "error" if i == 0 else "ok", "duplicate_of": "/a" if i == 1 else None})
    p.close()
    last = out.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert "5/10" in last and "50.0%" in last
    assert "ok 4" in last and "error 1" in last and "duplicates 1" in last
    # 5 files in 62 s -> 0.08 videos/s, 5 left -> ETA ~62 s
    assert "ETA 01:02" in last
    if not tty:
        assert all(line.startswith("progress: ") for line in out.getvalue().splitlines())


def test_progress_quiet_and_eta_format():
    out = io.StringIO()
    p = ScanProgress(out, tty=True, quiet=True)
    p.update({"status": "ok"})
    p.close()
    assert out.getvalue() == ""
    assert format_eta(3725) == "1:02:05" and format_eta(None) == "--:--" and format_eta(59.6) == "01:00"
