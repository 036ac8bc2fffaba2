"""Frames from decode workers through shared memory: round trip, clean-up of crashed workers and of killed scans,
and the pipe fallback when there is no usable RAM filesystem."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys

import numpy as np
import pytest
from tests.helpers.media import make_clip

from lib_deepfake.pipeline import frame_transport as ft
from lib_deepfake.pipeline.decode import DecodeSettings, ProcessDecodePool, decode_for_scan

HOOK = "infer_fault_hooks:faulty_decode"


@pytest.fixture
def shm(tmp_path, monkeypatch):
    d = tmp_path / "shm"
    d.mkdir()
    monkeypatch.setenv(ft.ENV_DIR, str(d))
    return d


def _mapped(a: np.ndarray) -> bool:
    """Whether the array's memory is a file mapping (numpy keeps the mmap behind a memoryview as .obj)."""
    while isinstance(a, np.ndarray):
        a = a.base
    return isinstance(getattr(a, "obj", a), mmap.mmap)


def test_round_trip_unlinks_on_attach(shm):
    array, buf = ft.allocate_frames((3, 4, 5, 3))
    assert buf is not None and buf.path.parent == shm
    array[:] = np.arange(array.size, dtype=np.uint8).reshape(array.shape)
    expected = array.copy()
    name = buf.path.name
    buf.release()
    got = ft.attach_frames(name, (2, 4, 5, 3))  # fewer frames than allocated (some could not be decoded)
    assert list(shm.iterdir()) == [] and _mapped(got)
    np.testing.assert_array_equal(got, expected[:2])
    got[0, 0, 0, 0] = 7  # writable: the scanner owns the frames
    with pytest.raises(OSError, match="not a frame file"):
        ft.attach_frames("../etc/passwd", (1,))
    with pytest.raises(FileNotFoundError):
        ft.attach_frames(name, (1,))


def test_worker_and_orphan_clean_up(shm):
    keep, _ = ft.allocate_frames((1, 2, 2, 3))
    assert len(list(shm.iterdir())) == 1
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = shm / f"{ft.PREFIX}{int(dead.stdout)}-0{ft.SUFFIX}"
    orphan.write_bytes(b"x")
    (shm / "unrelated.txt").write_text("not ours")
    assert ft.sweep_orphans() == 1 and not orphan.exists()
    assert ft.remove_worker_files(os.getpid()) == 1
    assert sorted(p.name for p in shm.iterdir()) == ["unrelated.txt"]
    del keep


def test_without_a_usable_directory_frames_use_ordinary_memory(tmp_path, monkeypatch):
    monkeypatch.setenv(ft.ENV_DIR, str(tmp_path / "missing"))
    array, buf = ft.allocate_frames((1, 2, 2, 3))
    assert buf is None and array.shape == (1, 2, 2, 3) and not _mapped(array)
    assert not ft.shm_available(1)


def test_a_full_ram_disk_falls_back_to_ordinary_memory_and_leaves_no_file(shm, monkeypatch):
    import errno

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ft.os, "posix_fallocate", full)
    array, buf = ft.allocate_frames((2, 4, 4, 3))
    assert buf is None and array.shape == (2, 4, 4, 3) and not _mapped(array)
    assert list(shm.iterdir()) == []


def test_pool_delivers_identical_frames_via_shared_memory_and_cleans_up_after_a_crash(shm, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=12, size=(96, 64))
    crash = tmp_path / "CRASH.mp4"
    crash.write_bytes(clip.read_bytes())
    settings = DecodeSettings(plan="uniform:5", timeout_s=20.0, decode_fn=HOOK)
    with ProcessDecodePool(settings, workers=1) as pool:
        pool.wait_ready()
        results = {}
        for key in (str(clip), str(crash)):
            pool.submit(key)
        while pool.pending:
            for r in pool.poll(5.0):
                results[r.key] = r
    ok, crashed = results[str(clip)], results[str(crash)]
    assert ok.error is None and _mapped(ok.frames)
    np.testing.assert_array_equal(ok.frames, decode_for_scan(str(clip), settings)["frames"])
    assert crashed.error_kind == "DecoderCrashError"
    assert list(shm.iterdir()) == []  # the crashed worker's buffer was removed, the delivered one unlinked
