"""`make bench`: every performance figure of Sketch2Fashion in one run -> bench/results.json + bench/README.md.

Sections, in this order (ratios are only ever taken between figures of the same run):

1. machine   CPU, clock, flags, theoretical peak (bench/machine.py) and a measured GEMM ceiling.
2. generator images/s at batch 1, 8, 32 of the demo champion (ngf 32) and of the full pix2pix
             U-Net (ngf 64, random weights) in fp32, bf16 autocast, channels-last and the served
             pyfunc, uncompiled and torch.compile'd (bench/generator_modes.py); FLOPs by torch.utils.flop_counter.
3. ssim      val SSIM of every mode (champions of all categories), the fastest mode within 0.005
             of fp32, and the precision the service resolves (`serving.dtype: auto`).
4. train     training images/s per step, fp32 vs bf16 (bench/train_step.py).
5. serve     real `bentoml serve`: /colorize and /colorize_and_search at each concurrency, adaptive
             batching on and off, open-loop overload at 4x the saturated rate, and the baseline
             handler (bench/baseline_server.py); for the demo champions and the full U-Net.
6. search    catalog search p50/p99 at 10k / 100k (/ 1M last, bounded by the time budget)
             (bench/search_latency.py, dim 384).

    python -m bench.run_all                       # everything, 40-50 min on 2 cores
    python -m bench.run_all --skip-1m             # without the 1M-vector search build
    python -m bench.run_all --sections serve      # re-run one section, keep the others' figures
    python -m bench.run_all --render-only         # rewrite bench/README.md from bench/results.json

The top-level keys `served_over_raw`, `served_over_baseline` and `peak_fraction` are for the full
pix2pix U-Net (the target's definition); `by_model` has the same for the demo champion.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Before torch loads: OpenMP threads that sleep between parallel regions instead of spinning. On
# this shared 2-core machine the default spinning made the generator up to 30x slower (bench/NOTES.md
# item 4, bench/experiments/omp-malloc-probes.json); the service sets the same through
# `serving.omp_wait_policy`. Servers started below get the service's own setting, not this one.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

from sketch2fashion.serving.allocator import keep_freed_memory  # noqa: E402

# The Colorizer's malloc setting (`serving.keep_freed_memory`), so the raw generator timed here
# runs with what the served one runs with, and served / raw compares like with like.
MALLOC = keep_freed_memory()

from sketch2fashion.models.networks import GENERATOR_IN_CHANNELS  # noqa: E402 - imports torch: after the malloc setting

SECTIONS = ("machine", "generator", "ssim", "train", "serve", "lone", "search")
CHAMPION, FULL = "champion", "full_unet"
SSIM_TOLERANCE = 0.005
SERVING_PLOT = "serving.png"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- sections -------------------------------------------------------------------------------------

def machine_section() -> dict:
    from bench import machine

    m = machine.describe()
    gemm = machine.gemm_ceiling()
    return {"machine": m, "peak": machine.peak(m), "gemm_ceiling": {**gemm, "implied_clock_ghz": machine.implied_clock_ghz(m, gemm)}}


def generator_section(full_root: Path, category: str, batches: list[int], rounds: int, peaks: dict) -> dict:
    import torch
    from bench.generator_modes import flops_per_image
    from bench.generator_modes import (
        ALL_MODES, champion_checkpoint, champion_model_config, eager_generator, load_pyfunc, model_config,
        random_generator, served_pyfuncs, time_modes,
    )
    from bench.serve_colorize import isolated_registry

    from sketch2fashion.models.networks import count_parameters
    from sketch2fashion.registry.promotion import champion, registered_model_name
    from sketch2fashion.registry.tracking import configure

    size = 256
    uri = f"models:/{registered_model_name(category)}@champion"
    client = configure(ROOT)
    version = champion(client, category)
    reference = load_pyfunc(uri, "fp32")
    cfg = champion_model_config(reference)
    ngf = int(cfg.get("ngf", 64))
    models = {
        CHAMPION: {"description": f"demo champion colorizer-{category} v{version.version if version else '?'} "
                                  f"(ngf {ngf}, trained), from the MLflow registry",
                   "ngf": ngf, "config": cfg, "eager": eager_generator(champion_checkpoint(category), size, cfg),
                   "pyfuncs": served_pyfuncs(uri, ALL_MODES, batches), "seconds": 3.0},
    }
    with isolated_registry(full_root):
        full = served_pyfuncs(uri, ALL_MODES, batches)
    models[FULL] = {"description": "full pix2pix U-Net (ngf 64, seeded random weights: speed only), "
                                   "exported and loaded like a champion",
                    "ngf": 64, "config": model_config(64), "eager": random_generator(64, size), "pyfuncs": full,
                    "seconds": 4.0}
    out = {"image_size": size, "batches": batches, "rounds": rounds, "modes": list(ALL_MODES), "models": {},
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "torch_threads": torch.get_num_threads(),
           "malloc": MALLOC}
    for key, spec in models.items():
        flops = flops_per_image(spec["eager"], torch.zeros(1, GENERATOR_IN_CHANNELS, size, size))
        log(f"generator {key}: {flops / 1e9:.2f} GFLOP/image")
        rows = time_modes(spec["eager"], spec["pyfuncs"], size, batches, list(ALL_MODES), spec["seconds"], rounds,
                          1, flops, {"fp32": peaks["fp32_gflops"], "bf16": peaks["bf16_gflops"]}, log=log)
        best = max(rows, key=lambda r: r["img_per_s"])
        out["models"][key] = {"description": spec["description"], "ngf": spec["ngf"], "config": spec["config"],
                              "params_m": round(count_parameters(spec["eager"]) / 1e6, 2),
                              "gflop_per_image": round(flops / 1e9, 3), "rows": rows,
                              "best": {k: best[k] for k in ("mode", "batch", "img_per_s", "gflop_per_s", "peak_fraction")}}
    return out


def ssim_section(categories: list[str], generator: dict | None) -> dict:
    from bench.generator_modes import ALL_MODES, served_mode, ssim_by_mode

    from sketch2fashion.registry.tracking import configure

    configure(ROOT)
    scores = ssim_by_mode(categories, 256, list(ALL_MODES), log=log)
    fp32 = scores["mean"]["fp32"]
    allowed = [m for m in ALL_MODES if scores["mean"][m] >= fp32 - SSIM_TOLERANCE]
    out = {**scores, "tolerance": SSIM_TOLERANCE, "modes_within_tolerance": allowed}
    out["serving_default"] = served_mode()
    if generator:
        for key, model in generator["models"].items():
            best = {m: max(r["img_per_s"] for r in model["rows"] if r["mode"] == m) for m in ALL_MODES}
            fastest = max(allowed, key=best.get)
            out.setdefault("fastest_within_tolerance", {})[key] = {
                "mode": fastest, "img_per_s": best[fastest], "serving_mode_img_per_s": best[out["serving_default"]["mode"]],
                "serving_over_fastest": round(best[out["serving_default"]["mode"]] / best[fastest], 3)}
    return out


def train_section() -> dict:
    from bench import machine, train_step

    from sketch2fashion.params import load_params

    result = train_step.measure(load_params("params.yaml"), batch=8, steps=3, rounds=3)
    return train_step.with_ceilings(result, machine.gemm_ceiling())


def raw_probe_for(pyfunc_model, batch: int, seconds: float = 3.0):
    """A callable of the served level's concurrency timing `pyfunc_model.predict` at `batch` for
    ~`seconds` (img/s, cores busy); before the lone-request level (concurrency 1) it also times
    batch 1, the base of that level's latency limit, so the limit is taken in the same minute too.
    The model must be compiled for both sizes."""
    import numpy as np
    from bench.generator_modes import time_runner

    rng = np.random.default_rng(1)
    inputs = {b: rng.random((b, GENERATOR_IN_CHANNELS, 256, 256), dtype=np.float32) * 2 - 1 for b in {1, batch}}
    for x in inputs.values():
        pyfunc_model.predict(x)

    def timed(b: int) -> tuple[float, int, float]:
        return time_runner(lambda: pyfunc_model.predict(inputs[b]), b, seconds)

    def probe(concurrency: int) -> dict:
        rate, passes, busy = timed(batch)
        out = {"img_per_s": round(rate, 3), "batch": batch, "passes": passes, "cores_busy": round(busy, 2)}
        if concurrency == 1:
            out["batch1_ms"] = round(1000 / timed(1)[0], 1)
        return out

    return probe


def serve_section(full_root: Path, category: str, levels: list[int], baseline_levels: list[int],
                  overload_seconds: float, max_seconds: float, env: dict[str, str],
                  generator: dict | None = None) -> dict:
    from bench.serve_colorize import (
        baseline_server, bento_server, best_throughput, load_levels, overload, val_sketch_pngs, warm_up,
    )

    from bench.generator_modes import SERVED_MODES, champion_checkpoint, champion_model_config, load_pyfunc, model_config, served_mode

    from sketch2fashion.params import load_params
    from sketch2fashion.registry.tracking import configure

    from bench.serve_colorize import isolated_registry

    configure(ROOT)
    champion_cfg = champion_model_config(load_pyfunc(f"models:/colorizer-{category}@champion", "fp32"))
    serving = load_params(ROOT / "params.yaml")["serving"]
    # The raw generator in the serving mode at its best batch, timed just before each served
    # level (server idle): served / raw then compares figures taken minutes, not tens of minutes, apart.
    probes = {}
    mode = served_mode()["mode"]
    for key, uri_root in ((CHAMPION, ROOT), (FULL, full_root)):
        rows = [r for r in ((generator or {}).get("models", {}).get(key, {}).get("rows") or []) if r["mode"] == mode]
        batch = max(rows, key=lambda r: r["img_per_s"])["batch"] if rows else 8
        with isolated_registry(uri_root):
            model = load_pyfunc(f"models:/colorizer-{category}@champion", *SERVED_MODES[mode], batch_sizes=sorted({1, batch}))
        probes[key] = raw_probe_for(model, batch)
    sketches = val_sketch_pngs(ROOT / "data", category, 256, n=16)
    logs = Path(tempfile.gettempdir())
    kw = {"per_client": 12, "min_requests": 24, "max_seconds": max_seconds, "log": lambda m: log("  " + m)}
    out: dict = {"category": category, "levels": levels, "baseline_levels": baseline_levels, "env": env,
                 "serving_params": {k: serving.get(k) for k in ("dtype", "threads", "omp_wait_policy", "batching",
                                                                "traffic")},
                 "sketches": "16 val products of the category drawn as shoppers would (edges + simulated hints), 256 px PNG",
                 "baseline_env": {"OMP_WAIT_POLICY": "PASSIVE", "torch_threads": 2},
                 CHAMPION: {}, FULL: {}}
    baseline_env = {"OMP_WAIT_POLICY": "PASSIVE", **env}  # the same OpenMP fix as the service: a fair baseline

    log("serve: demo champions, adaptive batching on")
    with bento_server({}, logs / "s2f-bench-champion.log", env=env) as url:
        out[CHAMPION]["models_at_start"] = models_snapshot(url)
        rows = []
        for endpoint in ("colorize", "colorize_and_search"):
            # warm_up also waits for the background compiles: a compile beside a level was measured
            # as the Colorizer's CPU per image (up to 100 ms at one client, bench/NOTES.md item 18)
            out[CHAMPION].setdefault("waited_for_compiles_s", {})[endpoint] = round(
                warm_up(url, endpoint, sketches, category), 1)
            rows += load_levels(url, endpoint, sketches, category, levels, **kw,
                                probe=probes[CHAMPION] if endpoint == "colorize" else None)
        saturated = best_throughput(rows)
        log(f"serve: overload at 4 x {saturated:.1f} req/s for {overload_seconds:.0f} s")
        out[CHAMPION]["overload"] = {
            "saturated_rps": saturated, "multiple": 4.0,
            **overload(url, sketches, category, rate=4 * saturated, seconds=overload_seconds, log=kw["log"])}
        out[CHAMPION]["models_at_end"] = models_snapshot(url)
    out[CHAMPION]["batching"] = rows

    log("serve: demo champions, adaptive batching off (max_batch_size 1)")
    with bento_server({"serving.batching.max_batch_size": 1}, logs / "s2f-bench-nobatch.log", env=env) as url:
        rows = []
        for endpoint in ("colorize", "colorize_and_search"):
            warm_up(url, endpoint, sketches, category, concurrency=8, requests=12)
            rows += load_levels(url, endpoint, sketches, category, levels, **kw)
    out[CHAMPION]["no_batching"] = rows

    log("serve: baseline handler, demo champion weights (fp32 eager, one forward per request)")
    with baseline_server(cfg=champion_cfg, weights=champion_checkpoint(category),
                         log_path=logs / "s2f-bench-baseline.log", env=baseline_env) as url:
        warm_up(url, "colorize", sketches, category, concurrency=8, requests=12)
        out[CHAMPION]["baseline"] = load_levels(url, "colorize", sketches, category, baseline_levels, **kw)

    log("serve: full U-Net (ngf 64), adaptive batching on")
    with bento_server({}, logs / "s2f-bench-full.log", project_root=full_root, env=env) as url:
        warm_up(url, "colorize", sketches, category)
        out[FULL]["batching"] = load_levels(url, "colorize", sketches, category, levels, **kw, probe=probes[FULL])

    log("serve: baseline handler, full U-Net (ngf 64)")
    with baseline_server(cfg=model_config(64), weights=None, log_path=logs / "s2f-bench-baseline-full.log",
                         env=baseline_env) as url:
        warm_up(url, "colorize", sketches, category, concurrency=8, requests=12)
        out[FULL]["baseline"] = load_levels(url, "colorize", sketches, category, baseline_levels,
                                            **{**kw, "per_client": 3})
    return out


def lone_section(category: str, env: dict[str, str], idle_s: float = 90.0) -> dict:
    """bench/lone_shopper.py on the demo champions: one shopper, after idle and after a burst."""
    from bench.lone_shopper import run as lone_run
    from bench.serve_colorize import bento_server, val_sketch_pngs

    sketches = val_sketch_pngs(ROOT / "data", category, 256, n=8)
    with bento_server({}, Path(tempfile.gettempdir()) / "s2f-bench-lone.log", env=env) as url:
        return lone_run(url, sketches, category, rounds=30, think=0.3, idle=idle_s, burst=64)


def lone_summary(lone: dict | None) -> dict:
    """The lone-shopper figures results.json carries at the top: the slower phase's
    /colorize_and_search p50 and its limit (that phase's /colorize + /search p50 + 15 ms)."""
    if not lone:
        return {}
    phase = max(("after_idle", "after_burst"), key=lambda k: lone[k]["colorize_and_search"]["p50_ms"])
    cas, target = lone[phase]["colorize_and_search"], lone[phase]["target"]
    met = all(lone[k]["target"]["p50_met"] and lone[k]["target"]["p99_met"] for k in ("after_idle", "after_burst"))
    return {"lone_cas_p50_ms": cas["p50_ms"], "lone_cas_limit_ms": target["cas_p50_limit_ms"],
            "lone_cas_phase": phase, "lone_cas_targets_met": met}


def models_snapshot(url: str) -> list[dict]:
    """Which champion version served each category (GET /models): a promotion mid-run shows here."""
    import httpx

    try:
        return [{k: m.get(k) for k in ("category", "version", "epoch")}
                for m in httpx.get(f"{url}/models", timeout=30).json().get("models", [])]
    except Exception as exc:  # noqa: BLE001
        return [{"error": f"{type(exc).__name__}: {exc}"}]


def search_section(sizes: list[int], timeout_s: float, log_name: str) -> dict:
    """bench/search_latency.py in a subprocess (OMP_NUM_THREADS=1: queries single-threaded; build on 2)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out_path = Path(fh.name)
    cmd = [sys.executable, "-m", "bench.search_latency", "--dim", "384", "--threads", "2",
           "--query-threads", "1", "--sizes", *map(str, sizes), "--out", str(out_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    log_path = Path(tempfile.gettempdir()) / log_name
    with log_path.open("wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            return {"sizes": sizes, "finished": False, "timeout_s": round(timeout_s),
                    "note": f"did not finish within {timeout_s / 60:.1f} min on this machine (stopped); "
                            f"log: {log_path}"}
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        return {"sizes": sizes, "finished": False, "returncode": proc.returncode, "log": str(log_path)}
    data = json.loads(out_path.read_text())
    out_path.unlink(missing_ok=True)
    return {"sizes": sizes, "finished": True, "wall_s": round(elapsed, 1), "command": " ".join(
        ["OMP_NUM_THREADS=1", "python", "-m", "bench.search_latency", *cmd[3:-2]]), "results": data["results"]}


def _ceiling_note(results: dict) -> str:
    """How to read the nominal bf16 peak against the measured GEMM ceiling."""
    gemm = results.get("gemm_ceiling", {})
    bf16_peak = results.get("peak", {}).get("bf16_gflops") or 0.0
    if gemm.get("bf16_gflops") and gemm["bf16_gflops"] > bf16_peak:
        return (f"a bf16 GEMM above the nominal peak means the cores ran at ≥ {_f(gemm.get('implied_clock_ghz'), 2)} "
                "GHz (boost), so fractions of the nominal peak overstate; the GEMM ceiling is the realistic yardstick.")
    return ("the nominal bf16 peak is far above what even a large GEMM reaches here, so the GEMM ceiling is the "
            "realistic yardstick for the generator.")


# --- headline figures -----------------------------------------------------------------------------

def _level(rows: list[dict], endpoint: str, concurrency: int) -> dict | None:
    return next((r for r in rows if r["endpoint"] == endpoint and r["concurrency"] == concurrency), None)


def _best_row(rows: list[dict], endpoint: str = "colorize") -> dict | None:
    def rate(r):
        return r["steady_rps"] if r.get("steady_rps") is not None else r["throughput_rps"]

    rows = [r for r in rows if r["endpoint"] == endpoint]
    return max(rows, key=rate) if rows else None


def headline(results: dict) -> dict:
    """Top-level ratios and the targets, per model; the full U-Net's are the top-level keys."""
    from bench.serve_colorize import best_throughput

    gen, serve = results.get("generator"), results.get("serve")
    if not gen or not serve:
        return {}
    by_model = {}
    for key in (CHAMPION, FULL):
        model, served = gen["models"][key], serve[key]
        raw_best = max(r["img_per_s"] for r in model["rows"])
        raw_best_row = max(model["rows"], key=lambda r: r["img_per_s"])
        serving_mode = (results.get("ssim") or {}).get("serving_default", {}).get("mode", "compiled-bf16")
        raw_b1 = next(r for r in model["rows"] if r["mode"] == serving_mode and r["batch"] == 1)
        fp32_b1 = next(r for r in model["rows"] if r["mode"] == "fp32" and r["batch"] == 1)
        served_best = best_throughput(served["batching"])
        probes = [r["raw_probe"]["img_per_s"] for r in served["batching"]
                  if r["endpoint"] == "colorize" and r.get("raw_probe")]
        bracket = statistics.median(probes) if probes else None
        probe_batch = next((r["raw_probe"]["batch"] for r in served["batching"] if r.get("raw_probe")), None)
        baseline_best = best_throughput(served["baseline"])
        lone = _level(served["batching"], "colorize", 1)
        # The limit's batch-1 time: timed just before the lone level when the run did (a slow
        # minute then slows both sides alike), else the generator section's.
        lone_b1 = ((lone or {}).get("raw_probe") or {}).get("batch1_ms")
        b1_ms = lone_b1 or raw_b1["ms_per_img"]
        limit = 1.2 * b1_ms + 15.0
        no_batch = best_throughput(served["no_batching"]) if served.get("no_batching") else None
        best_served_row = _best_row(served["batching"]) or {}
        cpu = best_served_row.get("cpu_ms_per_ok") or {}
        server_cpu = sum(v for k, v in cpu.items() if k != "client") if cpu else None
        raw_cpu = 1000 * raw_best_row["cores_busy"] / raw_best_row["img_per_s"] if raw_best_row.get("cores_busy") else None
        colorizer_over_raw = colorizer_cpu_over_raw(best_served_row)
        api_cpu = api_cpu_ms_per_request(served["batching"])
        by_model[key] = {
            "colorizer_cpu_over_raw": colorizer_over_raw, "api_cpu_ms_per_request": api_cpu,
            "raw_best_cpu_ms_per_img": round(raw_cpu, 1) if raw_cpu else None,
            "raw_best_cores_busy": raw_best_row.get("cores_busy"),
            "served_cpu_ms_per_request": cpu, "served_cores_busy": best_served_row.get("cores_busy"),
            "served_forward_ms_per_img": best_served_row.get("forward_ms_per_img"),
            "served_forward_busy": best_served_row.get("forward_busy"),
            "served_best_level": best_served_row.get("concurrency"),
            "cpu_efficiency": round(raw_cpu / server_cpu, 3) if raw_cpu and server_cpu else None,
            "raw_best_img_per_s": raw_best, "raw_best": f"{raw_best_row['mode']} batch {raw_best_row['batch']}",
            "served_colorize_rps": served_best, "baseline_rps": baseline_best,
            "served_no_batching_rps": no_batch,
            "raw_fp32_batch1_img_per_s": fp32_b1["img_per_s"],
            "raw_best_over_raw_fp32_batch1": round(raw_best / fp32_b1["img_per_s"], 2),
            "raw_beside_served_img_per_s": round(bracket, 3) if bracket else None,
            "raw_beside_served": (f"{serving_mode} batch {probe_batch}, timed just before each served level "
                                  f"(median of {len(probes)})") if probes else None,
            "served_over_raw": round(served_best / (bracket or raw_best), 3) if (bracket or raw_best) else None,
            "served_over_raw_generator_section": round(served_best / raw_best, 3) if raw_best else None,
            "served_over_baseline": round(served_best / baseline_best, 2) if baseline_best else None,
            "peak_fraction": model["best"]["peak_fraction"],
            "lone_colorize_p50_ms": lone["p50_ms"] if lone else None,
            "raw_batch1_ms": b1_ms, "raw_batch1_mode": serving_mode,
            "raw_batch1_timed": "just before the lone level" if lone_b1 else "in the generator section",
            "raw_batch1_ms_generator_section": raw_b1["ms_per_img"],
            "lone_limit_ms": round(limit, 1),
            "targets": {
                "served_over_raw >= 0.85": bool(served_best / (bracket or raw_best) >= 0.85) if (bracket or raw_best) else None,
                "served_over_baseline >= 5": bool(served_best / baseline_best >= 5) if baseline_best else None,
                "lone p50 <= 1.2 x raw batch-1 + 15 ms": bool(lone and lone["p50_ms"] <= limit),
                "colorizer_cpu_over_raw <= 1.10": (colorizer_over_raw <= COLORIZER_CPU_LIMIT
                                                   if colorizer_over_raw is not None else None),
                "api_cpu_ms_per_request <= 8": (api_cpu["ms"] <= API_CPU_LIMIT_MS if api_cpu else None),
            },
        }
    gemm = results.get("gemm_ceiling") or {}
    for key, model in gen["models"].items():
        best = model["rows"] and max(model["rows"], key=lambda r: r["gflop_per_s"])
        dtype = "bf16" if "bf16" in best["mode"] else "fp32"
        ceiling = gemm.get(f"{dtype}_gflops")
        by_model[key]["best_gflop_per_s"] = best["gflop_per_s"]
        by_model[key]["gemm_ceiling_fraction"] = round(best["gflop_per_s"] / ceiling, 3) if ceiling else None
    full = by_model[FULL]
    return {"served_over_raw": full["served_over_raw"], "served_over_baseline": full["served_over_baseline"],
            "peak_fraction": full["peak_fraction"], "colorizer_cpu_over_raw": full["colorizer_cpu_over_raw"],
            "api_cpu_ms_per_request": (by_model[CHAMPION]["api_cpu_ms_per_request"] or {}).get("ms"),
            "by_model": by_model}


HEADLINE_KEYS = ("served_over_raw", "served_over_baseline", "peak_fraction", "colorizer_cpu_over_raw",
                 "api_cpu_ms_per_request")
"""The headline figures results.json also carries at its top level."""
COLORIZER_CPU_LIMIT = 1.10
API_CPU_LIMIT_MS = 8.0
API_CPU_LEVEL = 32
"""/colorize_and_search concurrency at which the API's own CPU per request is read (issue 18)."""


def colorizer_cpu_over_raw(row: dict) -> float | None:
    """Colorizer-process CPU ms per image at a served /colorize level ÷ the raw generator's CPU ms
    per image, timed in this process just before that level (`raw_probe`: the served mode at its
    best batch). Above 1: what the service adds around the forward pass (unpacking, pickling,
    HTTP, batching); served batches are often smaller than the probe's, which counts here too."""
    probe, cpu = row.get("raw_probe") or {}, (row.get("cpu_ms_per_ok") or {}).get("Colorizer")
    if not probe.get("cores_busy") or not probe.get("img_per_s") or not cpu:
        return None
    return round(cpu / (1000 * probe["cores_busy"] / probe["img_per_s"]), 3)


def api_cpu_ms_per_request(rows: list[dict]) -> dict | None:
    """API + Catalog CPU ms per /colorize_and_search answered at API_CPU_LEVEL clients (the nearest
    level run when that one was not), split by process."""
    levels = [r for r in rows if r["endpoint"] == "colorize_and_search" and r.get("cpu_ms_per_ok")]
    if not levels:
        return None
    row = min(levels, key=lambda r: abs(r["concurrency"] - API_CPU_LEVEL))
    parts = {k: row["cpu_ms_per_ok"].get(k, 0.0) for k in ("API", "Catalog")}
    return {"ms": round(sum(parts.values()), 1), **parts, "concurrency": row["concurrency"]}


# --- README ---------------------------------------------------------------------------------------

def _champion_ngf(results: dict) -> str:
    return str(((results.get("generator") or {}).get("models", {}).get(CHAMPION) or {}).get("ngf", "?"))


def _f(value, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def write_report(results: dict, readme: Path) -> None:
    """bench/README.md and, beside it, serving.png (bench/plots.py) drawn from the same results."""
    from bench.plots import plot_serving

    plot_serving(results, readme.with_name(SERVING_PLOT))
    readme.write_text(render_readme(results))


def render_readme(results: dict) -> str:
    m = results.get("machine", {})
    peak = results.get("peak", {})
    lines = ["# Benchmarks", "",
             "Generated by `make bench` (`python -m bench.run_all`) from `bench/results.json`; do not edit by hand "
             "(the analysis is in `bench/NOTES.md`, appended below). Every ratio is between figures of the same "
             "run: the machine is shared with other jobs, so absolute numbers move between runs, ratios much less.", ""]
    if m:
        full = results.get("full_run") or {}
        dates = results.get("section_dates") or {}
        lines += [f"- **Run**: last `make bench` run (all sections) {full.get('date', '–')}, "
                  f"{full.get('wall_minutes', '–')} min wall; sections last measured: "
                  + ", ".join(f"{k} {v[11:16]}" for k, v in dates.items())
                  + f" ({(list(dates.values()) or [results.get('date', '')])[0][:10]}, UTC). Load average at the "
                  f"machine section {', '.join(f'{x:.1f}' for x in m.get('loadavg', []))}: other jobs share "
                  "these cores.",
                  f"- **Machine**: {m.get('cpu_model')} (family {m.get('cpu_family')}, {m.get('hypervisor')} guest), "
                  f"{m.get('cores')} cores at {m.get('clock_mhz', 0) / 1000:.2f} GHz, flags "
                  f"{', '.join(m.get('flags', []))}; {m.get('memory_gib')} GiB; torch "
                  f"{m.get('versions', {}).get('torch')}, bentoml {m.get('versions', {}).get('bentoml')}.",
                  f"- **Device**: CPU only. GPU: {m.get('gpu')}.",
                  f"- **Peak**: {peak.get('derivation')}. Measured GEMM ceiling now: "
                  f"fp32 {_f(results.get('gemm_ceiling', {}).get('fp32_gflops'))} GFLOP/s, bf16 "
                  f"{_f(results.get('gemm_ceiling', {}).get('bf16_gflops'))} GFLOP/s "
                  f"({results.get('gemm_ceiling', {}).get('how')}); {_ceiling_note(results)}", ""]
    head = results.get("headline") or {}
    if head:
        lines += ["## Targets", "",
                  f"| | full pix2pix U-Net (ngf 64) | demo champion (ngf {_champion_ngf(results)}) |", "|---|---|---|"]
        bm = head["by_model"]
        f, c = bm[FULL], bm[CHAMPION]

        def yes(v):
            return "met" if v else "**not met**"

        rows = [
            ("raw generator best (img/s)", lambda x: f"{x['raw_best_img_per_s']:.2f} ({x['raw_best']})"),
            ("served /colorize saturated (req/s)", lambda x: f"{x['served_colorize_rps']:.2f}"),
            ("raw beside the served runs (img/s)", lambda x: f"{_f(x.get('raw_beside_served_img_per_s'), 2)} "
                                                            f"({x.get('raw_beside_served')})"),
            ("served ÷ raw ≥ 0.85", lambda x: f"{x['served_over_raw']:.2f} — {yes(x['targets']['served_over_raw >= 0.85'])} "
                                             f"(÷ the generator section's best: {_f(x.get('served_over_raw_generator_section'), 2)})"),
            ("baseline handler (req/s)", lambda x: f"{x['baseline_rps']:.2f}"),
            ("served ÷ baseline ≥ 5", lambda x: f"{x['served_over_baseline']:.2f}× — {yes(x['targets']['served_over_baseline >= 5'])}"),
            ("lone /colorize p50 ≤ 1.2 × raw batch-1 + 15 ms",
             lambda x: f"{_f(x['lone_colorize_p50_ms'])} ms vs {x['lone_limit_ms']:.1f} ms "
                       f"(raw {x['raw_batch1_mode']} batch 1: {x['raw_batch1_ms']:.1f} ms, timed "
                       f"{x.get('raw_batch1_timed', 'in the generator section')}) — "
                       f"{yes(x['targets']['lone p50 <= 1.2 x raw batch-1 + 15 ms'])}"),
            ("best GFLOP/s ÷ peak (÷ measured GEMM ceiling)",
             lambda x: f"{_f(x.get('best_gflop_per_s'))} GFLOP/s: "
                       f"{_f(x['peak_fraction'] * 100 if x['peak_fraction'] is not None else None)} % "
                       f"({_f(x['gemm_ceiling_fraction'] * 100 if x.get('gemm_ceiling_fraction') is not None else None)} %)"),
            ("cores busy: raw best / served best (server + load generator)",
             lambda x: f"{_f(x.get('raw_best_cores_busy'), 2)} / {_f(x.get('served_cores_busy'), 2)}"),
            ("forward pass per sketch, wall ms: raw best vs inside the service (share of time in forward passes)",
             lambda x: f"{_f(1000 / x['raw_best_img_per_s'])} vs {_f(x.get('served_forward_ms_per_img'))} "
                       f"({_f(x.get('served_forward_busy'), 2)})"),
            ("Colorizer CPU per image ÷ raw generator's (same level) ≤ 1.10",
             lambda x: f"{_f(x.get('colorizer_cpu_over_raw'), 2)} — "
                       f"{yes(x['targets'].get('colorizer_cpu_over_raw <= 1.10'))}"),
            ("API + Catalog CPU ms per /colorize_and_search ≤ 8",
             lambda x: (f"{x['api_cpu_ms_per_request']['ms']} (API {x['api_cpu_ms_per_request']['API']} + Catalog "
                        f"{x['api_cpu_ms_per_request']['Catalog']}, {x['api_cpu_ms_per_request']['concurrency']} "
                        f"clients) — {yes(x['targets'].get('api_cpu_ms_per_request <= 8'))}")
             if x.get("api_cpu_ms_per_request") else "– (not run for this model)"),
            ("CPU ms per image: raw best vs served by process",
             lambda x: f"{_f(x.get('raw_best_cpu_ms_per_img'))} vs "
                       + ", ".join(f"{k} {v}" for k, v in (x.get('served_cpu_ms_per_request') or {}).items()
                                   if v >= 0.5)),
        ]
        for label, fn in rows:
            lines.append(f"| {label} | {fn(f)} | {fn(c)} |")
        lines += ["", f"`results.json`: served_over_raw {head['served_over_raw']}, served_over_baseline "
                      f"{head['served_over_baseline']}, peak_fraction {head['peak_fraction']} (full U-Net). "
                      "Served = the best /colorize rate over the concurrency levels with adaptive batching; raw = "
                      "the generator in the serving mode (the pyfunc as served) at its best batch, timed in "
                      "this process just before each served level while the server sat idle (median), so both "
                      "saw the same machine load; the ratio to the generator section's best, timed minutes "
                      "earlier, is given too. Baseline = the best rate of the plain handler over its levels.", ""]
    gen = results.get("generator")
    ssim = results.get("ssim") or {}
    if gen:
        lines += ["## Generator (256 px, images/s: median of interleaved rounds, best round in brackets)", ""]
        for key, model in gen["models"].items():
            lines += [f"**{model['description']}** — {model['params_m']} M parameters, "
                      f"{model['gflop_per_image']:.2f} GFLOP per image (torch.utils.flop_counter, 2 FLOPs per MAC).", ""]
            batches = gen["batches"]
            lines.append("| mode | " + " | ".join(f"batch {b}" for b in batches) +
                         " | best GFLOP/s | % of peak | val SSIM |")
            lines.append("|---|" + "---|" * len(batches) + "---|---|---|")
            for mode in gen["modes"]:
                rows = {r["batch"]: r for r in model["rows"] if r["mode"] == mode}
                cells = [f"{rows[b]['img_per_s']:.2f} ({rows[b]['img_per_s_best']:.2f})" if b in rows else "–"
                         for b in batches]
                best = max(rows.values(), key=lambda r: r["img_per_s"])
                score = ssim.get("mean", {}).get(mode) if key == CHAMPION else None
                lines.append(f"| {mode} | " + " | ".join(cells) + f" | {best['gflop_per_s']:.1f} | "
                             f"{_f(best['peak_fraction'] * 100 if best['peak_fraction'] is not None else None)} | "
                             f"{_f(score, 4) if score is not None else '(random weights)'} |")
            lines.append("")
        lines += ["Modes: fp32 / bf16 = eager NCHW without / with bf16 autocast; cl+ = channels-last; export-fp32 / export-bf16 = "
                  "the registered MLflow pyfunc (torch.export program) as served uncompiled (`pyfunc.predict` on numpy, "
                  "conversion included); compiled-bf16 = the same, torch.compile'd (Inductor, frozen weights) at load "
                  "for the batch sizes timed, as `serving.compile: auto` serves it. "
                  "% of peak: fp32 modes against the fp32 peak, bf16 modes against the bf16 peak.", ""]
    if ssim:
        fastest = ssim.get("fastest_within_tolerance", {})
        default = ssim.get("serving_default", {})
        lines += [f"**Precision choice** (val SSIM over {ssim.get('n')} val items of all categories, each by its "
                  f"champion): fp32 {ssim['mean']['fp32']:.4f}; modes within {ssim['tolerance']} of fp32: "
                  f"{', '.join(ssim['modes_within_tolerance'])}. "
                  + " ".join(f"Fastest of those for the {k.replace('_', ' ')}: **{v['mode']}** ({v['img_per_s']:.2f} img/s, "
                             f"median at its best batch); the served mode reaches {v['serving_over_fastest']:.2f}× of it."
                             for k, v in fastest.items())
                  + " (The full U-Net has random weights: its modes are judged by the champions' SSIM.)"
                  + f" `serving.dtype: {default.get('serving.dtype')}` resolves to **{default.get('resolves_to')}** on this "
                  f"CPU (served mode {default.get('mode')}).", ""]
    train = results.get("train")
    if train and "rows" in train:
        gemm = train.get("gemm", {})
        lines += ["## Training step (bench/train_step.py)", "",
                  f"Whole colorizer training steps at {train['size']} px, batch {train['batch']}, median of "
                  f"{train['rounds']} rounds; FLOPs counted per step (forward + backward, the PatchGAN's too when "
                  f"it trains) against the GEMM ceilings measured beside them (fp32 {_f(gemm.get('fp32_gflops'))}, "
                  f"bf16 {_f(gemm.get('bf16_gflops'))} GFLOP/s). `current` is params.yaml's colorizer, `earlier` the "
                  f"demo colorizer it replaced (ngf 32 at full size, transposed convs, PatchGAN).", "",
                  "| model | precision | img/s | GFLOP/image | GFLOP/s | share of GEMM ceiling |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['precision']} | {r['img_per_s']:.2f} | {r['gflops_per_image']:.2f} | "
                  f"{r['achieved_gflops']:.1f} | {_f(r.get('share_of_gemm_ceiling'), 3)} |" for r in train["rows"]]
        lines += ["", f"current ÷ earlier: " + ", ".join(f"{p} **{v:.1f}×**" for p, v in train["current_over_earlier"].items())
                  + (f"; the data loader alone: {train['loader_items_per_s']:.1f} training items/s in one process."
                     if train.get("loader_items_per_s") else "."), ""]
    serve = results.get("serve")
    if serve:
        sp = serve.get("serving_params", {})
        lines += ["## Service (real `bentoml serve`, loopback, httpx async closed loop)", "",
                  f"![Served /colorize throughput and p99 latency against concurrent clients]({SERVING_PLOT})", "",
                  f"Serving params: dtype {sp.get('dtype')}, threads {sp.get('threads')}, batching "
                  f"{sp.get('batching')}, traffic {sp.get('traffic')}; environment {serve.get('env') or '{}'}. "
                  f"Sketches: {serve.get('sketches')}. Throughput = OK answers/s while all clients were busy "
                  f"(whole-run rate in brackets; – where the run had no such window); refused clients wait 1 s "
                  f"before their next request. CPU ms/req: CPU time of each server process and of the load "
                  f"generator (client) per OK answer; API = parsing, decoding, preprocessing, PNG encoding.", "",
                  "| model | setup | endpoint | concurrency | req/s | p50 ms | p95 ms | p99 ms | answers | CPU ms/req "
                  "| forward ms/sketch (busy) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        names = {CHAMPION: "champion ngf 32", FULL: "full U-Net ngf 64"}
        setups = {"batching": "adaptive batching", "no_batching": "batching off", "baseline": "baseline handler"}
        for key in (CHAMPION, FULL):
            for setup in ("batching", "no_batching", "baseline"):
                for r in serve.get(key, {}).get(setup, []):
                    rate = r["steady_rps"] if r.get("steady_rps") is not None else None
                    answers = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
                    if r.get("errors"):
                        answers += ", " + ", ".join(f"{k}: {v}" for k, v in r["errors"].items())
                    cpu = ", ".join(f"{k} {v:.0f}" for k, v in (r.get("cpu_ms_per_ok") or {}).items() if v >= 0.5)
                    lines.append(f"| {names[key]} | {setups[setup]} | /{r['endpoint']} | {r['concurrency']} | "
                                 f"{_f(rate, 2)} ({r['throughput_rps']:.2f}) | {_f(r['p50_ms'])} | {_f(r['p95_ms'])} | "
                                 f"{_f(r['p99_ms'])} | {answers} | {cpu} | "
                                 f"{_f(r.get('forward_ms_per_img'))} ({_f(r.get('forward_busy'), 2)}) |")
        over = serve.get(CHAMPION, {}).get("overload")
        if over:
            lines += ["", f"**Overload** (open loop, Poisson arrivals at {over['multiple']:.0f} × the saturated "
                          f"{over['saturated_rps']:.1f} req/s = {over['offered_rps']:.1f} req/s for "
                          f"{over['seconds']:.0f} s incl. drain, demo champions): {over['requests']} sent; answers "
                          f"{', '.join(f'{k}: {v}' for k, v in over['statuses'].items())}"
                          f"{'; transport errors ' + str(over['errors']) if over['errors'] else '; no transport errors'}. "
                          f"Accepted: {over['ok']} at {over['throughput_rps']:.2f} req/s, p50 {_f(over['p50_ms'])} ms, "
                          f"p99 {_f(over['p99_ms'])} ms, max {_f(over['max_ms'])} ms. Refused (429/503): p50 "
                          f"{_f(over['refused_p50_ms'])} ms, p99 {_f(over['refused_p99_ms'])} ms. After: /readyz "
                          f"{over['after'].get('readyz')}, a /colorize {over['after'].get('colorize_after')} in "
                          f"{_f(over['after'].get('colorize_after_ms'))} ms. CPU per accepted request: "
                          f"{', '.join(f'{k} {v:.0f} ms' for k, v in (over.get('cpu_ms_per_ok') or {}).items() if v >= 0.5)}; "
                          f"cores busy {_f(over.get('cores_busy'), 2)} (load average at the end of the run: "
                          f"{', '.join(f'{x:.1f}' for x in results.get('loadavg_end', []))}).", ""]
    lone = results.get("lone")
    if lone:
        lines += ["## A lone shopper (bench/lone_shopper.py)", "",
                  f"One client on the demo champions (adaptive batching on), `/colorize`, `/search` (with the photo "
                  f"`/colorize` made) and `/colorize_and_search` in turn, {lone['think_s']} s apart, {lone['rounds']} "
                  f"rounds, after {lone['idle_s']:.0f} s idle and right after {lone['burst']['requests']} "
                  f"`/colorize_and_search` requests from 16 clients ({lone['burst']['ok']} answered 200). Target: "
                  "`/colorize_and_search` p50 ≤ `/colorize` p50 + `/search` p50 + 15 ms, p99 ≤ 2 × its p50.", "",
                  "| phase | /colorize p50 / p99 ms | /search p50 / p99 | /colorize_and_search p50 / p99 | limit | met |",
                  "|---|---|---|---|---|---|"]
        for phase in ("after_idle", "after_burst"):
            row = lone[phase]

            def pair(e, row=row):
                return f"{row[e]['p50_ms']:.1f} / {row[e]['p99_ms']:.1f}"
            met = row["target"]["p50_met"] and row["target"]["p99_met"]
            lines.append(f"| {phase.replace('_', ' ')} | {pair('colorize')} | {pair('search')} | "
                         f"{pair('colorize_and_search')} | {row['target']['cas_p50_limit_ms']:.1f} | "
                         f"{'met' if met else '**not met**'} |")
        lines.append("")
    search = results.get("search")
    if search:
        lines += ["## Catalog search (synthetic clustered vectors, dim 384 = 128 encoder + 256 colour bins)", "",
                  f"Measured {search.get('date') or results.get('date')}; 1,000 held-out queries per size, one at a "
                  "time; efSearch = the smallest of 16/32/64/128/256 reaching recall@10 ≥ 0.95 against exact search.", "",
                  "| products | index | build s | efSearch | p50 ms | p99 ms | recall@10 | exact p99 ms |",
                  "|---|---|---|---|---|---|---|---|"]
        for part in search.get("runs", []):
            if part.get("finished"):
                for r in part["results"]:
                    c = r["chosen"]
                    lines.append(f"| {r['n']:,} | {'/'.join(r['kinds'])} | {r['build_s']:.1f} | {c['ef_search']} | "
                                 f"{c['p50_ms']:.3f} | {c['p99_ms']:.3f} | {c['recall_at_k']:.3f} | {r['exact_p99_ms']:.3f} |")
            else:
                lines.append(f"| {', '.join(f'{n:,}' for n in part['sizes'])} | – | – | – | – | – | – | "
                             f"{part.get('note') or part.get('skipped') or 'failed'} |")
        commands = [f"`{part['command']}`" for part in search.get("runs", []) if part.get("command")]
        if commands:
            lines += ["", " and ".join(commands) + " (queries one at a time, as the app calls it).", ""]
    lines += ["## GPU", "", "No GPU in this run (and CI never has one): every figure above is CPU.", ""]
    notes = BENCH / "NOTES.md"
    if notes.is_file():
        lines += [notes.read_text().strip(), ""]
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--skip-1m", action="store_true", help="skip the 1M-vector search build")
    parser.add_argument("--budget-minutes", type=float, default=50.0,
                        help="whole-run budget: the 1M search gets what is left of it, at most --search-1m-minutes")
    parser.add_argument("--search-1m-minutes", type=float, default=25.0)
    parser.add_argument("--search-sizes", type=int, nargs="+", default=[10_000, 100_000],
                        help="catalog sizes of the search section (the 1M run is separate: --skip-1m)")
    parser.add_argument("--category", default="top")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--baseline-levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--level-seconds", type=float, default=45.0, help="max seconds of sending per level")
    parser.add_argument("--overload-seconds", type=float, default=15.0)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the servers (e.g. OMP_WAIT_POLICY=PASSIVE)")
    parser.add_argument("--out", type=Path, default=BENCH / "results.json")
    parser.add_argument("--readme", type=Path, default=BENCH / "README.md")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)

    results: dict = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.render_only:  # the headline is derived from the sections: recomputed, so a new row needs no re-run
        if results.get("headline"):
            results["headline"] = headline(results)
            results.update({k: results["headline"].get(k) for k in HEADLINE_KEYS})
            args.out.write_text(json.dumps(results, indent=2) + "\n")
        write_report(results, args.readme)
        return 0
    if set(args.sections) != set(SECTIONS):
        log(f"partial run ({', '.join(args.sections)}): other sections keep their figures from {args.out}")
    else:
        results = {}
    started = time.perf_counter()
    results["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    results["sections_run"] = args.sections
    results["command"] = "python -m bench.run_all " + " ".join(argv if argv is not None else sys.argv[1:])
    timings: dict[str, float] = {}

    def timed(name: str, fn, *a, **kw):
        t0 = time.perf_counter()
        results.setdefault("section_dates", {})[name] = time.strftime("%Y-%m-%d %H:%M %Z")
        log(f"== {name}")
        value = fn(*a, **kw)
        timings[name] = round(time.perf_counter() - t0, 1)
        log(f"== {name} done in {timings[name]:.0f} s")
        return value

    from sketch2fashion.params import categories, load_params

    params = load_params(ROOT / "params.yaml")
    if "machine" in args.sections or "peak" not in results:
        results.update(timed("machine", machine_section))
    env = dict(item.split("=", 1) for item in args.env)
    need_full = {"generator", "serve"} & set(args.sections)
    with tempfile.TemporaryDirectory(prefix="s2f-bench-") as tmp:
        full_root = Path(tmp) / "full-unet"
        if need_full:
            from bench.serve_colorize import full_unet_project

            timed("full U-Net project", full_unet_project, full_root, category=args.category)
        if "generator" in args.sections:
            results["generator"] = timed("generator", generator_section, full_root, args.category, args.batches,
                                         args.rounds, results["peak"])
        if "ssim" in args.sections:
            results["ssim"] = timed("ssim", ssim_section, list(categories(params)), results.get("generator"))
        if "train" in args.sections:
            results["train"] = timed("train", train_section)
        if "serve" in args.sections:
            results["serve"] = timed("serve", serve_section, full_root, args.category, args.levels,
                                     args.baseline_levels, args.overload_seconds, args.level_seconds, env,
                                     results.get("generator"))
    if "lone" in args.sections:
        results["lone"] = timed("lone", lone_section, args.category, env)
    if "search" in args.sections:
        label = "search " + "/".join(f"{n // 1000}k" for n in args.search_sizes)
        runs = [timed(label, search_section, args.search_sizes, 20 * 60, "s2f-bench-search.log")]
        if args.skip_1m:
            runs.append({"sizes": [1_000_000], "finished": False, "skipped": "skipped (--skip-1m)"})
        else:
            left = args.budget_minutes * 60 - (time.perf_counter() - started) - 60
            limit = min(args.search_1m_minutes * 60, left)
            if limit < 120:
                runs.append({"sizes": [1_000_000], "finished": False,
                             "skipped": f"skipped: {max(0.0, left) / 60:.1f} min of the {args.budget_minutes:.0f}-min budget left"})
            else:
                log(f"search 1M: up to {limit / 60:.1f} min")
                runs.append(timed("search 1M", search_section, [1_000_000], limit, "s2f-bench-search-1m.log"))
        results["search"] = {"runs": runs, "date": time.strftime("%Y-%m-%d %H:%M %Z")}
    results["section_seconds"] = {**results.get("section_seconds", {}), **timings}
    results["loadavg_end"] = list(os.getloadavg())
    results["wall_minutes"] = round((time.perf_counter() - started) / 60, 1)
    if set(args.sections) == set(SECTIONS):
        results["full_run"] = {"date": results["date"], "wall_minutes": results["wall_minutes"],
                               "skip_1m": args.skip_1m}
    results["device"] = "cpu (no GPU in this session; CI never has one)"
    results["headline"] = headline(results)
    results.update({k: results["headline"].get(k) for k in HEADLINE_KEYS})
    results.update(lone_summary(results.get("lone")))
    ordered = {k: results[k] for k in ("served_over_raw", "served_over_baseline", "peak_fraction", "date", "device")}
    ordered.update({k: v for k, v in results.items() if k not in ordered})
    args.out.write_text(json.dumps(ordered, indent=2) + "\n")
    write_report(ordered, args.readme)
    log(f"wrote {args.out} and {args.readme} ({ordered['wall_minutes']} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
