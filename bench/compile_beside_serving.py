"""How a torch.compile in one thread affects a compiled generator serving batches in another.

The Colorizer compiles a new champion in its poller thread while its batch thread serves the
others. This times 4-image batches of the project's generator (params.yaml `model:`, seeded
random weights, 256 px, bf16 autocast) alone, then while a second copy compiles beside them, with
a chosen GIL switch interval for the compile, and autocast's cast cache on or off. With the cache
on the two threads deadlocked (torch 2.13, 2026-12-07): the serving thread never returns, so the
run prints nothing; give it a wall-clock limit.

    python bench/compile_beside_serving.py --switch-interval 0.005     # Python's default
    python bench/compile_beside_serving.py --switch-interval 0.0001    # what serving uses
    timeout 300 python bench/compile_beside_serving.py --cache         # the deadlock: no output
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch._inductor.config as inductor_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sketch2fashion.demo_run import cpu_name  # noqa: E402
from sketch2fashion.models.networks import build_generator  # noqa: E402
from sketch2fashion.params import load_params  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switch-interval", type=float, default=0.005, help="GIL switch interval while compiling (s)")
    parser.add_argument("--cache", action="store_true", help="autocast's cast cache on (deadlocks)")
    parser.add_argument("--timeout", type=float, default=240.0, help="give up on the compile after this (s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model = load_params(ROOT / "params.yaml")["model"]

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=args.cache)

    def compiled(seed: int):
        torch.manual_seed(seed)
        module = torch.compile(build_generator(model, 256).eval(), dynamic=False)
        with inductor_config.patch({"freezing": True}):
            for batch in (1, 4):
                with torch.no_grad(), autocast():
                    module(torch.zeros(batch, 9, 256, 256).contiguous(memory_format=torch.channels_last))
        return module

    serving = compiled(0)
    x = torch.randn(4, 9, 256, 256).contiguous(memory_format=torch.channels_last)

    def batch_seconds() -> float:
        started = time.perf_counter()
        with torch.no_grad(), autocast():
            serving(x)
        return time.perf_counter() - started

    alone = [batch_seconds() for _ in range(100)]
    done, result = threading.Event(), {"cpu": cpu_name(), "switch_interval": args.switch_interval, "cache": args.cache}

    def compile_beside() -> None:
        sys.setswitchinterval(args.switch_interval)
        started = time.perf_counter()
        compiled(1)
        result["compile_s"] = round(time.perf_counter() - started, 1)
        done.set()

    threading.Thread(target=compile_beside, daemon=True).start()
    beside, started = [], time.monotonic()
    while not done.is_set() and time.monotonic() - started < args.timeout:
        beside.append(batch_seconds())

    def ms(samples, q):
        return round(1000 * float(np.percentile(samples, q)), 1)

    result.update(finished=done.is_set(), alone_p50_ms=ms(alone, 50), alone_p99_ms=ms(alone, 99),
                  beside_p50_ms=ms(beside, 50), beside_p99_ms=ms(beside, 99), batches_beside=len(beside))
    print(json.dumps(result), flush=True)
    os._exit(0)  # a deadlocked compile thread must not keep the process alive


if __name__ == "__main__":
    sys.exit(main())
