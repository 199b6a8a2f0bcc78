"""What `serving.keep_freed_memory` buys: the compiled full U-Net with glibc's default malloc
against malloc told to keep freed memory (sketch2fashion/serving/allocator.py).

glibc hands every chunk of 32 MiB or more back to the kernel on free, so a graph whose largest
activation crosses that size page-faults it in again on every call; at 256 px the full U-Net's
last decoder buffer is 33.5 MB from batch 8 up. Minor page faults per call are counted beside
the time. A malloc setting holds for the whole process, so each side runs in its own process,
alternating over rounds so background load hits both alike.

    python bench/malloc_probe.py compare --batch 8 32 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("default", "keep")


def probe(keep: bool, threads: int, batches: list[int], repeats: int) -> dict:
    """ms per call and minor faults per call of the compiled full U-Net (bf16) at each batch."""
    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    from generator_modes import random_generator

    from sketch2fashion.models.networks import GENERATOR_IN_CHANNELS
    from sketch2fashion.registry.colorizer_model import MEMORY_FORMAT, export_program
    from sketch2fashion.registry.compiled import compile_generator
    from sketch2fashion.serving.allocator import keep_freed_memory

    said = keep_freed_memory() if keep else "glibc defaults"
    torch.set_num_threads(threads)
    example = torch.zeros(1, GENERATOR_IN_CHANNELS, 256, 256)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_program(random_generator(64, 256), example, Path(tmp) / "generator.pt2")
        module = torch.export.load(str(path)).module().to(memory_format=MEMORY_FORMAT)
    runner, failure = compile_generator(module, device=torch.device("cpu"), dtype=torch.bfloat16,
                                        example=example, batch_sizes=batches)
    if runner is None:
        raise RuntimeError(f"compile failed: {failure}")
    out: dict = {"malloc": said}
    for batch in batches:
        x = torch.rand(batch, GENERATOR_IN_CHANNELS, 256, 256) * 2 - 1
        for _ in range(3):  # warm-up; the kept heap settles after a few calls
            runner(x)
        times, faults = [], []
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            started = time.perf_counter()
            runner(x)
            times.append((time.perf_counter() - started) * 1000)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        out[str(batch)] = {"ms_per_call": round(statistics.median(times), 1),
                           "img_per_s": round(batch * 1000 / statistics.median(times), 1),
                           "minor_faults_per_call": int(statistics.median(faults))}
    return out


def compare(threads: int, batches: list[int], repeats: int, rounds: int) -> dict:
    """Each side in its own process, alternating, `rounds` times; per side the median over rounds."""
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for _ in range(rounds):
        for side in SIDES:
            cmd = [sys.executable, str(Path(__file__).resolve()), "probe", "--side", side, "--threads", str(threads),
                   "--repeats", str(repeats), "--batch", *map(str, batches)]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
            line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
            if done.returncode != 0 or not line:
                raise RuntimeError(f"malloc probe ({side}) failed: {done.stderr[-2000:]}")
            runs[side].append(json.loads(line[-1]))
    summary = {side: {str(b): {key: round(statistics.median(r[str(b)][key] for r in results), 1)
                               for key in ("ms_per_call", "img_per_s", "minor_faults_per_call")}
                      for b in batches}
               for side, results in runs.items()}
    speedup = {str(b): round(summary["default"][str(b)]["ms_per_call"] / summary["keep"][str(b)]["ms_per_call"], 3)
               for b in batches}
    return {"model": f"full U-Net (ngf 64, 256 px), torch.export -> torch.compile, bf16, {threads} torch threads",
            "by_side": summary, "keep_speedup": speedup, "rounds": rounds, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["probe", "compare"])
    parser.add_argument("--side", choices=SIDES, default="keep", help="probe: which malloc behaviour")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.what == "probe":
        print(json.dumps(probe(args.side == "keep", args.threads, args.batch, args.repeats)))
    else:
        print(json.dumps(compare(args.threads, args.batch, args.repeats, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
