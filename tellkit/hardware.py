"""What this machine computes with: the CPU, the features that decide its fp32/bf16 speed, and the GPU.

Why it is recorded: training speed differs several-fold between CPUs of one cloud (bf16 matmuls run ~5x
faster with AMX than with AVX-512-bf16, and AVX2-only CPUs train in fp32 at a quarter of the speed), so
every run.json, sweep report and benchmark table names the machine its numbers came from.
"""

from __future__ import annotations

import platform
from pathlib import Path

# the features that pick the kernels: AVX2 (fp32), AVX-512, native bf16 dot products, AMX tiles
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def _cpuinfo() -> dict[str, str]:
    """The first CPU's fields of /proc/cpuinfo ({} where there is none)."""
    info = Path("/proc/cpuinfo")
    text = info.read_text(errors="replace") if info.exists() else ""
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in text.splitlines()[:40] if ":" in line)}


def speed_flags(fields: dict[str, str] | None = None) -> str:
    """'avx2/avx512f/avx512_bf16': which of SPEED_FLAGS this CPU has."""
    have = set((_cpuinfo() if fields is None else fields).get("flags", "").split())
    if not have:
        return "flags unknown"
    return "/".join(f for f in SPEED_FLAGS if f in have) or "none of " + "/".join(SPEED_FLAGS)


def cpu() -> str:
    """'AMD EPYC 9R14 96-Core Processor (avx2/avx512f/avx512_bf16)': the model name and its speed flags."""
    fields = _cpuinfo()
    name = fields.get("model name") or platform.processor() or platform.machine()
    return f"{name} ({speed_flags(fields)})"


def gpu() -> str:
    """The first CUDA device's name, or 'no GPU'."""
    import torch  # lazily: `tellkit --help` stays fast

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
