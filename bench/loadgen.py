"""A bounded closed-loop HTTP load generator (httpx async, loopback only).

`concurrency` clients each send a request, wait for its answer, and send the next, until
`requests` answers came back or `max_seconds` passed. Latency is per request, from send to the
last byte; throughput is answered requests per second of wall time. Refusing non-loopback URLs
keeps a benchmark from ever load-testing someone else's server by a typo.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx
import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}

RequestFactory = Callable[[int], dict]
"""i -> keyword arguments of httpx.AsyncClient.request (method, url, files, data...)."""


@dataclass
class LoadResult:
    concurrency: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list)  # successful requests only
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # transport errors by exception name

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_s) * 1000.0
        pct = (lambda q: round(float(np.percentile(lat, q)), 1)) if lat.size else (lambda q: None)
        return {"concurrency": self.concurrency, "requests": sum(self.statuses.values()) + sum(self.errors.values()),
                "ok": self.ok, "throughput_rps": round(self.ok / self.seconds, 2) if self.seconds else 0.0,
                "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "errors": dict(self.errors), "seconds": round(self.seconds, 2)}


def check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise ValueError(f"{url}: the load generator only targets loopback addresses, not {host!r}")


async def closed_loop(base_url: str, make_request: RequestFactory, *, concurrency: int, requests: int,
                      max_seconds: float, timeout_s: float = 120.0) -> LoadResult:
    """Run the load; never more than `requests` sends, never longer than `max_seconds` to start one."""
    check_loopback(base_url)
    result = LoadResult(concurrency=concurrency, seconds=0.0)
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as client:
        started = time.perf_counter()
        deadline = started + max_seconds

        async def worker() -> None:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                try:
                    response = await client.request(**make_request(i))
                    await response.aread()
                except httpx.HTTPError as exc:
                    result.errors[type(exc).__name__] += 1
                    continue
                result.statuses[response.status_code] += 1
                if 200 <= response.status_code < 300:
                    result.latencies_s.append(time.perf_counter() - sent)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def run(base_url: str, make_request: RequestFactory, **kwargs) -> LoadResult:
    return asyncio.run(closed_loop(base_url, make_request, **kwargs))
