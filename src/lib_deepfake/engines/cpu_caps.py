"""What this CPU's instruction set offers for low-precision inference, read from ``/proc/cpuinfo``.

bf16 and int8 rows (OpenVINO, the peak GEMMs of ``lib-bench engines``, ``--engine auto``) are only run where the
hardware has the instructions: without them a runtime either refuses or emulates the precision slowly, and an
emulated row is no measurement of the hardware. The parsing is pure (:func:`parse_cpuinfo`) so it is tested on
fixed text; :func:`cpu_caps` reads the running machine once.
"""

from __future__ import annotations

import functools
import hashlib
import platform
from dataclasses import dataclass

#: flags that give bf16 dot products (AVX512_BF16: Cooper Lake, Zen 4+; AMX-BF16: Sapphire Rapids+)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: flags that give int8 dot products (VNNI in AVX-512 or AVX, or AMX-INT8)
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: flags that decide which kernels a runtime compiles for; a compiled-model cache is keyed on them
_KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_fp16", "amx_tile", *BF16_FLAGS,
                 *INT8_FLAGS)  # fmt: skip


@dataclass(frozen=True)
class CpuCaps:
    """The CPU's name and flags, and what they mean for inference precisions."""

    name: str
    flags: frozenset[str]

    @property
    def bf16(self) -> bool:
        return any(f in self.flags for f in BF16_FLAGS)

    @property
    def int8_dot(self) -> bool:
        return any(f in self.flags for f in INT8_FLAGS)

    def precision_flags(self, precision: str) -> list[str]:
        """The flags present that serve ``precision`` (for messages and results)."""
        wanted = {"bf16": BF16_FLAGS, "int8": INT8_FLAGS}.get(precision, ())
        return [f for f in wanted if f in self.flags]

    def signature(self) -> str:
        """A short stable id of the CPU for cache keys: its name and the kernel-relevant flags."""
        text = self.name + "|" + ",".join(sorted(f for f in _KERNEL_FLAGS if f in self.flags))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_cpuinfo(text: str) -> CpuCaps:
    """``/proc/cpuinfo`` text -> :class:`CpuCaps` (the first processor's model name and flags)."""
    name, flags = "", ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "features") and not flags:  # "Features" on aarch64
            flags = value
        if name and flags:
            break
    return CpuCaps(name or platform.processor() or platform.machine(), frozenset(flags.split()))


@functools.lru_cache(maxsize=1)
def cpu_caps() -> CpuCaps:
    """This machine's CPU (empty flags where ``/proc/cpuinfo`` cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return parse_cpuinfo(fh.read())
    except OSError:
        return CpuCaps(platform.processor() or platform.machine(), frozenset())
