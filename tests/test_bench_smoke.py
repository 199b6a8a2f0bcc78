"""`make bench` cannot rot: its harness runs in CI, tiny (seconds of measuring, not the 45 minutes).

- `python -m bench.run_all` measures the machine and a 1k-vector catalog search into a scratch
  results.json and renders its README;
- the README renders from the committed bench/results.json (every section and target row);
- the served pieces (a load level with every process's CPU per request, the lone shopper after
  idle and after a burst) run against a real `bentoml serve` of a tiny project.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from serving_fixtures import ROOT, BentoServer, make_project, sketch_png
from waiting import HANG_SECONDS

pytestmark = pytest.mark.slow


def run_bench(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.run_all", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_a_tiny_make_bench_measures_the_machine_and_search_and_renders(tmp_path):
    out, readme = tmp_path / "results.json", tmp_path / "README.md"
    run_bench("--sections", "machine", "search", "--skip-1m", "--search-sizes", "1000",
              "--out", str(out), "--readme", str(readme))
    results = json.loads(out.read_text())
    assert results["peak"]["fp32_gflops"] > 0 and results["gemm_ceiling"]["fp32_gflops"] > 0
    measured = results["search"]["runs"][0]
    assert measured["finished"], measured
    assert [row["n"] for row in measured["results"]] == [1000]
    text = readme.read_text()
    assert text.startswith("# Benchmarks") and results["machine"]["cpu_model"] in text


def test_the_committed_figures_render_with_every_target(tmp_path):
    out, readme = tmp_path / "results.json", tmp_path / "README.md"
    shutil.copy(ROOT / "bench" / "results.json", out)
    run_bench("--render-only", "--out", str(out), "--readme", str(readme))
    text = readme.read_text()
    for row in ("served ÷ raw ≥ 0.85", "served ÷ baseline ≥ 5", "Colorizer CPU per image ÷ raw generator's",
                "API + Catalog CPU ms per /colorize_and_search ≤ 8", "## A lone shopper"):
        assert row in text, row
    results = json.loads(out.read_text())
    assert {"colorizer_cpu_over_raw", "api_cpu_ms_per_request", "lone_cas_p50_ms"} <= set(results)


def test_the_served_pieces_measure_a_real_server(tmp_path):
    from bench.lone_shopper import run as lone_run
    from bench.serve_colorize import SERVER_PIDS, load_levels

    project = make_project(tmp_path / "project", colorizer="service", compile="off")
    sketches = [sketch_png(128, hints=2), sketch_png(128, hints=1)]
    with BentoServer(project, tmp_path / "serve.log") as server:
        SERVER_PIDS[server.url] = server.pid  # whose processes' CPU the level reads
        try:
            row, = load_levels(server.url, "colorize_and_search", sketches, "top", [2], per_client=3,
                               min_requests=6, max_seconds=60, log=lambda _line: None)
            lone = lone_run(server.url, sketches, "top", rounds=3, think=0.0, idle=0.0, burst=4)
        finally:
            SERVER_PIDS.pop(server.url, None)
    assert row["ok"] == row["requests"] == 6, row
    assert {"API", "Colorizer", "Catalog", "client"} <= set(row["cpu_ms_per_ok"]), row
    assert row["cpu_ms_per_ok"]["API"] > 0 and row["cpu_ms_per_ok"]["Colorizer"] > 0
    for phase in ("after_idle", "after_burst"):
        for endpoint in ("colorize", "search", "colorize_and_search"):
            assert lone[phase][endpoint]["p50_ms"] > 0, (phase, endpoint)
    assert lone["burst"]["ok"] == 4
