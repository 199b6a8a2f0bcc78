"""Upload memory: what a worst-case upload adds to the API process's peak RSS, on a real server.

A real `bentoml serve` of a tiny project with the repository's own request limits
(params.yaml serving.limits: 10 MB bodies, 16 megapixels, uploads served at max_side). Each case
is posted to /colorize and the API worker's peak RSS (the kernel's VmHWM, reset through
/proc/<pid>/clear_refs just before the request) is compared with its RSS at the reset. The
server runs with glibc's mmap threshold fixed at 128 KiB, so every large buffer goes back to the
system when freed: each case pays for its own memory instead of reusing what an earlier one
left behind, which would hide its cost.

Targets (issue 21): one worst-case upload adds at most 64 MB; 32 in flight at once, 512 MB.
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from serving_fixtures import BentoServer, make_project, service_process, sketch_png
from sketch2fashion.params import load_params

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
ONE_UPLOAD_MB = 64
CONCURRENT_UPLOADS = 32
CONCURRENT_MB = 512
RESULTS_ENV = "S2F_UPLOAD_MEMORY_OUT"
"""When set, the measured figures are also written there as JSON (make reliability reads them)."""
pytestmark = pytest.mark.slow


def encoded(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def text_bomb_png() -> bytes:
    """A 64 px PNG carrying 80 zTXt chunks that each inflate to 1 MB (80 KB of file)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = encoded(Image.new("RGB", (64, 64), (250, 250, 250)), "PNG")
    text = chunk(b"zTXt", b"note\x00\x00" + zlib.compress(b"a" * 1_000_000, 9))
    return png[:33] + text * 80 + png[33:]


def worst_cases() -> dict[str, tuple[bytes, int]]:
    """name -> (upload, expected status): the most memory each kind of upload can ask for."""
    noise = np.random.default_rng(0).integers(0, 256, (4000, 4000, 3), dtype=np.uint8)
    return {
        "4000x4000 RGBA PNG, one colour (the issue's 69 KB file)":
            (encoded(Image.new("RGBA", (4000, 4000), (200, 30, 30, 128)), "PNG"), 413),
        "2048x2048 RGBA PNG (the largest the budget admits)":
            (encoded(Image.new("RGBA", (2048, 2048), (200, 30, 30, 128)), "PNG"), 200),
        "4000x4000 palette PNG (1 byte a pixel)": (encoded(Image.new("P", (4000, 4000), 3), "PNG"), 200),
        "4000x4000 noise JPEG (decoded at 1/4)": (encoded(Image.fromarray(noise), "JPEG", quality=30), 200),
        "2000x2000 progressive JPEG": (encoded(Image.new("RGB", (2000, 2000), (9, 90, 200)), "JPEG",
                                               progressive=True), 200),
        "1000x1000 RGBA WebP": (encoded(Image.new("RGBA", (1000, 1000), (200, 30, 30, 128)), "WEBP",
                                        lossless=True), 200),
        "PNG with 80 MB of compressed text chunks": (text_bomb_png(), 200),
        "10 MB of random bytes": (np.random.default_rng(1).bytes(10_000_000), 400),
    }


class PeakRss:
    """Peak resident memory of one process since the last reset (Linux: VmHWM and clear_refs)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def reset(self) -> int:
        """Reset the peak to the current RSS; returns that RSS in bytes."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError as exc:
            pytest.skip(f"cannot reset the peak RSS of the API process here ({exc})")
        return self._status("VmRSS")

    def peak(self) -> int:
        return self._status("VmHWM")

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise LookupError(key)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("upload-memory")
    limits = load_params(ROOT / "params.yaml")["serving"]["limits"]
    project = make_project(root / "project", limits=limits, compile="off", colorizer="service",
                           traffic={"timeout": 120, "max_concurrency": 64})
    with BentoServer(project, root / "bentoml-serve.log", env={"MALLOC_MMAP_THRESHOLD_": "131072"}) as running:
        yield running


def post(client: httpx.Client, url: str, data: bytes) -> httpx.Response:
    return client.post(f"{url}/colorize", files={"sketch": ("upload", data, "application/octet-stream")},
                       data={"category": "top"})


def test_worst_case_uploads_stay_within_their_memory_budget(server):
    rss = PeakRss(service_process(server, "API").pid)
    small = {fmt: encoded(Image.new("RGBA" if fmt != "JPEG" else "RGB", (900, 700), (90, 9, 9)), fmt)
             for fmt in ("PNG", "JPEG", "WEBP")}
    added: dict[str, float] = {}
    with httpx.Client(timeout=120) as client:
        for warm in (sketch_png(), *small.values()):  # decoders and code paths loaded once
            assert post(client, server.url, warm).status_code == 200
        for name, (data, status) in worst_cases().items():
            before = rss.reset()
            response = post(client, server.url, data)
            added[name] = max(0.0, (rss.peak() - before) / MB)  # the peak is reset to the RSS of `before`
            assert response.status_code == status, (name, response.text[:300])
            assert "error" in response.json() if status != 200 else response.content[:4] == b"\x89PNG"
        print(json.dumps({k: round(v, 1) for k, v in added.items()}, indent=1))
        worst = max(added, key=added.get)
        assert added[worst] <= ONE_UPLOAD_MB, f"{worst} added {added[worst]:.0f} MB to the API's peak RSS"

        # The same worst case, CONCURRENT_UPLOADS at once.
        data, status = worst_cases()["2048x2048 RGBA PNG (the largest the budget admits)"]

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=300) as concurrent:
                calls = [concurrent.post(f"{server.url}/colorize", data={"category": "top"},
                                         files={"sketch": ("upload.png", data, "image/png")})
                         for _ in range(CONCURRENT_UPLOADS)]
                return [r.status_code for r in await asyncio.gather(*calls)]

        before = rss.reset()
        statuses = asyncio.run(burst())
        concurrent_mb = (rss.peak() - before) / MB
    assert statuses == [status] * CONCURRENT_UPLOADS, statuses
    print(f"{CONCURRENT_UPLOADS} concurrent worst-case uploads added {concurrent_mb:.0f} MB")
    assert concurrent_mb <= CONCURRENT_MB
    if os.environ.get(RESULTS_ENV):
        Path(os.environ[RESULTS_ENV]).write_text(json.dumps(
            {"one_upload_mb": {k: round(v, 1) for k, v in added.items()},
             "concurrent_uploads": CONCURRENT_UPLOADS, "concurrent_mb": round(concurrent_mb, 1)}, indent=2))
