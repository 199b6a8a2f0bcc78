"""How much libgomp's wait policy matters here: the served model's ms/image under each policy.

OpenMP worker threads spin between parallel regions by default (OMP_WAIT_POLICY unset or
ACTIVE). On a small machine shared with other busy processes a spinning thread burns the time
slice its sibling needs to reach the next barrier, and every one of the generator's ~100
parallel regions per forward pass can stall for a scheduler tick; PASSIVE threads sleep instead.
The policy is read once when libgomp loads, so each policy runs in its own process;
`compare` alternates them so background load hits both alike.

    python bench/omp_probe.py compare --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ("default", "PASSIVE")


def probe(category: str, dtype: str, threads: int, batches: list[int], repeats: int) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    from generator_modes import load_pyfunc

    from sketch2fashion.models.networks import GENERATOR_IN_CHANNELS
    from sketch2fashion.registry.tracking import configure

    configure(ROOT)
    torch.set_num_threads(threads)
    model = load_pyfunc(f"models:/colorizer-{category}@champion", dtype)
    out = {}
    for batch in batches:
        x = (np.random.default_rng(0).random((batch, GENERATOR_IN_CHANNELS, 256, 256), dtype=np.float32) * 2 - 1)
        model.predict(x)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.predict(x)
            times.append((time.perf_counter() - started) * 1000 / batch)
        out[str(batch)] = {"ms_per_img_median": round(statistics.median(times), 1), "ms_per_img_best": round(min(times), 1)}
    return out


def compare(category: str, dtype: str, threads: int, batches: list[int], repeats: int, rounds: int) -> dict:
    """Each policy in its own process, alternating, `rounds` times; per policy the median over rounds."""
    runs: dict[str, list[dict]] = {p: [] for p in POLICIES}
    for _ in range(rounds):
        for policy in POLICIES:
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "MLFLOW_TRACKING_URI",
                                                                     "MLFLOW_REGISTRY_URI")}
            if policy != "default":
                env["OMP_WAIT_POLICY"] = policy
            cmd = [sys.executable, str(Path(__file__).resolve()), "probe", "--category", category, "--dtype", dtype,
                   "--threads", str(threads), "--repeats", str(repeats), "--batch", *map(str, batches)]
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
            line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
            if done.returncode != 0 or not line:
                raise RuntimeError(f"omp probe ({policy}) failed: {done.stderr[-2000:]}")
            runs[policy].append(json.loads(line[-1]))
    summary = {}
    for policy, results in runs.items():
        summary[policy] = {b: round(statistics.median(r[b]["ms_per_img_median"] for r in results), 1) for b in results[0]}
    ratio = {b: round(summary["default"][b] / summary["PASSIVE"][b], 2) for b in summary["PASSIVE"]}
    return {"model": f"colorizer-{category} champion, exported pyfunc (uncompiled), {dtype}, {threads} torch threads",
            "ms_per_img": summary, "default_over_passive": ratio, "rounds": rounds, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["probe", "compare"])
    parser.add_argument("--category", default="top")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.what == "probe":
        print(json.dumps(probe(args.category, args.dtype, args.threads, args.batch, args.repeats)))
    else:
        print(json.dumps(compare(args.category, args.dtype, args.threads, args.batch, args.repeats, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
