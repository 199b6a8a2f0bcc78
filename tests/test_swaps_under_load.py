"""A promotion and a catalog refresh while 8 clients stream requests: nothing fails, nothing mixes.

A real `bentoml serve` of the tiny project (Colorizer in its own process, compiling on). Eight
clients send requests back to back, with no retries: every answer must be a 200.

- Promotion: a new top champion is promoted in MLflow while the clients stream
  /colorize_and_search; the swap includes compiling the new version (in its own process, the old
  champion serving meanwhile). Answers come from the old version, then from the new one, never
  back. The p99 latency before and during the swap is written to S2F_SWAP_OUT for `make
  reliability` (a figure for the report, not asserted: a timed assertion would fail on a slower
  CPU).
- Catalog refresh: a new index version is published while the clients stream /search. Each
  answer names the one index version that ranked it; the old one, then the new one, never back.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from serving_fixtures import (
    BentoServer, add_version, make_project, photo_png, project_params, promote_version, sketch_png,
)
from waiting import wait_until

CLIENTS = 8
RESULTS_ENV = "S2F_SWAP_OUT"
"""When set, the promotion's latency figures are written there as JSON (make reliability)."""
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Answer:
    started: float
    seconds: float
    status: int
    version: str | None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("swaps")
    project = make_project(root / "project", colorizer="service", compile="auto")
    with BentoServer(project, root / "bentoml-serve.log") as running:
        yield running


class Stream:
    """CLIENTS threads sending one request after another until stopped; every answer recorded."""

    def __init__(self, send, version_of) -> None:
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._send, self._version_of = send, version_of
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)]

    def __enter__(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)
        assert not any(t.is_alive() for t in self._threads), "a request hung past the client timeout"

    def _client(self, i: int) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = self._send(client, i)
                    status, version = response.status_code, self._version_of(response)
                except httpx.HTTPError:
                    status, version = 0, None  # no answer at all
                self.answers.append(Answer(started, time.monotonic() - started, status, version))

    def count(self) -> int:
        return len(self.answers)


def served_row(server, category: str) -> dict:
    rows = httpx.get(f"{server.url}/models", timeout=30).json()["models"]
    return next(r for r in rows if r["category"] == category)


def is_compiled(row: dict) -> bool:
    return bool((row.get("compiled") or {}).get("compiled"))


def p99_ms(answers: list[Answer]) -> float:
    return round(1000 * float(np.percentile([a.seconds for a in answers], 99)), 1)


def versions_in_order(answers: list[Answer]) -> list[str | None]:
    """The versions seen, in the order the requests started, runs collapsed: [old, new] if clean."""
    seen: list[str | None] = []
    for answer in sorted(answers, key=lambda a: a.started + a.seconds):
        if not seen or seen[-1] != answer.version:
            seen.append(answer.version)
    return seen


def test_a_promotion_under_8_streaming_clients_answers_every_request_from_one_version(server):
    project_root = server.project.root
    wait_until(lambda: all(is_compiled(served_row(server, c)) for c in ("top", "pants")),
               "the first champions to be compiled (a steady state to compare the swap with)", details=server.log_tail)
    old = served_row(server, "top")["version"]

    def send(client: httpx.Client, i: int) -> httpx.Response:
        category = "top" if i % 4 else "pants"  # mostly the category being swapped
        return client.post(f"{server.url}/colorize_and_search", files={"sketch": ("s.png", sketch_png(), "image/png")},
                           data={"category": category, "top_k": "3"})

    def version_of(response: httpx.Response) -> str | None:
        body = response.json() if response.status_code == 200 else {}
        return f"{body.get('category')}:{body.get('model_version')}"

    with Stream(send, version_of) as stream:
        wait_until(lambda: stream.count() >= 120, "120 answers before the promotion")  # enough for a p99 to compare
        promoted_at = time.monotonic()
        new = add_version(project_root, "top", seed=11, ssim=0.7)
        promote_version(project_root, "top", new)
        wait_until(lambda: (row := served_row(server, "top"))["version"] == new and is_compiled(row),
                   f"version {new} to serve compiled", details=server.log_tail)
        swapped_at = time.monotonic()
        seen = stream.count()
        wait_until(lambda: stream.count() >= seen + 40, "40 answers after the swap")

    answers = stream.answers
    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} answers were not 200: {sorted({a.status for a in failed})}"
    top = [a for a in answers if a.version and a.version.startswith("top:")]
    assert versions_in_order(top) == [f"top:{old}", f"top:{new}"]
    assert {a.version for a in answers if a.version.startswith("pants:")} == {"pants:1"}
    before = [a for a in answers if a.started < promoted_at]
    during = [a for a in answers if promoted_at <= a.started <= swapped_at]
    figures = {"clients": CLIENTS, "requests": len(answers), "non_200": len(failed),
               "swap_seconds": round(swapped_at - promoted_at, 1), "p99_before_ms": p99_ms(before),
               "p99_during_ms": p99_ms(during), "requests_during": len(during)}
    figures["p99_ratio"] = round(figures["p99_during_ms"] / figures["p99_before_ms"], 2)
    if os.environ.get(RESULTS_ENV):
        Path(os.environ[RESULTS_ENV]).write_text(json.dumps(figures, indent=2))
    print("promotion under load:", figures)


def test_a_catalog_refresh_under_8_streaming_clients_answers_every_search_from_one_version(server):
    from serving_fixtures import build_catalog

    project_root = server.project.root

    def send(client: httpx.Client, i: int) -> httpx.Response:
        return client.post(f"{server.url}/search", files={"image": ("p.png", photo_png(), "image/png")},
                           data={"top_k": "3"})

    def version_of(response: httpx.Response) -> str | None:
        return response.json().get("catalog_version") if response.status_code == 200 else None

    with Stream(send, version_of) as stream:
        wait_until(lambda: stream.count() >= 40, "40 searches before the refresh")
        old = stream.answers[0].version
        params = project_params(project_root)
        new = build_catalog(project_root / "again", {**params, "catalog": {
            **params["catalog"], "index": str(project_root / params["catalog"]["index"])}})
        wait_until(lambda: any(a.version == new for a in stream.answers[-CLIENTS:]), f"index version {new} to answer")
        seen = stream.count()
        wait_until(lambda: stream.count() >= seen + 40, "40 searches after the refresh")

    failed = [a for a in stream.answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(stream.answers)} searches were not 200"
    assert old and new and old != new
    assert versions_in_order(stream.answers) == [old, new]
