"""Where and in which precision the generator runs: CUDA when present, else CPU.

bf16 autocast pays off only where the hardware computes bf16 natively (CUDA compute capability
>= 8.0; on x86 CPUs AVX512-BF16 or AMX-BF16). oneDNN will *emulate* bf16 on plain AVX-512, which
is slower than fp32, so we ask the CPU for its real capabilities instead of trusting
`torch.ops.mkldnn._is_mkldnn_bf16_supported()` (true on any AVX-512 CPU).

bf16 also wants channels-last tensors. Measured with the eager modes of bench/generator_modes.py (256 px U-Net,
eval, batch 1 / 8): on this project's 2-core AVX512-BF16 CPU (no AMX), NCHW bf16 was 1.08x / 2.14x
fp32 in a quiet run but erratic under load (oneDNN reorders around layers), channels-last bf16
1.48x / 2.57x; on 2 threads of an AMX Xeon, NCHW bf16 0.87x / 1.97x, channels-last bf16
1.43x / 2.68x; with oneDNN limited to plain AVX-512 (emulated bf16) channels-last bf16 was 0.36x.
`prepare_for_inference` applies dtype and layout together so callers cannot get one without the
other.

On an H100, fp32 convolutions already run on tensor cores (cuDNN TF32, PyTorch's default) and a
single 256 px image is launch-bound: channels-last bf16 was 0.80x fp32 at batch 1, 0.90x at 8,
1.91x at 64. "auto" still picks bf16 on CUDA (the batch-1 cost is ~0.4 ms; training-sized
batches gain); pass dtype="fp32" for the lowest single-image latency on a GPU.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import nn

# CPU features that execute bf16 dot products in hardware (names as in torch.cpu.get_capabilities()).
NATIVE_BF16_CPU_FEATURES = ("amx_bf16", "avx512_bf16")
DTYPE_NAMES = {
    "auto": None,
    "fp32": torch.float32, "float32": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}


def pick_device(prefer: str = "auto") -> torch.device:
    """'auto' -> the first CUDA GPU if there is one, else CPU; 'cpu', 'cuda', 'cuda:N' as asked.

    Asking for CUDA on a machine without it is an error, not a silent CPU fallback: a serving
    config that expects a GPU should fail loudly rather than run 50x slower.
    """
    if prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(prefer)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {prefer!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RuntimeError(f"device {prefer!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
    return device


def cpu_capabilities() -> dict[str, object]:
    """The CPU feature flags PyTorch detected; empty on builds without `torch.cpu.get_capabilities`."""
    get = getattr(torch.cpu, "get_capabilities", None)
    try:
        return dict(get()) if get is not None else {}
    except Exception:  # a probe failure means "unknown", which we treat as "not supported"
        return {}


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 compute is native (fast) on `device`, not merely emulated."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        if not torch.backends.mkldnn.is_available():  # CPU bf16 convolutions go through oneDNN
            return False
        caps = cpu_capabilities()
        return any(bool(caps.get(feature)) for feature in NATIVE_BF16_CPU_FEATURES) and onednn_allows_bf16()
    return False


BF16_ISAS = ("ALL", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
             "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2")
"""oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that still include native bf16 instructions."""


def onednn_allows_bf16() -> bool:
    """False when ONEDNN_MAX_CPU_ISA (or its old name DNNL_MAX_CPU_ISA) caps oneDNN below native bf16:
    `ONEDNN_MAX_CPU_ISA=AVX2` makes any x86 machine compute like a laptop CPU, and bf16 there would
    be emulated (slow), so `auto` picks fp32 as it would on the laptop."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return not cap or cap in BF16_ISAS


def resolve_dtype(device: torch.device, dtype: str | torch.dtype = "auto") -> torch.dtype:
    """The compute dtype for inference: 'auto' = bf16 where native, else fp32; names or torch dtypes."""
    if isinstance(dtype, str):
        if dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype must be one of {sorted(DTYPE_NAMES)}, got {dtype!r}")
        resolved = DTYPE_NAMES[dtype]
        if resolved is None:
            return torch.bfloat16 if bf16_supported(device) else torch.float32
        return resolved
    return dtype


@contextlib.contextmanager
def inference_autocast(device: torch.device, dtype: str | torch.dtype = "auto") -> Iterator[torch.dtype]:
    """Run the enclosed forward passes in the resolved precision; yields that dtype.

    fp32 means no autocast at all. Outputs under autocast may be bf16: convert with
    `models.inputs.to_image`, which casts to float32 before quantising.

    Autocast's cast cache is off: it only caches casts of trainable weights (none here: inference
    needs no gradients), and with it on, a thread running the generator under autocast while
    another thread compiled one under autocast deadlocked (torch 2.13, 2026-12-07: the serving
    thread stuck in autocast's exit, the compiling one in fake-tensor tracing, neither moving for
    the 6.7 minutes the run was given; with the cache off the same compile finished in 24 s).
    """
    resolved = resolve_dtype(device, dtype)
    if resolved == torch.float32:
        yield resolved
        return
    with torch.autocast(device_type=device.type, dtype=resolved, cache_enabled=False):
        yield resolved


def inference_memory_format(dtype: torch.dtype) -> torch.memory_format:
    """channels-last for reduced precision (what oneDNN and tensor cores want), NCHW for fp32.

    On the CPU we measured fp32 channels-last slightly slower (~0.85x) than NCHW.
    """
    return torch.contiguous_format if dtype == torch.float32 else torch.channels_last


def prepare_for_inference(
    model: nn.Module, device: torch.device, dtype: str | torch.dtype = "auto"
) -> tuple[nn.Module, torch.dtype, torch.memory_format]:
    """Put `model` in eval mode on `device` in the layout that suits the resolved dtype.

    Returns (model, dtype, memory_format); move inputs with
    `x.to(device, memory_format=memory_format)` and run under `inference_autocast(device, dtype)`.
    """
    resolved = resolve_dtype(device, dtype)
    memory_format = inference_memory_format(resolved)
    model = model.eval().to(device=device, memory_format=memory_format)
    return model, resolved, memory_format
