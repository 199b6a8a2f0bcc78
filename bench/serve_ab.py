"""A/B of service settings: each variant is a real `bentoml serve` with params.yaml overrides,
variants alternate over rounds so background load hits them alike; per variant the median over
rounds of the lone-request p50, the saturated /colorize rate and the CPU per request by process.

    python bench/serve_ab.py --variant base --variant png1:serving.png_compression=1 \\
        --variant t1:serving.threads=1 --rounds 2 --out bench/experiments/ab.json

A variant is NAME or NAME:KEY=VALUE[,KEY=VALUE...] (values parsed as YAML; env:NAME=VALUE sets an
environment variable of the server instead).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_colorize import (  # noqa: E402
    ROOT, bento_server, best_throughput, full_unet_project, load_levels, overload, val_sketch_pngs, warm_up,
)


def parse_variant(text: str) -> tuple[str, dict, dict]:
    name, _, rest = text.partition(":")
    overrides, env = {}, {}
    for item in filter(None, re.split(r",(?=(?:env:)?[\w.]+=)", rest)):  # commas inside [1,4,8] stay
        key, _, value = item.partition("=")
        if key.startswith("env:"):
            env[key[4:]] = value
        else:
            overrides[key] = yaml.safe_load(value)
    return name, overrides, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--category", default="top")
    parser.add_argument("--saturate", type=int, default=32, help="concurrency of the saturated level")
    parser.add_argument("--endpoint", default="colorize", choices=["colorize", "colorize_and_search"])
    parser.add_argument("--overload", type=float, default=0.0,
                        help="also offer this many requests/s open loop for 15 s (the same rate for every variant)")
    parser.add_argument("--full-unet", action="store_true",
                        help="serve the full pix2pix U-Net (ngf 64, scratch project) instead of the demo champions")
    parser.add_argument("--per-client", type=int, default=4, help="requests per client at the saturated level")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    variants = [parse_variant(v) for v in args.variant]
    sketches = val_sketch_pngs(ROOT / "data", args.category, 256, n=16)
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    scratch = tempfile.TemporaryDirectory(prefix="s2f-ab-full-unet-") if args.full_unet else None
    project = full_unet_project(Path(scratch.name), category=args.category) if scratch else ROOT
    for round_no in range(args.rounds):
        for name, overrides, env in variants:
            with bento_server(overrides, env=env, project_root=project) as url:
                warm_up(url, args.endpoint, sketches, args.category)
                rows = load_levels(url, args.endpoint, sketches, args.category, [1, args.saturate],
                                   per_client=args.per_client, min_requests=24, max_seconds=40, log=lambda m: None)
                over = (overload(url, sketches, args.category, rate=args.overload, seconds=15, log=lambda m: None)
                        if args.overload else None)
            lone, sat = rows
            runs[name].append({"lone_p50_ms": lone["p50_ms"], "saturated_rps": best_throughput(rows[1:]),
                               "saturated_p50_ms": sat["p50_ms"], "statuses": sat["statuses"],
                               "cpu_ms_per_ok": sat.get("cpu_ms_per_ok"), "cores_busy": sat.get("cores_busy")})
            if over:
                runs[name][-1]["overload"] = {k: over.get(k) for k in (
                    "offered_rps", "requests", "ok", "throughput_rps", "p50_ms", "p99_ms", "max_ms", "statuses",
                    "errors", "refused_p50_ms", "refused_p99_ms", "after")}
            print(f"round {round_no + 1} {name}: {json.dumps(runs[name][-1])}", flush=True)
    summary = {}
    for name, overrides, env in variants:
        rs = runs[name]
        cpu_keys = sorted({k for r in rs for k in (r["cpu_ms_per_ok"] or {})})
        summary[name] = {
            "overrides": overrides, "env": env,
            "lone_p50_ms": statistics.median(r["lone_p50_ms"] for r in rs),
            "saturated_rps": statistics.median(r["saturated_rps"] for r in rs),
            "cpu_ms_per_ok": {k: round(statistics.median((r["cpu_ms_per_ok"] or {}).get(k, 0.0) for r in rs), 1)
                              for k in cpu_keys},
            "cores_busy": statistics.median(r["cores_busy"] or 0.0 for r in rs),
            "errors_at_saturation": [r["statuses"] for r in rs],
        }
        if args.overload:
            summary[name]["overload"] = {k: statistics.median(r["overload"][k] or 0.0 for r in rs)
                                         for k in ("ok", "throughput_rps", "p50_ms", "p99_ms", "refused_p50_ms",
                                                   "refused_p99_ms")}
            summary[name]["overload_statuses"] = [r["overload"]["statuses"] for r in rs]
        print(f"{name:12s} lone p50 {summary[name]['lone_p50_ms']:7.1f} ms  saturated {summary[name]['saturated_rps']:6.2f} "
              f"req/s  cpu/req {summary[name]['cpu_ms_per_ok']}  {summary[name].get('overload', '')}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M %Z"), "rounds": args.rounds,
                                        "saturate": args.saturate, "endpoint": args.endpoint,
                                        "full_unet": args.full_unet, "per_client": args.per_client,
                                        "summary": summary, "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
