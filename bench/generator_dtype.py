"""How fast does the pix2pix generator run here in fp32, bf16 autocast and channels-last(+bf16)?

Serving throughput decides whether the shop needs a GPU; this measures eval-mode images/s on the
current device (CPU or CUDA) after warm-up, and reports FLOPs per image (counted by
torch.utils.flop_counter, 2 FLOPs per multiply-add) and the GFLOP/s achieved. Modes are timed in
interleaved rounds, so load from other processes on a shared machine hits every mode alike; the
table shows the median and the range, and the ratios are given for the median and for the best
round (like timeit's minimum, the least-disturbed estimate).

    python bench/generator_dtype.py --size 256 --ngf 64 --batch 1 8 --seconds 5
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from sketch2fashion.models.device import bf16_supported, cpu_capabilities, pick_device
from sketch2fashion.models.networks import (
    GENERATOR_IN_CHANNELS,
    UNetGenerator,
    count_parameters,
    init_weights,
    max_depth_for,
)


@dataclass(frozen=True)
class Mode:
    name: str
    dtype: torch.dtype
    channels_last: bool


MODES = {
    "fp32": Mode("fp32", torch.float32, channels_last=False),
    "bf16": Mode("bf16", torch.bfloat16, channels_last=False),
    "cl+fp32": Mode("cl+fp32", torch.float32, channels_last=True),
    "cl+bf16": Mode("cl+bf16", torch.bfloat16, channels_last=True),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default: 256)")
    parser.add_argument("--ngf", type=int, default=64, help="generator base width (default: 64)")
    parser.add_argument("--depth", type=int, default=None,
                        help="U-Net depth (default: deepest that fits --size, at most 8)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="timed seconds per mode and batch, split over --rounds (default: 5)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved timing rounds; the table shows their median (default: 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes per mode first (default: 2)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=["fp32", "bf16", "cl+bf16"],
                        help="precision/layout modes to time (default: fp32 bf16 cl+bf16)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: auto)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser.parse_args()


@contextlib.contextmanager
def precision(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    if dtype == torch.float32:
        yield
    else:
        with torch.autocast(device_type=device.type, dtype=dtype):
            yield


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_image(model: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x[:1])
    return float(counter.get_total_flops())


def prepared(model: torch.nn.Module, x: torch.Tensor, mode: Mode) -> tuple[torch.nn.Module, torch.Tensor]:
    """A copy of the model and input in the mode's memory layout (the weights' layout matters too)."""
    fmt = torch.channels_last if mode.channels_last else torch.contiguous_format
    return copy.deepcopy(model).to(memory_format=fmt), x.contiguous(memory_format=fmt)


def time_runner(run: Callable[[], object], batch: int, seconds: float,
                device: torch.device | None = None) -> tuple[float, int, float]:
    """Images/s of `run()` (one forward pass of `batch` images) over about `seconds`, the pass
    count, and the cores this process kept busy meanwhile (CPU seconds / wall seconds)."""
    synchronize(device or torch.device("cpu"))
    iterations, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while iterations < 1 or time.perf_counter() - start < seconds:
        run()
        iterations += 1
    synchronize(device or torch.device("cpu"))
    wall = time.perf_counter() - start
    return iterations * batch / wall, iterations, (time.process_time() - cpu_start) / wall


def bench_runners(runners: dict[str, Callable[[], object]], batch: int, seconds: float, warmup: int,
                  rounds: int, device: torch.device | None = None) -> dict[str, tuple[list[float], int, list[float]]]:
    """Per runner: the images/s of each round, the total pass count and the cores busy in each
    round, runners interleaved per round.

    Each runner is warmed up on this batch shape first (oneDNN builds its primitives per shape),
    then every round times each runner for seconds / rounds (at least one pass), so load from
    other processes on a shared machine hits every runner alike.
    """
    for run in runners.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    cores: dict[str, list[float]] = {name: [] for name in runners}
    passes = dict.fromkeys(samples, 0)
    for _ in range(rounds):
        for name, run in runners.items():
            rate, iterations, busy = time_runner(run, batch, seconds / rounds, device)
            samples[name].append(rate)
            cores[name].append(busy)
            passes[name] += iterations
    return {name: (samples[name], passes[name], cores[name]) for name in samples}


def mode_runner(model: torch.nn.Module, x: torch.Tensor, mode: Mode, device: torch.device) -> Callable[[], object]:
    """One eval forward pass of `model` on `x` in `mode` (layout, precision, inference mode)."""
    net, inp = prepared(model, x, mode)

    def run() -> object:
        with torch.inference_mode(), precision(device, mode.dtype):
            return net(inp)

    return run


def bench_batch(model: torch.nn.Module, x: torch.Tensor, modes: list[Mode], device: torch.device,
                seconds: float, warmup: int, rounds: int) -> dict[str, tuple[list[float], int, list[float]]]:
    """Per mode: the images/s of each round and the total pass count, modes interleaved per round."""
    runners = {mode.name: mode_runner(model, x, mode, device) for mode in modes}
    return bench_runners(runners, x.shape[0], seconds, warmup, rounds, device)


def describe(device: torch.device, model: torch.nn.Module, args: argparse.Namespace, depth: int,
             flops: float) -> None:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device} ({where}); torch {torch.__version__}; threads {torch.get_num_threads()}")
    if device.type == "cpu":
        caps = cpu_capabilities()
        flags = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16") if caps.get(f)]
        print(f"cpu bf16-relevant features: {', '.join(flags) or 'none'}; native bf16: {bf16_supported(device)}")
    print(f"generator: size {args.size}, ngf {args.ngf}, depth {depth}, "
          f"{count_parameters(model) / 1e6:.2f} M params, {flops / 1e9:.2f} GFLOP/image (eval forward)\n")


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    depth = args.depth if args.depth is not None else min(max_depth_for(args.size), 8)
    torch.manual_seed(0)
    model = init_weights(UNetGenerator(ngf=args.ngf, depth=depth)).to(device).eval()
    flops = flops_per_image(model, torch.randn(1, GENERATOR_IN_CHANNELS, args.size, args.size, device=device))
    describe(device, model, args, depth, flops)

    print(f"{'mode':<9} {'batch':>5} {'passes':>6} {'img/s':>8} {'min-max img/s':>14} {'ms/img':>8} {'GFLOP/s':>8}")
    modes = [MODES[name] for name in args.modes]
    results: dict[tuple[str, int], tuple[float, float]] = {}  # (median, best) images/s
    for batch in args.batch:
        x = torch.randn(batch, GENERATOR_IN_CHANNELS, args.size, args.size, device=device)
        timings = bench_batch(model, x, modes, device, args.seconds, args.warmup, args.rounds)
        for name, (samples, passes, _) in timings.items():
            rate = statistics.median(samples)
            results[(name, batch)] = (rate, max(samples))
            spread = f"{min(samples):.2f}-{max(samples):.2f}"
            print(f"{name:<9} {batch:>5} {passes:>6} {rate:>8.2f} {spread:>14} {1000 / rate:>8.1f} "
                  f"{rate * flops / 1e9:>8.1f}", flush=True)
    print()
    for batch in args.batch:
        if ("fp32", batch) not in results:
            continue
        median, best = results[("fp32", batch)]
        ratios = []
        for name in args.modes:
            if name != "fp32":
                mode_median, mode_best = results[(name, batch)]
                ratios.append(f"{name}/fp32 = {mode_median / median:.2f}x (best rounds {mode_best / best:.2f}x)")
        print(f"batch {batch}: " + ", ".join(ratios))

if __name__ == "__main__":
    main()
