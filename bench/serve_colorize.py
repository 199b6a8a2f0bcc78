"""Served /colorize and /colorize_and_search throughput and latency, the baseline handler, overload.

Pieces (bench/run_all.py drives them; this file also runs on its own):

- `bento_server`: a real `bentoml serve service:API` on a free loopback port for a project root
  (this repository, or a scratch project), with params.yaml overrides in a temp file
  (`S2F_PARAMS`) and MLflow's URI variables removed, so it reads that project's registry.
- `full_unet_project`: a scratch project whose `top` champion is the full pix2pix U-Net (ngf 64,
  seeded random weights: speed only) and whose catalog is this repository's published index.
- `baseline_server`: bench/baseline_server.py (one fp32 eager forward per request, Starlette).
- `load_levels`: closed-loop load (bench/loadgen.py) at each concurrency with real val sketches.
- `overload`: open-loop Poisson arrivals at a multiple of the saturated rate.

    python -m bench.serve_colorize --concurrency 1 8 32 128 --out /tmp/serve.json

Ratios (served ÷ raw, served ÷ baseline) are taken within one run; absolute numbers move with
machine load.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml
from bench.loadgen import run as run_load  # noqa: E402
from bench.loadgen import run_open_raw  # noqa: E402

from sketch2fashion.serving.launcher import ServerProcess, bentoml_command, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


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


SERVER_PIDS: dict[str, int] = {}
"""url -> pid of the server process started for it (the bentoml arbiter, or the baseline)."""


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds user+system) of a process from /proc, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu(root_pid: int) -> dict[str, float]:
    """CPU seconds so far of a server and its worker processes, by role (BentoML --service-name)."""
    out: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None or (pid != root_pid and stat[0] != root_pid):
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = "server"
        if b"--service-name" in argv:
            name = argv[argv.index(b"--service-name") + 1].decode()
        elif pid == root_pid and b"bentoml" in b" ".join(argv):
            name = "bentoml-arbiter"
        out[name] = out.get(name, 0.0) + stat[1]
    return out


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without MLflow's URIs (a child finds its project's own store)
    and without OMP_WAIT_POLICY (the service's own `serving.omp_wait_policy` decides), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in (*MLFLOW_ENV, "OMP_WAIT_POLICY")}
    env["BENTOML_DO_NOT_TRACK"] = "True"
    env.update(extra or {})
    return env


def _set(params: dict, dotted: str, value) -> None:
    node = params
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


@contextlib.contextmanager
def _server_process(cmd: list[str], port: int, env: dict[str, str], ready_path: str, ready_timeout: float,
                    log_path: Path) -> Iterator[str]:
    """`cmd` (a server on loopback `port`) through the package's launcher, logging to `log_path`;
    yields its URL once `ready_path` answers 200 and stops the whole process group afterwards."""
    with ServerProcess(cmd, f"http://127.0.0.1:{port}", cwd=ROOT, env=env, log_path=log_path) as server:
        SERVER_PIDS[server.url] = server.pid
        try:
            server.wait_ready(ready_path, ready_timeout)
            yield server.url
        finally:
            SERVER_PIDS.pop(server.url, None)


@contextlib.contextmanager
def bento_server(overrides: dict | None = None, log_path: Path | None = None, *, project_root: Path = ROOT,
                 env: dict[str, str] | None = None, ready_timeout: float = 300.0) -> Iterator[str]:
    """`bentoml serve service:API` for `project_root`, params.yaml overridden by dotted `overrides`."""
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    for dotted, value in (overrides or {}).items():
        _set(params, dotted, value)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="s2f-bench-params-", delete=False) as fh:
        yaml.safe_dump(params, fh)
        params_file = Path(fh.name)
    port = free_port()
    extra = {"S2F_PARAMS": str(params_file), "S2F_PROJECT_ROOT": str(project_root), **(env or {})}
    cmd = bentoml_command("127.0.0.1", port)
    try:
        with _server_process(cmd, port, child_env(extra), "/readyz", ready_timeout,
                             log_path or Path(tempfile.gettempdir()) / f"s2f-bench-serve-{port}.log") as url:
            yield url
    finally:
        params_file.unlink(missing_ok=True)


@contextlib.contextmanager
def baseline_server(*, cfg: dict, weights: Path | None, threads: int = 2, log_path: Path | None = None,
                    env: dict[str, str] | None = None) -> Iterator[str]:
    """bench/baseline_server.py on a free loopback port, generator `cfg` (params `model:` settings)."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="s2f-bench-model-", delete=False) as fh:
        json.dump(cfg, fh)
        cfg_file = Path(fh.name)
    cmd = [sys.executable, "-m", "bench.baseline_server", "--port", str(port), "--config", str(cfg_file),
           "--threads", str(threads)] + (["--weights", str(weights)] if weights else [])
    try:
        with _server_process(cmd, port, child_env(env), "/ready", 120,
                             log_path or Path(tempfile.gettempdir()) / f"s2f-bench-baseline-{port}.log") as url:
            yield url
    finally:
        cfg_file.unlink(missing_ok=True)


@contextlib.contextmanager
def isolated_registry(root: Path) -> Iterator[None]:
    """Point MLflow at `root`'s store for the block; the previous URIs (and env) come back after."""
    import mlflow

    from sketch2fashion.registry.tracking import configure

    saved = {k: os.environ.pop(k, None) for k in MLFLOW_ENV}
    try:
        configure(root)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        mlflow.set_tracking_uri(saved.get("MLFLOW_TRACKING_URI"))
        mlflow.set_registry_uri(saved.get("MLFLOW_REGISTRY_URI"))


def full_unet_project(root: Path, *, ngf: int = 64, category: str = "top", seed: int = 0) -> Path:
    """A scratch project serving the full pix2pix U-Net (seeded random weights) for `category`.

    params.yaml is this repository's with `categories: [category]`, `model.ngf: ngf` and the
    catalog, index and classifier paths made absolute (the search runs on the real index).
    """
    import mlflow

    from sketch2fashion.params import load_params
    from sketch2fashion.registry.colorizer_model import log_colorizer
    from sketch2fashion.registry.promotion import promote, register_version
    from bench.generator_modes import random_generator

    root.mkdir(parents=True, exist_ok=True)
    params = load_params(ROOT / "params.yaml")
    size = int(params["image"]["size"])
    params["categories"] = [category]
    params["model"] = {**params["model"], "ngf": ngf}
    params["catalog"] = {**params["catalog"], "store": str(ROOT / params["catalog"]["store"]),
                         "index": str(ROOT / params["catalog"]["index"]), "url": ""}
    if params["serving"].get("classifier"):
        params["serving"]["classifier"] = str(ROOT / params["serving"]["classifier"])
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with isolated_registry(root):
        from sketch2fashion.registry.tracking import configure, get_or_create_experiment

        client = configure(root)
        experiment = get_or_create_experiment("bench-full-unet")
        with mlflow.start_run(experiment_id=experiment) as run:
            info = log_colorizer(random_generator(ngf, size, seed), category=category, image_size=size,
                                 model_config=params["model"])
        version = register_version(run.info.run_id, category, ssim=0.0, epoch=0, model_uri=info.model_uri)
        promote(client, category, version.version)
    return root


def sketch_request(endpoint: str, sketches: list[bytes], category: str):
    """i -> the multipart form of sketch i (mod len) as request kwargs.

    Each form is encoded once up front (httpx's own multipart encoder) and sent as bytes, so
    the load generator spends as little CPU per request as possible: on a 2-core machine every
    millisecond it spends is taken from the server it measures.
    """
    forms = []
    for png in sketches:
        built = httpx.Request("POST", f"http://127.0.0.1/{endpoint}", data={"category": category},
                              files={"sketch": ("sketch.png", png, "image/png")})
        forms.append((built.read(), built.headers["content-type"]))

    def request(i: int) -> dict:
        body, content_type = forms[i % len(forms)]
        return {"method": "POST", "url": f"/{endpoint}", "content": body, "headers": {"content-type": content_type}}

    return request


def warm_up(url: str, endpoint: str, sketches: list[bytes], category: str, concurrency: int = 16,
            requests: int = 48) -> float:
    """Untimed requests at several concurrencies, so each batch shape the sweep sees was built once;
    then waits until no champion compiles in the background. Returns the seconds it waited."""
    request = sketch_request(endpoint, sketches, category)
    for c in (1, concurrency // 2, concurrency):
        run_load(url, request, concurrency=max(1, c), requests=max(c, requests // 3), max_seconds=120,
                 timeout_s=300)
    with httpx.Client(timeout=300) as client:
        return wait_for_compiles(client, url)


def wait_for_compiles(client: httpx.Client, url: str, timeout: float = 1200.0) -> float:
    """Seconds until no champion is still compiling in the background (/models): a compile beside
    the measured requests would be measured too. A freshly started server compiles every one."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        answer = client.get(f"{url}/models")
        if answer.status_code != 200:  # the baseline handler: nothing compiles there
            return time.monotonic() - started
        models = answer.json().get("models", [])
        if not any("background" in str((m.get("compiled") or {}).get("why", "")) for m in models):
            return time.monotonic() - started
        time.sleep(2.0)
    raise TimeoutError(f"{url}: champions still compiling after {timeout:.0f} s")


def load_levels(url: str, endpoint: str, sketches: list[bytes], category: str, levels: list[int], *,
                per_client: int = 2, min_requests: int = 12, max_seconds: float = 60.0,
                log=print, probe=None) -> list[dict]:
    """One closed-loop run per concurrency level. `probe` (optional, called with the level's
    concurrency) runs just before each level, with the server idle, and its result is kept as the
    row's `raw_probe`: the raw generator timed in the same minute as the served figure."""
    request = sketch_request(endpoint, sketches, category)
    rows = []
    for concurrency in levels:
        raw = probe(concurrency) if probe else None
        with cpu_accounting(url) as cpu:
            result = run_load(url, request, concurrency=concurrency,
                              requests=max(min_requests, per_client * concurrency), max_seconds=max_seconds,
                              timeout_s=300)
        rows.append({"endpoint": endpoint, **result.summary(), **cpu.per_request(result.ok),
                     **({"raw_probe": raw} if raw else {})})
        log(json.dumps(rows[-1]))
    return rows


class _Cpu:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.wall = 0.0
        self.forward: tuple[float, float] | None = None
        """(forward seconds, sketches) the Colorizer reported during the block, if it exports them."""

    def per_request(self, ok: int) -> dict:
        """CPU ms per OK answer by process (client = this load generator), cores busy on average,
        and the Colorizer's forward-pass time per sketch and share of the wall time."""
        if not self.seconds or not ok:
            return {}
        out = {"cpu_ms_per_ok": {k: round(1000 * v / ok, 1) for k, v in sorted(self.seconds.items())},
               "cpu_ms_per_ok_total": round(1000 * sum(self.seconds.values()) / ok, 1),
               "cores_busy": round(sum(self.seconds.values()) / self.wall, 2) if self.wall else None}
        if self.forward and self.forward[1] and self.wall:
            out["forward_ms_per_img"] = round(1000 * self.forward[0] / self.forward[1], 1)
            out["forward_busy"] = round(self.forward[0] / self.wall, 2)
        return out


def forward_totals(url: str) -> tuple[float, float] | None:
    """(sum of s2f_forward_seconds, sum of s2f_batch_size) over categories from a Sketch2Fashion
    server's /metrics; None for servers without them (the baseline)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    seconds = sketches = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith("s2f_forward_seconds_sum"):
            seconds, found = seconds + float(line.rsplit(" ", 1)[1]), True
        elif line.startswith("s2f_batch_size_sum"):
            sketches += float(line.rsplit(" ", 1)[1])
    return (seconds, sketches) if found else None


@contextlib.contextmanager
def cpu_accounting(url: str) -> Iterator[_Cpu]:
    """CPU seconds spent by the server's processes and by this client during the block, and the
    Colorizer's forward-pass seconds (its /metrics, read before and after)."""
    import resource

    acc = _Cpu()
    pid = SERVER_PIDS.get(url)
    forward_before = forward_totals(url)
    before = process_cpu(pid) if pid else {}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    try:
        yield acc
    finally:
        acc.wall = time.perf_counter() - started
        after_usage = resource.getrusage(resource.RUSAGE_SELF)
        forward_after = forward_totals(url) if forward_before else None
        if forward_before and forward_after:
            acc.forward = (forward_after[0] - forward_before[0], forward_after[1] - forward_before[1])
        if pid:
            after = process_cpu(pid)
            acc.seconds = {k: after[k] - before.get(k, 0.0) for k in after}
        acc.seconds["client"] = (after_usage.ru_utime + after_usage.ru_stime) - (usage.ru_utime + usage.ru_stime)


def raw_sketch_request(url: str, endpoint: str, sketches: list[bytes], category: str):
    """i -> the complete HTTP/1.1 request bytes of sketch i (for loadgen.open_loop_raw)."""
    host = url.split("//", 1)[1]
    build = sketch_request(endpoint, sketches, category)
    raw = []
    for i in range(len(sketches)):
        kw = build(i)
        body = kw["content"]
        raw.append((f"POST /{endpoint} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {kw['headers']['content-type']}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n").encode("latin-1") + body)
    return lambda i: raw[i % len(raw)]


def overload(url: str, sketches: list[bytes], category: str, *, rate: float, seconds: float,
             endpoint: str = "colorize", log=print) -> dict:
    """Open-loop arrivals at `rate`/s for `seconds` (raw-socket client); then checks the server still answers."""
    request = sketch_request(endpoint, sketches, category)
    with cpu_accounting(url) as cpu:
        result = run_open_raw(url, raw_sketch_request(url, endpoint, sketches, category), rate=rate, seconds=seconds,
                              max_requests=int(rate * seconds * 2) + 10, timeout_s=300)
    row = {"endpoint": endpoint, **result.summary(), **cpu.per_request(result.ok)}
    time.sleep(2)
    alive = {"readyz": None, "colorize_after": None}
    with contextlib.suppress(httpx.HTTPError):
        alive["readyz"] = httpx.get(f"{url}/readyz", timeout=30).status_code
    with contextlib.suppress(httpx.HTTPError):
        started = time.perf_counter()
        r = httpx.post(f"{url}/{endpoint}", timeout=120, **{k: v for k, v in request(0).items()
                                                            if k not in ("method", "url")})
        alive["colorize_after"] = r.status_code
        alive["colorize_after_ms"] = round(1000 * (time.perf_counter() - started), 1)
    row["after"] = alive
    log(json.dumps(row))
    return row


def best_throughput(rows: list[dict], endpoint: str = "colorize") -> float:
    """The saturated rate: the highest steady (else whole-run) OK rate over the concurrency levels."""
    values = [r["steady_rps"] if r.get("steady_rps") is not None else r["throughput_rps"]
              for r in rows if r["endpoint"] == endpoint]
    return max(values, default=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--category", default="top")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--per-client", type=int, default=2, help="requests per client at each level")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per level")
    parser.add_argument("--endpoints", nargs="+", default=["colorize"], choices=["colorize", "colorize_and_search"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="params.yaml override for the server, e.g. serving.batching.max_batch_size=8")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment of the server, e.g. OMP_WAIT_POLICY=PASSIVE")
    parser.add_argument("--baseline", action="store_true", help="also load the baseline handler")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = parser.parse_args(argv)

    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    env = dict(item.split("=", 1) for item in args.env)
    sketches = val_sketch_pngs(args.data_dir, args.category, 256, n=16)
    report: dict = {"overrides": overrides, "env": env, "served": []}
    with bento_server(overrides, env=env) as url:
        for endpoint in args.endpoints:
            warm_up(url, endpoint, sketches, args.category)
            report["served"] += load_levels(url, endpoint, sketches, args.category, args.concurrency,
                                            per_client=args.per_client, max_seconds=args.max_seconds)
    if args.baseline:
        from bench.generator_modes import champion_checkpoint, champion_model_config, load_pyfunc

        from sketch2fashion.registry.tracking import configure

        configure(ROOT)
        cfg = champion_model_config(load_pyfunc(f"models:/colorizer-{args.category}@champion", "fp32"))
        with baseline_server(cfg=cfg, weights=champion_checkpoint(args.category)) as url:
            warm_up(url, "colorize", sketches, args.category, concurrency=8, requests=12)
            report["baseline"] = load_levels(url, "colorize", sketches, args.category, args.concurrency,
                                             per_client=args.per_client, max_seconds=args.max_seconds)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
