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


# -- the session with copies, the cache and streamed discovery -------------------------------------------------------


def _session_outcome(path: str, score: float):
    from lib_deepfake.pipeline.outcomes import VideoOutcome, video_row

    return VideoOutcome(video_row(path, threshold=0.5, score=score, frames_sampled=2), [],
                        {"path": path, "thumbs": [], "timeline": []})  # fmt: skip


@pytest.fixture
def collection(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    same = os.urandom(4096)
    (folder / "a.mp4").write_bytes(same)
    (folder / "b.mp4").write_bytes(same)  # a copy of a
    (folder / "c.mp4").write_bytes(os.urandom(4096))
    return folder


def _rows(out):
    return {r["name"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_copies_are_scanned_once_and_take_the_first_ones_row(tmp_path, collection):
    from lib_deepfake.pipeline.config import ScanConfig
    from lib_deepfake.pipeline.session import ScanSession

    config = ScanConfig(tmp_path / "m.onnx")
    seen = []
    with ScanSession(config, [collection], tmp_path / "out", on_outcome=lambda r, d, t: seen.append((r["name"], t))
                     ) as s:  # fmt: skip
        s.start({})
        todo = list(s.todo())
        assert [os.path.basename(k) for k in todo] == ["a.mp4", "c.mp4"]
        for key, score in zip(todo, (0.9, 0.2)):
            s.append(_session_outcome(key, score))
    rows = _rows(tmp_path / "out")
    assert rows["b.mp4"]["duplicate_of"] == str(collection / "a.mp4")
    assert rows["b.mp4"]["score"] == rows["a.mp4"]["score"] == 0.9 and rows["b.mp4"]["verdict"] == "fake"
    assert rows["b.mp4"]["seconds"] == 0.0 and rows["a.mp4"].get("duplicate_of") is None
    assert s.result["copies"] == 1 and s.result["files"] == 3
    assert seen == [("a.mp4", 3), ("b.mp4", 3), ("c.mp4", 3)]  # all rows counted; total known after discovery
    csv_header = (tmp_path / "out" / "results.csv").read_text().splitlines()[0]
    assert csv_header.endswith("duplicate_of,cached")

    # resume with a new copy of a: the original's row is read back from disk, nothing is scanned
    (collection / "d.mp4").write_bytes((collection / "a.mp4").read_bytes())
    with ScanSession(config, [collection], tmp_path / "out", resume=True) as again:
        again.start({})
        assert list(again.todo()) == []
    assert _rows(tmp_path / "out")["d.mp4"]["duplicate_of"] == str(collection / "a.mp4")
    assert again.result["files"] == 4 and again.result["copies"] == 2


def test_copies_of_an_unfinished_original_wait_for_resume(tmp_path, collection):
    from lib_deepfake.pipeline.config import ScanConfig
    from lib_deepfake.pipeline.session import ScanSession

    config = ScanConfig(tmp_path / "m.onnx", report=False)
    with ScanSession(config, [collection], tmp_path / "out") as s:
        s.start({})
        list(s.todo())
        s.finish(complete=False)  # the driver stopped before a.mp4 was scanned
    assert "b.mp4" not in _rows(tmp_path / "out")
    with ScanSession(config, [collection], tmp_path / "out", resume=True) as s2:
        s2.start({})
        todo = [os.path.basename(k) for k in s2.todo()]
        assert todo == ["a.mp4", "c.mp4"]
        s2.append(_session_outcome(str(collection / "a.mp4"), 0.7))
        s2.append(_session_outcome(str(collection / "c.mp4"), 0.1))
    assert _rows(tmp_path / "out")["b.mp4"]["score"] == 0.7


def test_a_complete_scan_gives_orphan_copies_an_error_row(tmp_path, collection):
    from lib_deepfake.pipeline.config import ScanConfig
    from lib_deepfake.pipeline.session import ScanSession

    with ScanSession(ScanConfig(tmp_path / "m.onnx", report=False), [collection], tmp_path / "out") as s:
        s.start({})
        list(s.todo())
        s.append(_session_outcome(str(collection / "c.mp4"), 0.1))  # a driver that lost a.mp4 without a row
    rows = _rows(tmp_path / "out")
    assert rows["b.mp4"]["status"] == "error" and rows["b.mp4"]["error_kind"] == "OriginalNotScanned"


def test_the_cache_serves_a_later_scan_of_the_same_content(tmp_path, collection):
    from lib_deepfake.pipeline.config import ScanConfig
    from lib_deepfake.pipeline.session import ScanSession

    model = tmp_path / "m.onnx"
    model.write_bytes(b"model bytes")
    config = ScanConfig(model, report=False)
    cache = tmp_path / "cache"
    with ScanSession(config, [collection], tmp_path / "out1", cache=cache) as s:
        s.start({})
        for key in s.todo():
            s.append(_session_outcome(key, 0.8 if key.endswith("a.mp4") else 0.3))
    assert s.result["cache"]["hits"] == 0
    later = tmp_path / "later"
    later.mkdir()
    (later / "renamed.mp4").write_bytes((collection / "c.mp4").read_bytes())
    (later / "new.mp4").write_bytes(os.urandom(100))
    with ScanSession(config, [later], tmp_path / "out2", cache=cache) as s2:
        s2.start({})
        assert [os.path.basename(k) for k in s2.todo()] == ["new.mp4"]
    row = _rows(tmp_path / "out2")["renamed.mp4"]
    assert row["cached"] is True and row["score"] == 0.3 and row["path"] == str(later / "renamed.mp4")
    assert s2.result["cache"]["hits"] == 1 and s2.result["cached"] == 1
    # another model is another key: nothing is reused
    other = tmp_path / "other.onnx"
    other.write_bytes(b"other model")
    with ScanSession(ScanConfig(other, report=False), [later], tmp_path / "out3", cache=cache) as s3:
        s3.start({})
        assert len(list(s3.todo())) == 2


def test_discovery_streams(tmp_path):
    from lib_deepfake.pipeline.config import ScanConfig
    from lib_deepfake.pipeline.session import ScanSession

    folder = tmp_path / "tree"
    for i in range(30):
        sub = folder / f"d{i:02d}"
        sub.mkdir(parents=True)
        (sub / "v.mp4").write_bytes(os.urandom(64))
    with ScanSession(ScanConfig(tmp_path / "m.onnx", report=False), [folder], tmp_path / "out") as s:
        s.start({})
        it = s.todo()
        first = next(it)
        assert first.endswith("d00/v.mp4") and not s.discovery.complete and s.total is None
        assert s.discovery.count < 30  # the walk has not gone through the tree
        rest = list(it)
        assert len(rest) == 29 and s.discovery.complete and s.total == 30


@pytest.mark.parametrize(("device", "decoder", "expected"),
                         [("cuda:1", "dali", "cuda:1"), ("cuda", "dali", "cuda:0"), ("cpu", "dali", "cpu"),
                          ("cuda:1", "pyav", None)])  # fmt: skip
def test_dali_decodes_on_the_scans_gpu(tmp_path, device, decoder, expected):
    from types import SimpleNamespace

    from lib_deepfake.pipeline.config import ScanConfig
    from lib_deepfake.pipeline.scanner import Scanner

    fake = SimpleNamespace(resolved={"decoder": decoder}, config=ScanConfig(tmp_path / "m.onnx", device=device),
                           decode_fn=None)  # fmt: skip
    assert Scanner.decode_settings(fake).device == expected
