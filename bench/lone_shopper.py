"""What a lone shopper waits for: one request at a time, with think time, after idle and after a burst.

A closed loop at concurrency 1 sends the next request the moment the last one is answered, which
no shopper does, and it keeps BentoML's adaptive batching dispatcher in whatever state the
previous load level left it. Here one client sends `/colorize`, `/search` and
`/colorize_and_search` in turn (the same val sketch for all three, the search with the photo the
colorizer made of it), `--think` seconds apart, in two phases:

- `after_idle`: the server has had `--idle` seconds without a request first (counted from when
  no champion is compiling any more);
- `after_burst`: right after `--burst` `/colorize_and_search` requests from 16 clients at once.

Per phase and endpoint: p50 / p99 over `--rounds` rounds, and the issue-18 target:
`/colorize_and_search` p50 <= `/colorize` p50 + `/search` p50 + 15 ms, and its p99 <= 2 x its p50.

    make serve   # or s2f demo, in another terminal
    python -m bench.lone_shopper --url http://127.0.0.1:3000 --out /tmp/lone.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx
from bench.loadgen import percentile_ms  # noqa: E402
from bench.loadgen import run as run_load  # noqa: E402
from bench.serve_colorize import sketch_request, val_sketch_pngs, wait_for_compiles  # noqa: E402

ENDPOINTS = ("colorize", "search", "colorize_and_search")
SLACK_MS = 15.0
"""What /colorize_and_search may add to /colorize + /search run back to back (issue 18)."""


def one_round(client: httpx.Client, url: str, sketch: bytes, category: str, think: float) -> dict[str, float]:
    """The three endpoints for one sketch, `think` seconds apart; seconds each (raises on non-200)."""
    times: dict[str, float] = {}
    form = {"category": category}
    started = time.perf_counter()
    colorized = client.post(f"{url}/colorize", files={"sketch": ("s.png", sketch, "image/png")},
                            data={**form, "format": "png"})
    times["colorize"] = time.perf_counter() - started
    colorized.raise_for_status()
    time.sleep(think)
    started = time.perf_counter()
    client.post(f"{url}/search", files={"image": ("p.png", colorized.content, "image/png"),
                                        "sketch": ("s.png", sketch, "image/png")}, data=form).raise_for_status()
    times["search"] = time.perf_counter() - started
    time.sleep(think)
    started = time.perf_counter()
    client.post(f"{url}/colorize_and_search", files={"sketch": ("s.png", sketch, "image/png")},
                data=form).raise_for_status()
    times["colorize_and_search"] = time.perf_counter() - started
    time.sleep(think)
    return times


def phase(url: str, sketches: list[bytes], category: str, rounds: int, think: float) -> dict:
    samples: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
    with httpx.Client(timeout=300) as client:
        for i in range(rounds):
            for endpoint, seconds in one_round(client, url, sketches[i % len(sketches)], category, think).items():
                samples[endpoint].append(seconds)
    out = {e: {"p50_ms": percentile_ms(v, 50), "p99_ms": percentile_ms(v, 99), "n": len(v)}
           for e, v in samples.items()}
    limit = out["colorize"]["p50_ms"] + out["search"]["p50_ms"] + SLACK_MS
    cas = out["colorize_and_search"]
    out["target"] = {"cas_p50_limit_ms": round(limit, 1), "p50_met": cas["p50_ms"] <= limit,
                     "p99_met": cas["p99_ms"] <= 2 * cas["p50_ms"]}
    return out


def run(url: str, sketches: list[bytes], category: str, *, rounds: int, think: float, idle: float,
        burst: int) -> dict:
    with httpx.Client(timeout=300) as client:  # every shape built once, untimed
        one_round(client, url, sketches[0], category, 0.0)
        compiling_s = wait_for_compiles(client, url)
    time.sleep(idle)
    report = {"url": url, "category": category, "rounds": rounds, "think_s": think, "idle_s": idle,
              "waited_for_compiles_s": round(compiling_s, 1),
              "after_idle": phase(url, sketches, category, rounds, think)}
    burst_load = run_load(url, sketch_request("colorize_and_search", sketches, category), concurrency=16,
                          requests=burst, max_seconds=300, timeout_s=300)
    report["burst"] = {"requests": burst, "ok": burst_load.ok}
    report["after_burst"] = phase(url, sketches, category, rounds, think)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--category", default="top")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--think", type=float, default=0.3, help="seconds between one shopper's requests")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds without requests before the first phase")
    parser.add_argument("--burst", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="also write the report here (JSON)")
    args = parser.parse_args(argv)
    if not (args.data_dir / "manifest.csv").is_file():
        print(f"{args.data_dir}: no manifest.csv; run from a project with data (dvc repro) or pass --data-dir",
              file=sys.stderr)
        return 2
    sketches = val_sketch_pngs(args.data_dir, args.category, args.size, 8)
    report = run(args.url, sketches, args.category, rounds=args.rounds, think=args.think, idle=args.idle,
                 burst=args.burst)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
