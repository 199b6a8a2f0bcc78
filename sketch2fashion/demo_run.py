"""`s2f demo` (what `make demo` runs): the pipeline, with the page up as soon as it can draw.

Nobody evaluating the project should wait for four colorizers before seeing a garment. So the
pipeline runs in two waves of `dvc repro`:

1. the first category's champion: all the page needs to draw a garment;
2. then `bentoml serve` starts, and the rest of the pipeline runs beside it, in the order a
   shopper gains most from: the catalog index (products beside the garment), each later
   category's champion one after the other (`dvc repro` alone would train all of them before
   evaluating any), then everything else (the sketch classifier behind `category=auto`, the
   search evaluation). Champions and the classifier reach the page through the service's
   registry poll, the index through its index poll. Until a category has a champion the page
   says it is still training (with its progress); until the index exists it shows the garment
   alone, saying why there are no products yet.

The times to the page, to its first garment (a real request, as the page sends it) and to all
champions are printed and written to `reports/demo/timing.json`, so the figures in the README
come from this code. The service stays in the foreground afterwards, as `make serve` would.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

from sketch2fashion.params import categories, load_params
from sketch2fashion.pipeline import tool_env
from sketch2fashion.serving.launcher import BentoServe, ServerProcess

TIMING_REPORT = Path("reports/demo/timing.json")
READY_TIMEOUT_S = 1800.0
"""The longest the runner waits for the service to show its first champion (a hang, not a slow CPU)."""


@dataclass
class DemoTiming:
    """Seconds since `s2f demo` started, for each thing a newcomer waits for."""

    first_wave_s: float | None = None
    page_s: float | None = None
    first_garment_s: float | None = None
    all_champions_s: float | None = None
    pipeline_s: float | None = None
    """Everything done: the classifier behind `category=auto` and the search evaluation too."""
    first_garment_products: bool | None = None
    """Whether the first garment came with products (False: the catalog was still being indexed)."""
    first_category: str = ""
    cpu: str = ""
    notes: list[str] = field(default_factory=list)


def first_wave(names: Sequence[str]) -> list[str]:
    """The stages the page needs before it can draw a garment: one champion."""
    return [f"promote@{names[0]}"]


def later_waves(names: Sequence[str]) -> list[list[str]]:
    """What runs beside the service, in order; the last wave (no targets) is the whole pipeline."""
    return [["index"], *([f"promote@{name}"] for name in names[1:]), []]


def example_drawing(size: int = 512) -> bytes:
    """A t-shirt outline with three red dots, as the page's pen draws it (PNG bytes)."""
    import cv2

    page = np.full((size, size, 3), 255, np.uint8)
    outline = np.array([(0.38, 0.17), (0.5, 0.245), (0.62, 0.17), (0.8, 0.24), (0.93, 0.4), (0.82, 0.47),
                        (0.74, 0.39), (0.74, 0.85), (0.26, 0.85), (0.26, 0.39), (0.18, 0.47), (0.07, 0.4),
                        (0.2, 0.24)]) * size
    cv2.polylines(page, [outline.astype(np.int32)], True, (0, 0, 0), max(2, size // 128))
    for x, y in ((0.5, 0.55), (0.38, 0.72), (0.62, 0.4)):
        cv2.circle(page, (int(x * size), int(y * size)), max(3, size // 70), (40, 36, 224), -1)  # BGR red
    ok, png = cv2.imencode(".png", page)
    return png.tobytes()


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self) -> float:
        return round(time.monotonic() - self.start, 1)


def run_demo(root: Path, *, host: str = "127.0.0.1", port: int = 3000, serve: bool = True,
             echo: Callable[[str], None] = print) -> DemoTiming:
    """Run both waves and the service; returns the timing (the service keeps running when `serve`)."""
    params = load_params(root / "params.yaml")
    names = categories(params)
    clock = Stopwatch()
    timing = DemoTiming(first_category=names[0], cpu=cpu_name())
    echo(f"s2f demo: first wave ({', '.join(first_wave(names))})")
    _dvc(root, "repro", *first_wave(names))
    timing.first_wave_s = clock()
    server = BentoServe(root, host=host, port=port, env=tool_env(), cwd=root).start()
    url = server.url
    try:
        _wait_for_champion(url, names[0], server)
        timing.page_s = clock()
        echo(f"s2f demo: the page is up at {url} after {timing.page_s:.0f} s; later garments appear as they finish")
        timing.first_garment_products = "products" in first_garment(url, names[0])
        timing.first_garment_s = clock()
        echo(f"s2f demo: first garment drawn after {timing.first_garment_s:.0f} s")
        watcher = threading.Thread(target=_note_all_champions, args=(url, names, server, timing, clock, echo),
                                   daemon=True)
        watcher.start()  # the time to all champions is when the service shows them, not when dvc ends
        for targets in later_waves(names):
            echo(f"s2f demo: dvc repro {' '.join(targets) or '(the rest)'}")
            _dvc(root, "repro", *targets)
        timing.pipeline_s = clock()
        echo(f"s2f demo: the whole pipeline done after {timing.pipeline_s:.0f} s")
        watcher.join()
        if timing.all_champions_s is None:
            raise RuntimeError("the service did not show every champion; see its log above")
        _write_timing(root, timing)
        if serve:
            echo(f"s2f demo: serving on {url} (Ctrl+C stops)")
            server.wait()
    except KeyboardInterrupt:
        echo("s2f demo: stopping the service")
    finally:
        server.stop()
    return timing


def first_garment(url: str, category: str, timeout: float = 300.0) -> dict:
    """Ask the running service for a garment as the page does (colorize_and_search; the garment
    alone from /colorize when the search answers 503); raise unless it draws one. Returns the
    colorize_and_search answer, or {"image_type": ...} without `products` for the garment alone."""
    sketch = {"sketch": ("sketch.png", example_drawing(), "image/png")}
    form = {"category": category, "format": "jpeg"}
    response = httpx.post(f"{url}/colorize_and_search", files=sketch, data=form, timeout=timeout)
    if response.status_code == 503:
        response = httpx.post(f"{url}/colorize", files=sketch, data=form, timeout=timeout)
        if response.status_code == 200:
            return {"image_type": response.headers.get("content-type")}
    if response.status_code != 200:
        raise RuntimeError(f"the page's first request failed: HTTP {response.status_code} {response.text[:200]}")
    return response.json()


def cpu_name() -> str:
    """The CPU's model name, its widest vector unit, its core count and any oneDNN cap: what every
    timing in the README is reported beside (a VM's model name alone, "AMD EPYC", says little)."""
    name, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name == "unknown":
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = next((label for flag, label in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"),
                                          ("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), "")
    parts = [name, isa, f"{os.cpu_count()} cores"]
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip()
    if cap:
        parts.append(f"ONEDNN_MAX_CPU_ISA={cap}")
    return ", ".join(p for p in parts if p)


def _dvc(root: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=tool_env())
    if proc.returncode != 0:
        raise RuntimeError(f"`dvc {' '.join(args)}` failed (exit {proc.returncode}); see its output above")


def _models(url: str) -> dict[str, dict]:
    try:
        rows = httpx.get(f"{url}/models", timeout=10).json()["models"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return {}
    return {row["category"]: row for row in rows}


def _wait(url: str, server: ServerProcess, done: Callable[[dict[str, dict]], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.exited() is not None:
            raise RuntimeError(f"the service exited (code {server.exited()}) before {what}")
        if done(_models(url)):
            return
        time.sleep(1.0)
    raise RuntimeError(f"gave up after {READY_TIMEOUT_S:.0f} s waiting for {what}")


def _wait_for_champion(url: str, category: str, server: ServerProcess) -> None:
    _wait(url, server, lambda rows: rows.get(category, {}).get("version") is not None,
          f"the {category} champion to load")


def _wait_for_all(url: str, names: Sequence[str], server: ServerProcess) -> None:
    _wait(url, server, lambda rows: all(rows.get(c, {}).get("version") is not None for c in names),
          "every champion to load")


def _note_all_champions(url: str, names: Sequence[str], server: ServerProcess, timing: DemoTiming,
                        clock: Stopwatch, echo: Callable[[str], None]) -> None:
    try:
        _wait_for_all(url, names, server)
    except RuntimeError as exc:
        echo(f"s2f demo: {exc}")
        return
    timing.all_champions_s = clock()
    echo(f"s2f demo: all {len(names)} champions served after {timing.all_champions_s:.0f} s")


def _write_timing(root: Path, timing: DemoTiming) -> None:
    path = root / TIMING_REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(timing), indent=2) + "\n")
