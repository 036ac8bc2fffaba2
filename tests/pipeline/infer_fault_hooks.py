"""Decode functions that misbehave on purpose, run inside lib-infer's decode worker processes (spawned children
import this module by name, so it must stay importable from tests/pipeline on sys.path).

A file whose name contains ``HANG`` sleeps past any deadline, ``CRASH`` kills its worker with SIGSEGV (after
allocating its shared frame buffer, which the parent must then remove), anything else decodes normally (into the
shared frame buffer, as the real worker function does).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

from lib_deepfake.pipeline.decode import DecodeSettings, decode_for_scan


def faulty_decode(path: str, settings: DecodeSettings, allocate: Callable | None = None) -> dict[str, Any]:
    name = os.path.basename(path)
    if "HANG" in name:
        time.sleep(600)
    if "CRASH" in name:
        if allocate is not None:
            allocate((2, 16, 16, 3))
        os.kill(os.getpid(), signal.SIGSEGV)
    return decode_for_scan(path, settings, allocate=allocate)
