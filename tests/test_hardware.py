"""run.json names the CPU with the features that decide its speed, read from /proc/cpuinfo."""
from pathlib import Path

from tellkit import hardware

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""


def test_cpu_names_the_model_and_only_the_speed_flags(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    real = Path

    def fake(p="", *rest):
        return info if p == "/proc/cpuinfo" else real(p, *rest)

    monkeypatch.setattr(hardware, "Path", fake)
    assert hardware.cpu() == "Intel(R) Xeon(R) Platinum 8488C (avx2/avx512f/avx512_bf16/amx_bf16)"
    info.write_text(CPUINFO.replace("avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "sse4_2"))
    assert hardware.cpu().endswith("(none of avx2/avx512f/avx512_bf16/amx_bf16)")

