"""Decoding for a scan: worker processes on the CPU path (crash and hang isolation), threads on the DALI path.

Modules:

- ``one_file`` - decode one file's sampled frames (PyAV inside a worker, DALI in process) into a
  :class:`DecodeResult`; every failure of a bad file becomes an error result.
- ``process_pool`` - :class:`ProcessDecodePool`: spawned worker processes, one file each at a time; a crash or a
  hang costs that file's row, never the scan; frames come back through shared memory.
- ``thread_pool`` - :class:`ThreadDecodePool`: the same interface on threads (DALI/NVDEC, frames stay on the GPU).

The settings every file is decoded with are :class:`~lib_deepfake.pipeline.config.DecodeSettings`.
"""

from __future__ import annotations

from lib_deepfake.pipeline.config import DecodeSettings
from lib_deepfake.pipeline.decode.one_file import (
    DecodeResult,
    FrameBudgetError,
    analysis_size,
    decode_dali,
    decode_for_scan,
    run_decode,
)
from lib_deepfake.pipeline.decode.process_pool import ProcessDecodePool, vm_hwm_kib
from lib_deepfake.pipeline.decode.thread_pool import ThreadDecodePool

__all__ = [
    "DecodeResult", "DecodeSettings", "FrameBudgetError", "ProcessDecodePool", "ThreadDecodePool", "analysis_size",
    "decode_dali", "decode_for_scan", "run_decode", "vm_hwm_kib",
]  # fmt: skip
