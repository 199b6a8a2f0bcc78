"""The machine a benchmark ran on, and its theoretical peak FLOP/s.

Peak = cores x clock x FLOPs per cycle per core, with the clock read from /proc/cpuinfo
("cpu MHz"; under KVM that is the nominal/TSC clock, boost is not visible) and FLOPs/cycle from
the vector units:

- fp32, AVX-512: 2 FMA pipes x 16 fp32 lanes x 2 FLOPs (multiply + add) = 64 FLOPs/cycle. AMD
  Zen 5 (CPU family 26) and Intel server cores since Skylake-SP have two 512-bit FMA pipes.
- bf16 with AMX (flag `amx_bf16`, Intel Xeon since Sapphire Rapids): one `tdpbf16ps` multiplies a
  16x32 bf16 tile by a 32x16 one into 16x16 fp32 = 8,192 multiply-adds = 16,384 FLOPs, and the
  tile unit retires one every 16 cycles: 1,024 FLOPs/cycle per core, Intel's own figure for AMX
  BF16 (16x AVX-512 fp32).
- bf16 without AMX, AVX512-BF16 `vdpbf16ps`: one instruction multiplies 32 bf16 pairs and adds
  them into 16 fp32 lanes = 64 FLOPs; assuming it issues on both FMA pipes like an FMA, 128
  FLOPs/cycle (2x fp32).

A measured ceiling is given beside it: the best of a few large torch matrix multiplications in
fp32 and bf16 on the same threads, which is what the convolution kernels can hope for on this
machine at that moment (other jobs share the cores).

    python -m bench.machine
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time


FP32_FLOPS_PER_CYCLE_AVX512 = 64
FP32_FLOPS_PER_CYCLE_AVX2 = 32
BF16_DOT_FACTOR = 2  # vdpbf16ps: 2x the fp32 FMA FLOPs per instruction
BF16_FLOPS_PER_CYCLE_AMX = 1024  # tdpbf16ps: 16x16x32 multiply-adds (16,384 FLOPs) per 16 cycles


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if ":" in line:
                key, value = (part.strip() for part in line.split(":", 1))
                info.setdefault(key, value)
            elif not line.strip() and info:
                break
    return info


def describe() -> dict:
    """CPU model, cores, clock, relevant flags, software versions, load average."""
    import torch

    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    cores = len(os.sched_getaffinity(0))
    lscpu = {}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            if ":" in line:
                key, value = (part.strip() for part in line.split(":", 1))
                lscpu[key] = value
    except (OSError, subprocess.SubprocessError):
        pass
    mhz = float(info.get("cpu MHz") or 0.0)
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("bentoml", "mlflow", "faiss", "numpy"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001
            pass
    return {
        "cpu_model": info.get("model name", platform.processor()),
        "cpu_family": info.get("cpu family"), "cpu_model_number": info.get("model"),
        "hypervisor": lscpu.get("Hypervisor vendor"),
        "cores": cores, "threads_per_core": lscpu.get("Thread(s) per core"),
        "clock_mhz": mhz, "clock_source": "/proc/cpuinfo 'cpu MHz' (nominal under KVM; boost not visible)",
        "flags": sorted(f for f in flags if re.match(r"avx512_bf16|avx512f$|amx|avx2$|fma$|avx_vnni|avx512_vnni", f)),
        "gpu": "none (no CUDA device in this session; CI never has one)",
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(), "versions": versions,
        "torch_threads": torch.get_num_threads(),
        "loadavg": os.getloadavg(),
    }


def peak(machine: dict) -> dict:
    """Theoretical peak GFLOP/s for fp32 and bf16 (see the module docstring), with the derivation."""
    fp32_per_cycle = fp32_flops_per_cycle(machine)
    bf16_per_cycle, bf16_unit, bf16_how = bf16_flops_per_cycle(machine)
    ghz = machine["clock_mhz"] / 1000.0
    cores = machine["cores"]
    return {
        "fp32_gflops": round(cores * ghz * fp32_per_cycle, 1),
        "bf16_gflops": round(cores * ghz * bf16_per_cycle, 1),
        "bf16_unit": bf16_unit,
        "derivation": (f"{cores} cores x {ghz:.3f} GHz x {fp32_per_cycle} FLOP/cycle fp32 "
                       f"(2 x 512-bit FMA pipes x 16 lanes x 2) = {cores * ghz * fp32_per_cycle:.0f} GFLOP/s; "
                       f"bf16 {bf16_how}: {bf16_per_cycle} FLOP/cycle = {cores * ghz * bf16_per_cycle:.0f} GFLOP/s"),
    }


def fp32_flops_per_cycle(machine: dict) -> int:
    return FP32_FLOPS_PER_CYCLE_AVX512 if "avx512f" in machine["flags"] else FP32_FLOPS_PER_CYCLE_AVX2


def bf16_flops_per_cycle(machine: dict) -> tuple[int, str, str]:
    """bf16 FLOPs per cycle per core, the unit that gives them, and how (see the module docstring)."""
    flags = set(machine["flags"])
    if "amx_bf16" in flags:
        return BF16_FLOPS_PER_CYCLE_AMX, "amx", "AMX tdpbf16ps (16x16x32 multiply-adds per 16 cycles)"
    if "avx512_bf16" in flags:
        return (fp32_flops_per_cycle(machine) * BF16_DOT_FACTOR, "avx512_bf16",
                "vdpbf16ps (32 bf16 pairs per instruction, assumed 2/cycle like FMA); no AMX")
    return fp32_flops_per_cycle(machine), "fp32", "no native bf16: fp32 FMA rate"


def gemm_ceiling(n: int = 2048, seconds: float = 2.0) -> dict:
    """Best GFLOP/s of n x n matrix products (fp32, bf16) over ~`seconds` each: the achievable ceiling now."""
    import torch

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)
        best, started = 0.0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
        out[f"{name}_gflops"] = round(best, 1)
    out["how"] = f"best single torch.mm {n}x{n} over {seconds:.0f} s, {torch.get_num_threads()} threads"
    return out


def implied_clock_ghz(machine: dict, gemm: dict) -> float | None:
    """The clock the bf16 GEMM ceiling needs at the unit's FLOPs/cycle: above /proc/cpuinfo's when boost is on."""
    if "avx512_bf16" not in machine["flags"] or not gemm.get("bf16_gflops"):
        return None
    return round(gemm["bf16_gflops"] / (machine["cores"] * bf16_flops_per_cycle(machine)[0]), 2)


if __name__ == "__main__":
    m = describe()
    print(json.dumps({"machine": m, "peak": peak(m), "gemm": gemm_ceiling()}, indent=2))

