"""The generator through `torch.compile` (Inductor, frozen weights) at a few fixed batch sizes.

Why: on this project's 2-core AVX512-BF16 CPU, Inductor with `freezing` (weights folded and
prepacked for oneDNN, pointwise ops fused) ran the 256 px full U-Net in bf16 1.67x (batch 1)
and 1.58x (batch 8) faster than the frozen TorchScript export, but only ~1.3x with a dynamic
batch dimension, and every new static batch size compiles for ~20 s. So a few batch sizes
("buckets") are compiled once, when the model loads, and any batch is run as the cheapest
combination of bucket calls, the last one padded with blank rows (each image is normalised on
its own, so padding never changes the others). Bucket costs are timed at warm-up. GPU servers
do the same with CUDA-graph batch sizes (vLLM pads a batch to the next captured size).

A failed compile (no C++ compiler, an Inductor bug) is not fatal: `compile_generator` returns
None with the reason and the caller keeps the uncompiled module.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from sketch2fashion.models.device import inference_autocast

log = logging.getLogger("sketch2fashion.registry")

COMPILE_CHOICES = ("auto", "on", "off")
DEFAULT_BATCH_SIZES = (1, 8)
INDUCTOR_CONFIG = {"freezing": True}
"""Set while the shapes compile. Passed as torch.compile(options=...) instead, the full U-Net ran
at batch 1 at half the speed (16.6 vs 31.0 img/s, bf16, torch 2.13): the weights were not frozen."""
TIMED_CALLS = 2
"""Calls per bucket timed after its compile, for the planner's costs."""


def plan_chunks(n: int, costs: Mapping[int, float]) -> list[int]:
    """Bucket sizes (largest first) that together hold `n` rows at the least summed cost.

    An unbounded knapsack over the buckets: a chunk may hold fewer rows than its size (padding).
    With costs {1: 31, 8: 157} (ms, full U-Net), 3 rows run as 3 x batch 1 and 6 as one padded
    batch of 8.
    """
    if n < 1:
        raise ValueError(f"need at least one row, got {n}")
    if not costs:
        raise ValueError("no batch sizes to plan with")
    best = [0.0] + [math.inf] * n
    pick = [0] * (n + 1)
    for m in range(1, n + 1):
        for size, cost in costs.items():
            total = best[max(0, m - size)] + cost
            if total < best[m]:
                best[m], pick[m] = total, size
    chunks, m = [], n
    while m > 0:
        chunks.append(pick[m])
        m = max(0, m - pick[m])
    return sorted(chunks, reverse=True)


def compiler_missing(device: torch.device) -> str | None:
    """Why Inductor cannot build kernels for `device` here, or None if it can."""
    if device.type == "cpu":
        names = [os.environ.get("CXX"), "g++", "c++", "clang++"]
        if not any(name and shutil.which(name) for name in names):
            return "no C++ compiler found (install g++; the bentofile's system_packages has it)"
        return None
    if device.type == "cuda":
        return None if importlib.util.find_spec("triton") else "triton is not installed"
    return f"torch.compile is not set up for device {device.type!r}"


def wants_compile(setting: str, device: torch.device) -> tuple[bool, str]:
    """("auto" | "on" | "off", device) -> (compile?, why)."""
    if setting not in COMPILE_CHOICES:
        raise ValueError(f"compile must be one of {COMPILE_CHOICES}, got {setting!r}")
    if setting == "off":
        return False, "compile: off"
    missing = compiler_missing(device)
    if missing:
        if setting == "on":
            raise RuntimeError(f"compile: on, but {missing}")
        return False, f"compile: auto, but {missing}"
    return True, f"compile: {setting}"


@dataclass
class CompiledGenerator:
    """A compiled module plus the measured cost of each compiled batch size."""

    compiled: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    dtype: torch.dtype
    costs: dict[int, float] = field(default_factory=dict)
    """batch size -> seconds per call, timed at warm-up."""
    compile_seconds: float = 0.0

    @property
    def batch_sizes(self) -> list[int]:
        return sorted(self.costs)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x H x W in (any N) -> the generator's output, chunked into compiled sizes."""
        outputs, start = [], 0
        for size in plan_chunks(x.shape[0], self.costs):
            rows = x[start:start + size]
            start += rows.shape[0]
            outputs.append(self._run(rows, size))
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _run(self, rows: torch.Tensor, size: int) -> torch.Tensor:
        n = rows.shape[0]
        if n < size:  # pad with blank rows to a compiled shape; their outputs are dropped
            rows = torch.cat([rows, rows.new_zeros((size - n, *rows.shape[1:]))])
        rows = rows.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), inference_autocast(self.device, self.dtype):
            out = self.compiled(rows)
        return out[:n]


def compile_generator(module: nn.Module, *, device: torch.device, dtype: torch.dtype,
                      example: torch.Tensor, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
                      ) -> tuple[CompiledGenerator | None, str]:
    """Compile `module` for each of `batch_sizes` (static shapes) and time one call of each.

    `example` is one input row (1 x C x H x W). Returns (the runner, "") or (None, why it failed).
    """
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"batch_sizes must be positive integers, got {list(batch_sizes)}")
    import torch._inductor.config as inductor_config

    compiled = torch.compile(module, dynamic=False)
    runner = CompiledGenerator(compiled, device, dtype)
    started = time.perf_counter()
    try:
        for size in sizes:
            rows = example.to(device).expand(size, *example.shape[1:]).clone()
            with inductor_config.patch(INDUCTOR_CONFIG):
                runner._run(rows, size)  # compiles this shape
            runner.costs[size] = _time_calls(lambda: runner._run(rows, size), device)
    except Exception as exc:  # noqa: BLE001 - any compiler failure means "serve uncompiled"
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    runner.compile_seconds = time.perf_counter() - started
    log.info("compiled the generator for batch sizes %s in %.1f s; seconds per call %s", sizes,
             runner.compile_seconds, {k: round(v, 4) for k, v in runner.costs.items()})
    return runner, ""


def _time_calls(call: Callable[[], object], device: torch.device) -> float:
    best = math.inf
    for _ in range(TIMED_CALLS):
        started = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - started)
    return best
