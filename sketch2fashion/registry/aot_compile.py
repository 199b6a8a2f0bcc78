"""Compiled generators built ahead of time, in their own low-priority process, and cached on disk.

Why not `torch.compile` in the serving process: compiling one champion there while another
served stalled the requests it served. Measured on 2 AMD EPYC cores (2026-12-07): a thread
looping the compiled demo generator while a second thread compiled another copy slowed both
to a crawl (the process used 5-20% of a core for minutes: the compiler's Python and the
serving thread took turns at the GIL), and in the served tests a request behind such a stall
waited past the adaptive batcher's `max_latency_ms` and was shed with a 503.

So a champion is compiled by `python -m sketch2fashion.registry.aot_compile` under `nice 19`:
AOTInductor turns the exported generator into one package per batch size (a shared library
plus its frozen weights), written atomically into a cache keyed by the generator file, the batch
size, the precision, torch and the CPU. The serving process only loads packages (milliseconds,
no compiler, no GIL-bound tracing), so a promotion swaps without a stall and a restart on the
same machine compiles nothing. On that CPU a loaded package ran the 256 px demo U-Net in bf16 at
8.0 ms (batch 1) and 30.6 ms (batch 8) against 6.6 / 23.0 ms for an in-process torch.compile
with frozen weights: the price of never compiling where requests are served.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

CACHE_ENV = "S2F_COMPILE_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "sketch2fashion" / "compiled"
INDUCTOR_CONFIG = {"freezing": True}
"""Weights folded into the package as constants (prepacked for oneDNN on CPU)."""
COMPILE_TIMEOUT_S = 1800.0
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}


class CompileFailed(RuntimeError):
    """The compiler process failed or ran out of time; the message carries its last output lines."""


def cache_dir(configured: str | os.PathLike | None = None) -> Path:
    """Where packages live: the configured folder, else $S2F_COMPILE_CACHE, else ~/.cache."""
    return Path(configured or os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def machine_fingerprint(device: torch.device) -> str:
    """What a package was built for beyond its inputs: torch, the CPU's instruction set (and any
    oneDNN cap on it), or the GPU's name and compute capability."""
    parts = [torch.__version__, platform.machine(), torch.backends.cpu.get_cpu_capability(),
             os.environ.get("ONEDNN_MAX_CPU_ISA", "")]
    if device.type == "cuda":
        index = device.index or 0
        parts += [torch.cuda.get_device_name(index), str(torch.cuda.get_device_capability(index))]
    return "|".join(parts)


def package_path(cache: Path, generator: Path, *, batch_size: int, dtype: torch.dtype,
                 device: torch.device) -> Path:
    """The cache entry of one (generator file, batch size, precision, machine)."""
    digest = hashlib.sha256()
    with generator.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    digest.update(f"|{batch_size}|{dtype}|{device.type}|{machine_fingerprint(device)}".encode())
    return cache / f"generator-{digest.hexdigest()[:32]}.pt2"


def build_package(generator: Path, out: Path, *, batch_size: int, dtype: torch.dtype, device: torch.device,
                  image_size: int, in_channels: int) -> Path:
    """Compile the exported generator for one static batch size into `out` (written atomically).

    The generator is exported again at that batch size under the serving precision's autocast,
    so the package computes exactly what the uncompiled model does in that precision.
    """
    from torch._inductor import aoti_compile_and_package

    from sketch2fashion.models.device import inference_autocast

    module = torch.export.load(str(generator)).module().to(device=device)
    example = torch.zeros(batch_size, in_channels, image_size, image_size, device=device)
    example = example.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), inference_autocast(device, dtype):
        program = torch.export.export(module, (example,))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.stem}.{os.getpid()}.partial.pt2")
    try:
        aoti_compile_and_package(program, package_path=str(partial), inductor_configs=INDUCTOR_CONFIG)
        os.replace(partial, out)  # a reader sees no package or a whole one
    finally:
        partial.unlink(missing_ok=True)
    return out


def ensure_packages(generator: Path, *, batch_sizes: Sequence[int], dtype: torch.dtype, device: torch.device,
                    image_size: int, in_channels: int, cache: Path,
                    timeout: float = COMPILE_TIMEOUT_S) -> dict[int, Path]:
    """batch size -> its package; the missing ones are built by one compiler process at nice 19."""
    wanted = {int(b): package_path(cache, generator, batch_size=int(b), dtype=dtype, device=device)
              for b in sorted(set(batch_sizes))}
    missing = [b for b, path in wanted.items() if not path.is_file()]
    if missing:
        command = [sys.executable, "-m", "sketch2fashion.registry.aot_compile", "--generator", str(generator),
                   "--batch-sizes", *map(str, missing), "--dtype", str(dtype).removeprefix("torch."),
                   "--device", str(device), "--image-size", str(image_size), "--in-channels", str(in_channels),
                   "--cache", str(cache)]
        if shutil.which("nice"):
            command = ["nice", "-n", "19", *command]  # serving keeps the CPU while this compiles
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise CompileFailed(f"the compiler process ran past {timeout:.0f} s") from exc
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise CompileFailed(f"the compiler process exited with {done.returncode}: {tail}")
    absent = [b for b, path in wanted.items() if not path.is_file()]
    if absent:
        raise CompileFailed(f"the compiler process wrote no package for batch sizes {absent}")
    return wanted


def load_package(path: Path, device: torch.device):
    """A callable running the compiled generator (no compiler needed; milliseconds)."""
    from torch._inductor import aoti_load_package

    return aoti_load_package(str(path), device_index=device.index if device.type == "cuda" else -1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sketch2fashion.registry.aot_compile",
        description="Compile an exported colorizer generator (generator.pt2) with AOTInductor, one "
                    "package per batch size, into the compile cache. The server runs this itself at "
                    "nice 19 when it meets a champion it has not compiled on this machine yet.")
    parser.add_argument("--generator", type=Path, required=True, help="the torch.export file (generator.pt2)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", required=True, help="static batch sizes to build")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="the serving precision")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--image-size", type=int, required=True, help="side of the square input, pixels")
    parser.add_argument("--in-channels", type=int, required=True, help="input planes of the generator")
    parser.add_argument("--cache", type=Path, default=None, help=f"cache folder (default ${CACHE_ENV} or {DEFAULT_CACHE})")
    args = parser.parse_args(argv)
    if not args.generator.is_file():
        parser.error(f"{args.generator}: no such generator file; pass the generator.pt2 of a logged colorizer")
    if any(b < 1 for b in args.batch_sizes):
        parser.error(f"--batch-sizes must be positive, got {args.batch_sizes}")
    device, dtype, cache = torch.device(args.device), DTYPES[args.dtype], cache_dir(args.cache)
    for batch_size in sorted(set(args.batch_sizes)):
        out = package_path(cache, args.generator, batch_size=batch_size, dtype=dtype, device=device)
        started = time.perf_counter()
        build_package(args.generator, out, batch_size=batch_size, dtype=dtype, device=device,
                      image_size=args.image_size, in_channels=args.in_channels)
        print(f"batch {batch_size}: {out} ({time.perf_counter() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
