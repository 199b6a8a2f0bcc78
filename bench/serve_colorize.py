"""Served /colorize (and /colorize_and_search) throughput and latency against the raw generator.

1. Raw generator: the `top` champion from the MLflow registry, loaded as serving loads it
   (TorchScript pyfunc, serving precision), images/s at batch 1, 8 and 16 — its best is the
   ceiling the service is compared with.
2. A real `bentoml serve service:API` on a free loopback port (or `--url` of a running one),
   driven by bench/loadgen.py at each concurrency with real val sketches as PNG uploads.
3. The same with adaptive batching off (`--no-batching` run: max_batch_size 1).

    python bench/serve_colorize.py --concurrency 1 8 32 --out bench/results/serve_colorize.json

Ratios (served ÷ raw) are taken within one run; absolute numbers move with machine load.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import run as run_load  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def val_sketch_pngs(data_dir: Path, category: str, size: int, n: int, seed: int = 0) -> list[bytes]:
    """Real val products drawn as a shopper would (edge map + simulated hints), as PNG bytes."""
    from sketch2fashion.catalog.embedder_training import load_products
    from sketch2fashion.catalog.evaluation import shopper_queries
    from sketch2fashion.data.manifest import read_manifest
    from sketch2fashion.imaging.io import encode_png
    from sketch2fashion.params import load_params

    by_id = {r["id"]: r["category"] for r in read_manifest(data_dir / "manifest.csv")}
    products = [p for p in load_products(data_dir, "val", size) if by_id[p.id] == category][:n]
    queries = shopper_queries(products, by_id, seed=seed, hint_params=load_params(ROOT / "params.yaml")["hints"])
    return [encode_png(q.sketch) for q in queries]


def raw_generator(category: str, size: int, batches: list[int], seconds: float = 6.0) -> dict:
    """images/s of the champion as served (pyfunc predict), per batch size."""
    import mlflow

    from sketch2fashion.registry.colorizer_model import blank_sketch_input
    from sketch2fashion.registry.promotion import registered_model_name
    from sketch2fashion.registry.tracking import configure

    configure(ROOT)
    model = mlflow.pyfunc.load_model(f"models:/{registered_model_name(category)}@champion")
    one = blank_sketch_input(size)
    out = {}
    for batch in batches:
        x = np.repeat(one, batch, axis=0)
        model.predict(x)  # warm-up
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            model.predict(x)
            n += batch
        out[batch] = {"img_per_s": round(n / (time.perf_counter() - started), 2),
                      "ms_per_batch": round(1000 * (time.perf_counter() - started) * batch / n, 1)}
    return out


@contextlib.contextmanager
def bento_server(overrides: dict, log_path: Path):
    """`bentoml serve` in this repo with params.yaml overridden by `overrides` (a temp params file)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in overrides.items():
        node = params
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, dir=ROOT / "bench") as fh:
        yaml.safe_dump(params, fh)
        params_file = Path(fh.name)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "S2F_PARAMS": str(params_file), "BENTOML_DO_NOT_TRACK": "True"}
    log = log_path.open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("bentoml")), "serve", "service:API",
                             "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            raise TimeoutError(f"service not ready in 180 s; see {log_path}")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        params_file.unlink(missing_ok=True)


def load_levels(url: str, endpoint: str, sketches: list[bytes], category: str, levels: list[int],
                per_client: int, max_seconds: float) -> list[dict]:
    def request(i: int) -> dict:
        return {"method": "POST", "url": f"/{endpoint}",
                "files": {"sketch": ("sketch.png", sketches[i % len(sketches)], "image/png")},
                "data": {"category": category}}

    rows = []
    for concurrency in levels:
        run_load(url, request, concurrency=concurrency, requests=concurrency, max_seconds=30)  # warm-up
        result = run_load(url, request, concurrency=concurrency, requests=max(16, per_client * concurrency),
                          max_seconds=max_seconds)
        rows.append({"endpoint": endpoint, **result.summary()})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--category", default="top")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--per-client", type=int, default=4, help="requests per client at each level")
    parser.add_argument("--max-seconds", type=float, default=90.0, help="per level")
    parser.add_argument("--endpoints", nargs="+", default=["colorize"],
                        choices=["colorize", "colorize_and_search"])
    parser.add_argument("--no-batching", action="store_true", help="also run with max_batch_size 1")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = parser.parse_args(argv)

    from sketch2fashion.params import load_params

    size = int(load_params(ROOT / "params.yaml")["image"]["size"])
    sketches = val_sketch_pngs(args.data_dir, args.category, size, n=16)
    raw = raw_generator(args.category, size, [1, 8, 16])
    print("raw generator:", json.dumps(raw), flush=True)
    report = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d %H:%M"), "category": args.category, "image_size": size,
              "raw_generator": raw, "served": [], "served_no_batching": []}
    runs = [("served", {})] + ([("served_no_batching", {"serving.batching.max_batch_size": 1})] if args.no_batching else [])
    for key, overrides in runs:
        with bento_server(overrides, Path(tempfile.gettempdir()) / f"s2f-bench-{key}.log") as url:
            for endpoint in args.endpoints:
                report[key] += load_levels(url, endpoint, sketches, args.category, args.concurrency,
                                           args.per_client, args.max_seconds)
    best_raw = max(v["img_per_s"] for v in raw.values())
    best_served = max((r["throughput_rps"] for r in report["served"] if r["endpoint"] == "colorize"), default=0.0)
    report["served_over_raw"] = round(best_served / best_raw, 3) if best_raw else None
    print(f"best raw {best_raw} img/s, best served /colorize {best_served} img/s: "
          f"served_over_raw {report['served_over_raw']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
