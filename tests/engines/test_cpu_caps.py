"""CPU flag parsing for the bf16/int8 decisions (fixed /proc/cpuinfo text, not the machine's)."""

from __future__ import annotations

from lib_deepfake.engines.cpu_caps import cpu_caps, parse_cpuinfo

SAPPHIRE = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx2 fma avx512f avx512bw avx512vl avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: ignored second core
flags\t\t: fpu
"""
ZEN3 = "model name : AMD EPYC 7B13\nflags : fpu avx2 fma\n"
ZEN4 = "model name : AMD EPYC 9B14\nflags : fpu avx2 fma avx512f avx512_bf16 avx512_vnni\n"


def test_parse_cpuinfo_reads_the_first_processor():
    caps = parse_cpuinfo(SAPPHIRE)
    assert caps.name == "Intel(R) Xeon(R) Platinum 8480+"
    assert caps.bf16 and caps.int8_dot
    assert caps.precision_flags("bf16") == ["avx512_bf16", "amx_bf16"]
    assert caps.precision_flags("int8") == ["avx512_vnni", "amx_int8"]
    assert caps.precision_flags("fp32") == []


def test_bf16_and_int8_need_their_instructions():
    zen3, zen4 = parse_cpuinfo(ZEN3), parse_cpuinfo(ZEN4)
    assert not zen3.bf16 and not zen3.int8_dot
    assert zen4.bf16 and zen4.int8_dot


def test_signature_changes_with_the_kernel_flags_only():
    a = parse_cpuinfo(ZEN4)
    b = parse_cpuinfo(ZEN4.replace("fpu", "fpu sse4_2"))  # a flag no kernel choice depends on
    c = parse_cpuinfo(ZEN4.replace(" avx512_bf16", ""))
    assert a.signature() == b.signature()
    assert a.signature() != c.signature() and len(a.signature()) == 16


def test_this_machine_is_readable():
    caps = cpu_caps()
    assert caps.name
    assert isinstance(caps.bf16, bool)
