"""The public API as a contract, against real `bentoml serve` processes on tiny projects.

- the OpenAPI schema the server serves lists exactly the routes it answers, with the fields its
  forms really take; the Swagger UI at /docs loads offline;
- a Schemathesis run against the live server (every operation, a bounded, seeded number of
  cases): no 5xx, every answer as the schema declares it;
- 429 and 503 answers carry Retry-After; a real 429 comes from a project with
  `serving.traffic.max_concurrency: 1` whose one slot a slow upload holds;
- the Python client (sync and async) and `s2f colorize` / `s2f search` against the server.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import fields
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from PIL import Image

from serving_fixtures import BentoServer, make_project, photo_png, scrape, sketch_png
from sketch2fashion.client import (
    AsyncClient, Client, ModelInfo, ModelsStatus, NotFound, Photo, Product, RequestRejected, Retry, ServiceBusy,
)
from sketch2fashion.serving.config import load_serving_config
from sketch2fashion.serving.endpoints import Endpoints
from sketch2fashion.serving.web import make_app

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FUZZ_EXAMPLES = 30
"""Schemathesis cases per operation and phase (`--max-examples`): 403 cases in all (2026-12-02), ~30 s here."""
UNDOCUMENTED_ROUTES = {"/", "/docs", "/openapi.json", "/static", "/docs/assets"}
"""What the app serves besides the API: the page, the docs and the schema itself."""
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The test project as the API tests use it (compile off: these tests do not time the model)."""
    root = tmp_path_factory.mktemp("contract")
    with BentoServer(make_project(root / "project", compile="off"), root / "bentoml-serve.log") as running:
        yield running


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory):
    """One request at a time and no catalog index: a second request gets 429, a search 503."""
    root = tmp_path_factory.mktemp("contract-busy")
    project = make_project(root / "project", catalog=False, compile="off", traffic={"max_concurrency": 1})
    with BentoServer(project, root / "bentoml-serve.log") as running:
        yield running


def live_schema(url: str) -> dict:
    response = httpx.get(f"{url}/openapi.json", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    return response.json()


def operations_of(spec: dict) -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): op for path, methods in spec["paths"].items() for method, op in methods.items()}


def conformance_failures(schema, method: str, path: str, response: httpx.Response) -> list[str]:
    """What Schemathesis' checks say about one answer against the schema (empty: it conforms)."""
    from schemathesis.checks import (
        content_type_conformance, response_headers_conformance, response_schema_conformance,
        status_code_conformance,
    )

    from schemathesis.core.failures import FailureGroup

    response.request.read()  # a multipart request streams its body; Schemathesis reads it back
    case = schema[path][method].Case()
    try:
        case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                                 response_headers_conformance, response_schema_conformance])
    except (AssertionError, FailureGroup) as exc:  # one failure, or several
        return [str(exc)]
    return []


# --- the schema against the routes ---------------------------------------------------------------

def test_schema_lists_exactly_the_routes_the_server_answers(server):
    spec = live_schema(server.url)
    ops = operations_of(spec)
    # Every public handler is an operation, and every operation has a handler.
    handlers = {name for name in vars(Endpoints) if not name.startswith("_")
                and asyncio.iscoroutinefunction(getattr(Endpoints, name))}
    assert {op["operationId"] for op in ops.values()} == handlers
    # The app serves nothing else than these operations, the page and the docs.
    app = make_app(load_serving_config(server.project.root))
    assert app.openapi() == spec
    served = {route.path.replace(":path", "") for route in app.routes}
    assert served - {path for _, path in ops} == UNDOCUMENTED_ROUTES

    for (method, path), op in ops.items():
        url = server.url + path.replace("{product_id}", "no/such-product")
        # Each operation is routed to its handler (the answer is the API's JSON, not BentoML's plain 404) ...
        answer = httpx.request(method, url, timeout=30)
        assert str(answer.status_code) in op["responses"], (method, path, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith(("application/json", "image/")), answer.text
        # ... and answers no other method.
        other = "GET" if method == "POST" else "POST"
        wrong = httpx.request(other, url, timeout=30)
        assert wrong.status_code == 405 and wrong.headers["allow"] == method
        assert f"use {method}" in wrong.json()["error"]
        if "requestBody" not in op:
            continue
        # The form takes exactly the fields the schema declares: the server lists them for an unknown one.
        declared = op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
        refused = httpx.post(url, files={"zzz": ("z.png", b"z", "image/png")}, timeout=30)
        assert refused.status_code == 400
        listed = re.search(r"this endpoint takes (.*)$", refused.json()["error"]).group(1)
        assert set(listed.split(", ")) == set(declared), (path, listed)


def test_schema_states_the_configured_limits(server):
    spec = live_schema(server.url)
    config = load_serving_config(server.project.root)
    form = spec["paths"]["/search"]["post"]["requestBody"]["content"]["multipart/form-data"]
    top_k = form["schema"]["properties"]["top_k"]
    assert (top_k["minimum"], top_k["maximum"], top_k["default"]) == (1, config.limits.max_top_k,
                                                                      config.limits.default_top_k)
    assert form["schema"]["properties"]["text"]["maxLength"] == config.limits.max_text_chars == 200
    assert form["schema"]["required"] == ["image"]
    assert form["encoding"]["image"]["contentType"] == "image/png, image/jpeg"
    colorize = spec["paths"]["/colorize"]["post"]
    category = colorize["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["category"]
    assert category["enum"] == ["top", "pants", "auto"]
    assert set(colorize["responses"]["200"]["content"]) == {"image/png", "image/jpeg"}
    assert set(colorize["responses"]) == {"200", "400", "413", "415", "422", "429", "503", "504"}
    assert str(config.limits.max_body_bytes) in form["schema"]["properties"]["image"]["description"]
    for status in ("429", "503"):
        assert colorize["responses"][status]["headers"]["Retry-After"]["required"] is True


def test_docs_page_loads_the_schema_and_its_assets_offline(server):
    docs = httpx.get(f"{server.url}/docs", timeout=10)
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert "'/openapi.json'" in docs.text or '"/openapi.json"' in docs.text
    assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', docs.text)
    assert len(assets) >= 2 and not re.search(r'(?:src|href)="https?://', docs.text)  # nothing from a CDN
    for asset in assets:
        assert httpx.get(server.url + asset, timeout=10).status_code == 200, asset
    page = httpx.get(f"{server.url}/", timeout=10)  # the drawing page is still at /
    assert page.status_code == 200 and "Sketch2Fashion" in page.text


def test_a_client_hanging_up_mid_upload_is_not_a_server_error(server):
    def outcomes() -> Counter:
        counts: Counter = Counter()
        for labels, value in scrape(server.url).get("s2f_requests_total", []):
            counts[labels["outcome"]] += value
        return counts

    before = outcomes()
    with socket.create_connection(HeldUpload(server.url).address, timeout=30) as sock:
        sock.sendall(b"POST /colorize HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                     b"Content-Length: 1000\r\n\r\n--x\r\n")  # then hangs up, 990 bytes short
    deadline = time.monotonic() + 30
    while outcomes()["bad_request"] == before["bad_request"] and time.monotonic() < deadline:
        time.sleep(0.1)
    after = outcomes()
    assert after["bad_request"] == before["bad_request"] + 1 and after["error"] == before["error"]


# --- schema-driven fuzzing -----------------------------------------------------------------------

def server_errors(url: str) -> int:
    """5xx answers the server itself counted (BentoML's request metric), start-up /readyz aside."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            labels = sample.labels
            if (sample.name == "bentoml_service_request_total" and labels.get("endpoint") != "/readyz"
                    and labels.get("http_response_code", "").startswith("5")):
                total += int(sample.value)
    return total


def operation_of(method: str, url: str) -> str:
    path = "/" + url.split("/", 3)[3].split("?")[0]
    return f"{method} {'/catalog/images/{product_id}' if path.startswith('/catalog/images/') else path}"


def schemathesis_run(url: str, folder: Path, phases: str, *, drawings: bool) -> tuple[dict, list[dict]]:
    """`st run` against the live schema; its JSON summary and every request/response it made (HAR)."""
    folder.mkdir()
    env = dict(os.environ)
    if drawings:
        env.update(SCHEMATHESIS_HOOKS="schema_fuzz_hooks", PYTHONPATH=os.pathsep.join(
            filter(None, [str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH")])))
    # Every check but positive_data_acceptance: a schema cannot say that an image must decode and be
    # at least `min_side` px, or that `category=auto` needs a trained classifier (422).
    proc = subprocess.run(
        [str(BIN / "st"), "run", f"{url}/openapi.json", "--phases", phases, "--max-examples", str(FUZZ_EXAMPLES),
         "--seed", "0", "--no-shrink", "--workers", "1", "--checks", "all",
         "--exclude-checks", "positive_data_acceptance", "--generation-database", "none", "--request-timeout", "60",
         "--no-color", "--report", "json,har", "--report-json-path", str(folder / "summary.json"),
         "--report-har-path", str(folder / "requests.har")],
        cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
    return (json.loads((folder / "summary.json").read_text()),
            json.loads((folder / "requests.har").read_text())["log"]["entries"])


def test_schema_fuzz_finds_no_server_error_and_no_answer_off_the_schema(server, tmp_path):
    before = server_errors(server.url)
    # Two runs. Coverage: each field's boundaries and wrong types (top_k 0, 100, 101, "AAA", ...), with
    # Schemathesis' own tiny image samples. Fuzzing and stateful: random forms whose images are the
    # drawings of tests/schema_fuzz_hooks.py (with them, coverage would send one fixed body), and the
    # links from a search to its products' photos.
    runs = {"coverage": schemathesis_run(server.url, tmp_path / "coverage", "coverage", drawings=False),
            "fuzzing": schemathesis_run(server.url, tmp_path / "fuzzing", "fuzzing,stateful", drawings=True)}
    cases = sum(summary["test_cases"]["generated"] for summary, _ in runs.values())
    entries = [entry for _, run_entries in runs.values() for entry in run_entries]
    statuses = Counter(entry["response"]["status"] for entry in entries)
    fives = sum(n for status, n in statuses.items() if status >= 500)
    per_run = ", ".join(f"{name} {summary['test_cases']['generated']}" for name, (summary, _) in runs.items())
    print(f"schema fuzz: {cases} cases ({per_run}), {len(entries)} requests, 5xx: {fives}, "
          f"statuses {dict(sorted(statuses.items()))}")
    for summary, _ in runs.values():
        assert summary["operations"]["tested"] == len(operations_of(live_schema(server.url))) == 5
        assert summary["test_cases"]["with_failures"] == 0 and summary["test_cases"]["generated"] >= 100
    assert fives == 0 and server_errors(server.url) == before
    # The drawings got past the checks: every operation answered 200 at least once.
    ok = {operation_of(e["request"]["method"], e["request"]["url"]) for e in runs["fuzzing"][1]
          if e["response"]["status"] == 200}
    assert ok == {"POST /colorize", "POST /search", "POST /colorize_and_search", "GET /models",
                  "GET /catalog/images/{product_id}"}, statuses


# --- Retry-After, and the client against a real 429 and 503 ---------------------------------------

class HeldUpload:
    """An upload sent only in part: it holds the API's one concurrency slot until `release()` sends the rest.

    A raw socket, so the test knows when the server has answered it: an upload that arrives while
    the probe holds the slot is itself refused (429), and is then sent again.
    """

    BODY = b'--x\r\nContent-Disposition: form-data; name="category"\r\n\r\ntop\r\n--x--\r\n'
    SENT_FIRST = 16

    def __init__(self, url: str) -> None:
        self.url = url
        host, port = url.split("//", 1)[1].split(":")
        self.address = (host, int(port))
        self.sock: socket.socket | None = None

    def _start(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=30)
        sock.sendall(b"POST /colorize HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\n"
                     + f"Content-Length: {len(self.BODY)}\r\n\r\n".encode() + self.BODY[:self.SENT_FIRST])
        return sock

    def __enter__(self) -> HeldUpload:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sock = self._start()
            while time.monotonic() < deadline and not _answered(sock):
                if httpx.get(f"{self.url}/models", timeout=30).status_code == 429 and not _answered(sock):
                    self.sock = sock  # the server is reading our upload, and refuses others
                    return self
                time.sleep(0.05)
            sock.close()  # refused itself: try again
        raise TimeoutError("the partial upload never held the concurrency slot")

    def release(self) -> None:
        """Send the rest of the form; the server answers it (400: no sketch) and frees the slot."""
        if self.sock is not None:
            self.sock.sendall(self.BODY[self.SENT_FIRST:])
            assert self.sock.recv(64).startswith(b"HTTP/1.1 400")
            self.sock.close()
            self.sock = None

    def __exit__(self, *exc: object) -> None:
        self.release()


def _answered(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


class RecordingTransport(httpx.HTTPTransport):
    """The real HTTP transport, noting when each answer came and its status."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[float, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.seen.append((time.monotonic(), response.status_code))
        return response


class AsyncRecordingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[float, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.seen.append((time.monotonic(), response.status_code))
        return response


def test_429_and_503_carry_retry_after_and_conform(busy_server):
    url = busy_server.url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")  # now: it too waits its turn
    with HeldUpload(url):
        refused = httpx.get(f"{url}/models", timeout=30)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "error" in refused.json()
        assert conformance_failures(schema, "GET", "/models", refused) == []
    unavailable = httpx.post(f"{url}/search", files={"image": ("p.png", photo_png(), "image/png")}, timeout=60)
    assert unavailable.status_code == 503 and unavailable.headers["retry-after"] == "1"
    assert "search index" in unavailable.json()["error"]
    assert conformance_failures(schema, "POST", "/search", unavailable) == []
    # The check can fail: the same answer without its Retry-After does not conform.
    bare = httpx.Response(503, json=unavailable.json(), request=unavailable.request)
    bare.elapsed = unavailable.elapsed
    assert "Retry-After" in " ".join(conformance_failures(schema, "POST", "/search", bare))
    # A 4xx says nothing about retrying.
    bad = httpx.post(f"{url}/colorize", data={"category": "top"}, timeout=30)
    assert bad.status_code == 400 and "retry-after" not in bad.headers


def test_client_retries_a_real_429_after_its_retry_after(busy_server):
    transport = RecordingTransport()
    outcome: dict[str, object] = {}
    with HeldUpload(busy_server.url) as held, \
            Client(busy_server.url, retry=Retry(retries=10, backoff=0.05, max_wait=5), transport=transport) as api:
        worker = threading.Thread(target=lambda: outcome.update(photo=api.colorize(sketch_png(), "top")))
        worker.start()
        deadline = time.monotonic() + 60
        while not transport.seen and time.monotonic() < deadline:  # the client's first try is refused ...
            time.sleep(0.02)
        held.release()  # ... then the slot frees and a retry gets through
        worker.join(120)
    statuses = [status for _, status in transport.seen]
    assert statuses[0] == 429 and statuses[-1] == 200 and set(statuses[1:-1]) <= {429}, statuses
    assert isinstance(outcome["photo"], Photo) and outcome["photo"].array().shape == (64, 64, 3)
    first_retry_gap = transport.seen[1][0] - transport.seen[0][0]
    assert first_retry_gap >= 1.0  # Retry-After: 1 outweighs the 0.05 s backoff

    with HeldUpload(busy_server.url), Client(busy_server.url, retry=Retry(retries=0)) as api:
        with pytest.raises(ServiceBusy) as busy:
            api.models()
    assert busy.value.status == 429 and busy.value.retry_after == 1.0


def test_async_client_gives_up_on_503_after_its_retries(busy_server):
    transport = AsyncRecordingTransport()

    async def search() -> None:
        async with AsyncClient(busy_server.url, retry=Retry(retries=2, backoff=0.05), transport=transport) as api:
            await api.search(photo_png())

    with pytest.raises(ServiceBusy) as busy:
        asyncio.run(search())
    assert busy.value.status == 503 and "search index" in busy.value.message and busy.value.retry_after == 1.0
    assert [status for _, status in transport.seen] == [503, 503, 503]
    gaps = np.diff([when for when, _ in transport.seen])
    assert (gaps >= 1.0).all(), gaps


# --- the client and the CLI ------------------------------------------------------------------------

def test_client_dataclasses_match_the_schema(server):
    schemas = live_schema(server.url)["components"]["schemas"]
    for cls, name in ((Product, "Product"), (ModelInfo, "ModelStatus"), (ModelsStatus, "ModelsAnswer")):
        assert [f.name for f in fields(cls)] == list(schemas[name]["properties"]), name


def test_client_every_method_typed(server, tmp_path):
    sketch_path = tmp_path / "sketch.png"
    sketch_path.write_bytes(sketch_png())
    drawing = np.asarray(Image.open(sketch_path).convert("RGB"))
    with Client(server.url) as api:
        from_path, from_array = api.colorize(sketch_path, "top"), api.colorize(drawing, "top")
        assert from_path.media_type == "image/png" and from_path.category == "top" and from_path.model_version == 1
        assert from_path.array().shape == (64, 64, 3) and from_path.data == from_array.data  # same drawing
        jpeg = api.colorize(Image.open(sketch_path), "pants", format="jpeg")
        assert jpeg.media_type == "image/jpeg" and jpeg.image().size == (64, 64) and jpeg.category == "pants"

        products = api.search(photo_png(), sketch=sketch_path, text="red top", category="top", top_k=3)
        assert 1 <= len(products) <= 3 and all(isinstance(p, Product) and p.category == "top" for p in products)
        assert [p.score for p in products] == sorted((p.score for p in products), reverse=True)

        both = api.colorize_and_search(sketch_png(), "pants", text="trousers", top_k=2)
        assert both.photo.array().shape == (64, 64, 3) and both.photo.model_version == 1
        assert 1 <= len(both.products) <= 2 and all(p.category == "pants" for p in both.products)
        assert both.catalog_version  # names the index version that ranked

        status = api.models()
        assert status.ready is True and {m.category: m.version for m in status.models} == {"top": 1, "pants": 1}
        assert all(isinstance(m, ModelInfo) for m in status.models)

        photo = api.product_image(products[0].id)
        assert photo.media_type == "image/png" and photo.array().ndim == 3

    async def concurrently() -> list:
        async with AsyncClient(server.url) as api:
            return await asyncio.gather(api.colorize(sketch_png(), "top"), api.search(photo_png(), top_k=2),
                                        api.colorize_and_search(sketch_png(), "top"), api.models(),
                                        api.product_image(products[0].id))

    photo_async, found, both_async, status_async, image_async = asyncio.run(concurrently())
    assert photo_async.data == from_path.data and len(found) == 2 and both_async.photo.category == "top"
    assert status_async.ready and image_async.data == photo.data


def test_client_raises_clear_4xx_without_retrying(server):
    transport = RecordingTransport()
    with Client(server.url, transport=transport) as api:
        with pytest.raises(RequestRejected, match="unknown category") as wrong:
            api.colorize(sketch_png(), "dress")
        assert wrong.value.status == 400
        with pytest.raises(RequestRejected, match="not an image"):
            api.search(b"this is not a picture")
        with pytest.raises(RequestRejected, match="between 1 and 100"):
            api.search(photo_png(), top_k=1000)
        with pytest.raises(NotFound, match="no product"):
            api.product_image("no/such/product")
    assert [status for _, status in transport.seen] == [400, 400, 400, 404]  # no retries of a 4xx


def s2f(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sketch2fashion.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_cli_colorize_and_search(server, tmp_path):
    (tmp_path / "sketch.png").write_bytes(sketch_png())
    (tmp_path / "photo.png").write_bytes(photo_png())
    done = s2f(["colorize", "sketch.png", "--category", "top", "-o", "out.jpg", "--url", server.url], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # a .jpg name asks for JPEG
    default = s2f(["colorize", "sketch.png", "-c", "pants", "--url", server.url], tmp_path)
    assert default.returncode == 0 and Image.open(tmp_path / "sketch.photo.png").size == (64, 64)

    found = s2f(["search", "photo.png", "--sketch", "sketch.png", "--top-k", "2", "--json", "--url", server.url],
                tmp_path)
    assert found.returncode == 0, found.stderr
    assert [set(p) for p in json.loads(found.stdout)] == [{f.name for f in fields(Product)}] * 2

    (tmp_path / "junk.png").write_bytes(b"this is not a picture")
    bad = s2f(["colorize", "junk.png", "--category", "top", "--url", server.url], tmp_path)
    assert bad.returncode != 0 and "junk.png" in bad.stderr and "not an image" in bad.stderr
    assert "Traceback" not in bad.stderr
    down = s2f(["search", "photo.png", "--url", "http://127.0.0.1:9"], tmp_path)
    assert down.returncode != 0 and "--url" in down.stderr and "Traceback" not in down.stderr
