"""Decode functions that misbehave on purpose, run inside lib-infer's decode worker processes (spawned children
import this module by name, so it must stay importable from tests/pipeline on sys.path).

A file whose name contains ``HANG`` sleeps past any deadline, ``CRASH`` kills its worker with SIGSEGV, anything
else decodes normally.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from lib_deepfake.pipeline.decode import DecodeSettings, decode_for_scan


def faulty_decode(path: str, settings: DecodeSettings) -> dict[str, Any]:
    name = os.path.basename(path)
    if "HANG" in name:
        time.sleep(600)
    if "CRASH" in name:
        os.kill(os.getpid(), signal.SIGSEGV)
    return decode_for_scan(path, settings)
