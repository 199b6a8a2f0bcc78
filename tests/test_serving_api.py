"""Acceptance tests of the BentoML service: a real `bentoml serve service:API` on a tiny project.

One server for the module (startup costs ~10 s): tiny 64 px colorizers in a real SQLite MLflow
registry, a real catalog index, real HTTP with httpx. The promotion test runs last because it
changes which version serves.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from serving_fixtures import (
    POLL_SECONDS, BentoServer, add_classifier, add_version, bomb_png, make_project, photo_png, promote_version,
    scrape, sketch_png,
)
from sketch2fashion.imaging.io import decode_rgb
from sketch2fashion.params import load_params
from sketch2fashion.serving.metrics import exported_names
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
PRODUCT_FIELDS = {"id", "title", "link", "image_link", "price", "currency", "category", "score"}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["inline", "service"])
def server(request, tmp_path_factory):
    """Both places the champions can run (serving.colorizer): in the API process, or a service of their own.
    The inline one serves uncompiled: compiling is the same code in both places (the service variant, the
    swaps-under-load test and tests/test_compiled.py cover it), and waiting for it twice cost CI ~1 minute."""
    root = tmp_path_factory.mktemp(f"serving-{request.param}")
    project = make_project(root / "project", colorizer=request.param,
                           **({"compile": "off"} if request.param == "inline" else {}))
    with BentoServer(project, root / "bentoml-serve.log") as running:
        yield running


def sketch_file(data: bytes | None = None, name: str = "sketch.png") -> tuple[str, bytes, str]:
    return (name, sketch_png() if data is None else data, "image/png")


def colorize(server, category: str = "top", data: bytes | None = None, **kw) -> httpx.Response:
    return httpx.post(f"{server.url}/colorize", files={"sketch": sketch_file(data)},
                      data={"category": category}, timeout=60, **kw)


def outcome_count(samples, outcome: str) -> float:
    return sum(v for labels, v in samples.get("s2f_requests_total", []) if labels["outcome"] == outcome)


# --- endpoints ------------------------------------------------------------------------------------

def test_health_endpoints_and_page(server):
    assert httpx.get(f"{server.url}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    page = httpx.get(f"{server.url}/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Sketch2Fashion" in page.text
    css = httpx.get(f"{server.url}/static/style.css", timeout=10)
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_colorize_returns_a_png_at_model_size(server):
    response = colorize(server, "top")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-s2f-model-version"] == "1"
    photo = decode_rgb(response.content, min_side=1)
    assert photo.shape == (64, 64, 3)
    again = colorize(server, "top")
    assert again.content == response.content  # eval mode: same sketch, same photo


def test_colorize_sends_jpeg_on_request_close_to_the_lossless_png(server):
    png = colorize(server, "top")
    jpeg = httpx.post(f"{server.url}/colorize", files={"sketch": sketch_file()},
                      data={"category": "top", "format": "jpeg"}, timeout=60)
    assert jpeg.status_code == 200, jpeg.text
    assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:3] == b"\xff\xd8\xff"
    lossless, lossy = decode_rgb(png.content, min_side=1), decode_rgb(jpeg.content, min_side=1)
    assert lossy.shape == lossless.shape == (64, 64, 3)
    # The same photo: the tiny test model draws near-noise, which JPEG smooths, so the check is its
    # colour and a loose per-pixel bound (colour fidelity on a real image: test_serving_units).
    assert np.abs(lossy.mean(axis=(0, 1)) - lossless.mean(axis=(0, 1))).max() < 2
    assert np.abs(lossy.astype(int) - lossless.astype(int)).mean() < 12


def test_models_lists_each_category_champion(server):
    body = httpx.get(f"{server.url}/models", timeout=10).json()
    rows = {row["category"]: row for row in body["models"]}
    assert set(rows) == {"top", "pants"} and body["ready"] is True
    for row in rows.values():
        assert row["version"] == 1 and row["ssim"] == pytest.approx(0.5)
        assert isinstance(row["epoch"], int) and len(row["run_id"]) == 32
    assert body["classifier"]["model"] == "sketch-classifier" and body["encoder"]["model"] == "catalog-encoder"

    # A champion serves uncompiled at once and is compiled in the background: wait for that event.
    # params.yaml serving.compile: auto, and this machine has a C++ compiler (make setup installs g++)
    def compiled_rows():
        rows = httpx.get(f"{server.url}/models", timeout=10).json()["models"]
        done = all("background" not in (row["compiled"] or {}).get("why", "") for row in rows)
        return rows if done else None

    if load_params(server.project.root / "params.yaml")["serving"]["compile"] == "off":
        assert all(row["compiled"]["compiled"] is False for row in rows.values()), rows
        return
    for row in wait_until(compiled_rows, "both champions compiled", details=server.log_tail):
        assert row["compiled"]["compiled"] is True, row["compiled"]
        assert row["compiled"]["batch_sizes"] == [1, 8]


def test_search_returns_product_cards(server):
    response = httpx.post(f"{server.url}/search", files={"image": ("p.png", photo_png(), "image/png"),
                                                         "sketch": sketch_file()},
                          data={"text": "red top", "category": "top", "top_k": "3"}, timeout=60)
    assert response.status_code == 200, response.text
    products = response.json()["products"]
    assert 1 <= len(products) <= 3
    for product in products:
        assert set(product) == PRODUCT_FIELDS and product["category"] == "top"
    scores = [p["score"] for p in products]
    assert scores == sorted(scores, reverse=True)
    photo_only = httpx.post(f"{server.url}/search", files={"image": ("p.png", photo_png(), "image/png")},
                            timeout=60)
    assert photo_only.status_code == 200 and len(photo_only.json()["products"]) == 5  # default_top_k


def test_colorize_and_search(server):
    response = httpx.post(f"{server.url}/colorize_and_search", files={"sketch": sketch_file()},
                          data={"category": "pants", "text": "trousers", "top_k": "2"}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["category"] == "pants" and body["model_version"] == 1
    import base64

    assert body["image_type"] == "image/png"  # serving.photo_format of the test project
    assert decode_rgb(base64.b64decode(body["image"]), min_side=1).shape == (64, 64, 3)
    assert 1 <= len(body["products"]) <= 2
    as_jpeg = httpx.post(f"{server.url}/colorize_and_search", files={"sketch": sketch_file()},
                         data={"category": "pants", "format": "JPG"}, timeout=60).json()
    assert as_jpeg["image_type"] == "image/jpeg" and base64.b64decode(as_jpeg["image"])[:3] == b"\xff\xd8\xff"
    assert all(set(p) == PRODUCT_FIELDS and p["category"] == "pants" for p in body["products"])


def test_auto_category_without_classifier_is_a_clear_4xx(server):
    response = colorize(server, "auto")
    assert response.status_code == 422
    assert "classifier" in response.json()["error"] and "train_classifier" in response.json()["error"]
    body = httpx.get(f"{server.url}/models", timeout=10).json()
    assert body["classifier"]["model"] == "sketch-classifier" and body["classifier"]["version"] is None
    # The test catalog's index was built from a plain weights file: no registry version to show.
    assert body["encoder"]["model"] == "catalog-encoder" and body["encoder"]["index_version"]


def test_category_auto_follows_a_classifier_promotion(server):
    """Poll, probe, swap: a sketch-classifier promoted in the registry answers category=auto."""
    version = add_classifier(server.project.root)
    deadline = time.monotonic() + POLL_SECONDS + 30
    shown = None
    while time.monotonic() < deadline and shown != version:
        shown = httpx.get(f"{server.url}/models", timeout=10).json()["classifier"]["version"]
        time.sleep(0.2)
    assert shown == version, server.log_tail()
    response = colorize(server, "auto")
    assert response.status_code == 200, response.text
    assert response.headers["x-s2f-category"] in {"top", "pants"}
    samples = scrape(server.url)
    served = {(labels["model"], labels["version"]) for labels, v in samples["s2f_served_model_info"] if v == 1}
    assert ("sketch-classifier", str(version)) in served and ("colorizer-top", "1") in served


# --- bad input ------------------------------------------------------------------------------------

BAD_SKETCHES = {
    "not an image": (b"this is not a picture", 400, "not an image"),
    "truncated png": (sketch_png(256)[:600], 400, "truncated"),
    "empty": (b"", 400, "empty"),
    "decompression bomb": (bomb_png(30000), 413, "too large"),
}


@pytest.mark.parametrize("case", sorted(BAD_SKETCHES))
def test_bad_sketches_are_4xx_json(server, case):
    data, status, words = BAD_SKETCHES[case]
    response = colorize(server, "top", data)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_bad_fields_are_4xx_json(server):
    url = server.url
    cases = [
        (colorize(server, "dress"), 400, "unknown category"),
        (httpx.post(f"{url}/colorize", files={"sketch": sketch_file()}, data={"category": "top", "format": "gif"},
                    timeout=30), 400, "expected one of jpeg, png"),
        (httpx.post(f"{url}/colorize", data={"category": "top"}, timeout=30), 400, "'sketch' is required"),
        (httpx.post(f"{url}/colorize", data={"category": "top", "sketch": "hello"},
                    files={"x": ("x", b"", "text/plain")}, timeout=30), 400, "unknown form field"),
        (httpx.post(f"{url}/colorize", files={"sketch": ("s", b"aGVsbG8=", None)}, data={"category": "top"},
                    timeout=30), 400, "not an image"),
        (httpx.post(f"{url}/colorize", json={"sketch": "x", "category": "top"}, timeout=30), 415, "multipart"),
        (httpx.post(f"{url}/colorize", data={"category": "top", "sketch": "http://127.0.0.1:1/x.png"},
                    timeout=30), 400, "uploaded file"),
    ]
    for top_k, words in (("0", "between 1 and 100"), ("1000000", "between 1 and 100"), ("ten", "whole number")):
        cases.append((httpx.post(f"{url}/search", files={"image": ("p.png", photo_png(), "image/png")},
                                 data={"top_k": top_k}, timeout=30), 400, words))
    cases.append((httpx.post(f"{url}/search", files={"image": ("p.png", photo_png(), "image/png")},
                             data={"text": "x" * 1_000_000}, timeout=30), 400, "at most 200"))
    cases.append((httpx.post(f"{url}/colorize_and_search", files={"sketch": sketch_file()},
                             data={"category": "top", "text": "é" * 1_000_000}, timeout=30), 413, "limit"))
    for response, status, words in cases:
        assert response.status_code == status, (words, response.status_code, response.text)
        assert words in response.json()["error"], response.json()


def test_oversize_body_is_413_and_server_stays_healthy(server):
    before = scrape(server.url)
    huge = np.random.default_rng(0).bytes(3_000_000)
    response = colorize(server, "top", huge)
    assert response.status_code == 413 and "limit is 2000000 bytes" in response.json()["error"]
    # The server keeps serving after every kind of bad input above.
    assert httpx.get(f"{server.url}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    assert colorize(server, "top").status_code == 200
    after = scrape(server.url)
    assert outcome_count(after, "bad_request") > outcome_count(before, "bad_request")
    assert outcome_count(after, "error") == 0  # no 500 ever


# --- batching and metrics -------------------------------------------------------------------------

def batched_passes(samples) -> float:
    """Forward passes that ran more than one sketch (histogram count minus the le=1 bucket)."""
    total = sum(v for _, v in samples.get("s2f_batch_size_count", []))
    single = sum(v for labels, v in samples.get("s2f_batch_size_bucket", []) if labels["le"] == "1.0")
    return total - single


def test_concurrent_requests_are_batched(server):
    async def burst(n: int) -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            calls = [client.post(f"{server.url}/colorize", files={"sketch": sketch_file(sketch_png(hints=i % 4))},
                                 data={"category": ("top", "pants")[i % 2]}) for i in range(n)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    before = batched_passes(scrape(server.url))
    for _ in range(4):
        assert set(asyncio.run(burst(24))) == {200}
        if batched_passes(scrape(server.url)) > before:
            break
    samples = scrape(server.url)
    assert batched_passes(samples) > before, samples.get("s2f_batch_size_bucket")
    dispatched = samples["s2f_dispatch_batch_size_sum"][0][1]
    assert dispatched > samples["s2f_dispatch_batch_size_count"][0][1]  # mean batch > 1
    hints = sum(v for _, v in samples["s2f_hints_per_sketch_sum"])
    assert hints > 0


def monitoring_series() -> set[str]:
    """Every metric name used by the alert rules and the Grafana dashboard."""
    rules = yaml.safe_load((ROOT / "monitoring" / "prometheus" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((ROOT / "monitoring" / "grafana" / "sketch2fashion.json").read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) > 15
    return {name for expr in exprs for name in re.findall(r"\b(?:s2f|bentoml)_[a-zA-Z0-9_]+", expr)}


def test_monitoring_uses_only_exported_series(server):
    # Make sure every kind of event happened once, so every series has samples.
    colorize(server, "top")
    colorize(server, "top", b"junk")
    httpx.post(f"{server.url}/search", files={"image": ("p.png", photo_png(), "image/png")}, timeout=60)
    samples = scrape(server.url)
    names = monitoring_series()
    assert {"s2f_served_model_info", "s2f_requests_total", "s2f_generation_seconds_bucket",
            "s2f_search_seconds_bucket", "s2f_batch_size_sum", "s2f_hints_per_sketch_bucket",
            "s2f_forward_seconds_sum"} <= names
    missing = sorted(name for name in names if name not in samples)
    assert not missing, f"named in monitoring/ but not on /metrics: {missing}"
    assert exported_names() <= set(samples) | {"s2f_model_swaps_total"}
    info = {(labels["category"], labels["version"]) for labels, v in samples["s2f_model_info"] if v == 1}
    assert info == {("top", "1"), ("pants", "1")}


def test_the_demo_runner_first_garment_is_a_real_page_request(server):
    """`s2f demo` times the first garment with the page's own request (demo_run.first_garment)."""
    from sketch2fashion.demo_run import first_garment

    answer = first_garment(server.url, "top")
    assert answer["category"] == "top" and answer["image_type"] == "image/jpeg" and answer["products"]


# --- promotion reaches production (last: changes the serving version) -----------------------------

def serving_version(server, category: str) -> int | None:
    rows = {r["category"]: r for r in httpx.get(f"{server.url}/models", timeout=10).json()["models"]}
    return rows[category]["version"]


def swaps(samples, outcome: str, category: str = "top") -> float:
    return sum(v for labels, v in samples.get("s2f_model_swaps_total", [])
               if labels["category"] == category and labels["outcome"] == outcome)


def test_promotion_during_requests_swaps_without_failures(server):
    project_root = server.project.root
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()
    retried: list[str] = []

    def stream() -> None:
        """A shopper's client as the contract asks: a 503 (a model swapping or compiling can stall the
        Colorizer for a moment on a slow CPU) is sent again after its Retry-After."""
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                for attempt in range(6):  # the first try and up to 5 retries
                    r = client.post(f"{server.url}/colorize", files={"sketch": sketch_file()}, data={"category": "top"})
                    if r.status_code != 503 or "retry-after" not in r.headers or attempt == 5:
                        break
                    retried.append(r.json()["error"])
                    time.sleep(float(r.headers["retry-after"]))
                statuses.append(r.status_code)
                versions.append(r.headers.get("x-s2f-model-version", ""))

    worker = threading.Thread(target=stream, daemon=True)
    worker.start()
    try:
        new = add_version(project_root, "top", seed=7, ssim=0.6)
        promote_version(project_root, "top", new)
        promoted_at = time.monotonic()
        # Waits on the swap itself: loading and compiling a candidate takes far longer on some CPUs.
        wait_until(lambda: serving_version(server, "top") == new, f"version {new} to serve",
                   details=server.log_tail)
        seen_after = time.monotonic() - promoted_at
        served_new = len(versions)
        wait_until(lambda: len(versions) > served_new + 3 or not worker.is_alive(), "requests across the swap")

        # A broken model (NaN weights: loads, fails the probe) is refused; v2 keeps serving.
        before = scrape(server.url)
        broken = add_version(project_root, "top", seed=8, ssim=0.9, broken=True)
        promote_version(project_root, "top", broken)
        wait_until(lambda: swaps(scrape(server.url), "refused") >= 1, "the broken version's refusal",
                   details=server.log_tail)
        time.sleep(POLL_SECONDS * 2)  # a refused version is not retried every poll
    finally:
        stop.set()
        worker.join(60)

    assert statuses and set(statuses) == {200}, f"{len([s for s in statuses if s != 200])} failed requests"
    assert versions[0] == "1" and versions[-1] == str(new)
    first_new = versions.index(str(new))
    assert set(versions[first_new:]) == {str(new)}  # never back to the old one, never the broken one
    rows = {r["category"]: r for r in httpx.get(f"{server.url}/models", timeout=10).json()["models"]}
    assert rows["top"]["version"] == new and rows["pants"]["version"] == 1
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    after = scrape(server.url)
    assert swaps(after, "refused") == 1
    assert outcome_count(after, "error") == 0 and outcome_count(after, "unavailable") == \
        outcome_count(before, "unavailable"), f"503s answered during the refusal: {retried}\n{server.log_tail()}"
    info = {(labels["category"], labels["version"]) for labels, v in after["s2f_model_info"] if v == 1}
    assert info == {("top", str(new)), ("pants", "1")}
    print(f"new champion served {seen_after:.1f}s after promotion (poll {POLL_SECONDS}s), "
          f"{len(statuses)} requests, none failed ({len(retried)} answered 503 + Retry-After first: {retried[:3]})")
