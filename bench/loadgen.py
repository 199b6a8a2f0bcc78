"""A bounded HTTP load generator (loopback only): closed loop (httpx async) and open loop.

Closed loop (`run`): `concurrency` clients each send a request, wait for its answer, and send the
next, until `requests` were sent or `max_seconds` passed. Open loop (`run_open_raw`, prebuilt
request bytes over plain asyncio streams): requests arrive at `rate` per second (Poisson arrivals, seeded) whether or not earlier ones were
answered, for `seconds` or `max_requests` arrivals — the way real shoppers arrive, and the only
way to push a server past its capacity to see how it sheds load.

Latency is per request, from send to the last byte, kept per status code (so refusals can be
checked to be fast). Throughput is reported twice: `throughput_rps` = answered OK requests per
second of the whole run (ramp-up and drain included), and `steady_rps` = OK answers per second
while every client was busy (see `LoadResult.steady_rps`), which is the saturated rate a long run
would show; it is None when the run was too short to have such a window. Refusing non-loopback URLs keeps a
benchmark from ever load-testing someone else's server by a typo.
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


def percentile_ms(values: list[float], q: float) -> float | None:
    """The q-th percentile of latencies in seconds, in ms to 0.1 (None without any)."""
    return round(float(np.percentile(np.asarray(values) * 1000.0, q)), 1) if values else None


@dataclass
class LoadResult:
    concurrency: int | None
    seconds: float
    latencies_s: list[float] = field(default_factory=list)  # successful requests only
    done_at: list[float] = field(default_factory=list)  # completion times of successful requests
    refused_latencies_s: list[float] = field(default_factory=list)  # 429 / 503 answers
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # transport errors by exception name
    started: float = 0.0
    full_until: float | None = None  # when the first client ran out of work (closed loop)
    offered_rps: float | None = None  # open loop: the arrival rate asked for
    sent: int = 0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def record(self, status: int, sent: float) -> None:
        """Count one answer with status `status` to a request sent at perf_counter() `sent`."""
        now = time.perf_counter()
        self.statuses[status] += 1
        if 200 <= status < 300:
            self.latencies_s.append(now - sent)
            self.done_at.append(now - self.started)
        elif status in (429, 503):
            self.refused_latencies_s.append(now - sent)

    def steady_rps(self) -> float | None:
        """OK answers per second while every client was busy, after each had its first answer.

        The window runs from the `concurrency`-th answer (the ramp is over) to `full_until` (the
        first client ran out of work). None when that window is under 1 s or holds fewer answers
        than clients: a server that finishes all requests together (processor sharing) gives a
        burst there, and the whole-run rate is the honest figure.
        """
        if not self.done_at or self.full_until is None:
            return None
        done = sorted(self.done_at)
        k = max(1, min(self.concurrency or 1, len(done))) - 1
        start = done[k]
        inside = [t for t in done if start < t <= self.full_until]
        window = self.full_until - start
        if window < 1.0 or len(inside) < max(self.concurrency or 1, 10):
            return None
        return len(inside) / window

    def summary(self) -> dict:
        steady = self.steady_rps()
        out = {"concurrency": self.concurrency, "requests": self.sent,
               "ok": self.ok, "throughput_rps": round(self.ok / self.seconds, 2) if self.seconds else 0.0,
               "steady_rps": round(steady, 2) if steady is not None else None,
               "p50_ms": percentile_ms(self.latencies_s, 50), "p95_ms": percentile_ms(self.latencies_s, 95),
               "p99_ms": percentile_ms(self.latencies_s, 99), "max_ms": percentile_ms(self.latencies_s, 100),
               "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
               "errors": dict(self.errors), "seconds": round(self.seconds, 2)}
        if self.offered_rps is not None:
            out.update({"offered_rps": round(self.offered_rps, 2),
                        "refused": len(self.refused_latencies_s),
                        "refused_p50_ms": percentile_ms(self.refused_latencies_s, 50),
                        "refused_p99_ms": percentile_ms(self.refused_latencies_s, 99)})
        return out


def check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise ValueError(f"{url}: the load generator only targets loopback addresses, not {host!r}")


async def _send(client: httpx.AsyncClient, make_request: RequestFactory, i: int, result: LoadResult) -> int | None:
    """One request; returns its status code (None on a transport error)."""
    sent = time.perf_counter()
    result.sent += 1
    try:
        response = await client.request(**make_request(i))
        await response.aread()
    except httpx.HTTPError as exc:
        result.errors[type(exc).__name__] += 1
        return None
    result.record(response.status_code, sent)
    return response.status_code


async def closed_loop(base_url: str, make_request: RequestFactory, *, concurrency: int, requests: int,
                      max_seconds: float, timeout_s: float = 120.0, refusal_backoff_s: float = 1.0) -> LoadResult:
    """Run the load; never more than `requests` sends, never longer than `max_seconds` to start one.

    A client whose request was refused (429/503) or failed waits `refusal_backoff_s` before its
    next one, as a retrying browser would, instead of hammering the server with instant retries.
    """
    check_loopback(base_url)
    result = LoadResult(concurrency=concurrency, seconds=0.0)
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as client:
        result.started = started = time.perf_counter()
        deadline = started + max_seconds

        async def worker() -> None:
            for i in counter:
                if time.perf_counter() > deadline:
                    break
                status = await _send(client, make_request, i, result)
                if status is None or status >= 400:
                    await asyncio.sleep(refusal_backoff_s)
            if result.full_until is None:
                result.full_until = time.perf_counter() - started

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


RawRequestFactory = Callable[[int], bytes]
"""i -> one complete HTTP/1.1 request (request line, headers with Content-Length, body)."""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep the connection) after reading one HTTP/1.1 response and its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() != "close"


async def open_loop_raw(base_url: str, make_request: RawRequestFactory, *, rate: float, seconds: float,
                        max_requests: int, max_in_flight: int = 2048, timeout_s: float = 120.0,
                        seed: int = 0) -> LoadResult:
    """Poisson arrivals at `rate`/s for `seconds` (at most `max_requests`), each sent at once as
    prebuilt request bytes over plain asyncio streams (keep-alive pool).

    The client never waits for answers before sending the next arrival; only `max_in_flight`
    (far above any server's limit) bounds it, and an arrival beyond it is counted as
    `client_dropped` instead of being sent. An overload test on a 2-core machine is only as good as its load generator is cheap: httpx
    spent ~25 ms of CPU per request at 160 requests/s (most of a core, taken from the server);
    writing prebuilt bytes and reading the status, headers and body costs a fraction of that.
    """
    check_loopback(base_url)
    parsed = urlparse(base_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    rng = np.random.default_rng(seed)
    result = LoadResult(concurrency=None, seconds=0.0, offered_rps=rate)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    tasks: set[asyncio.Task] = set()

    failures = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ValueError, IndexError)

    async def exchange(conn, payload: bytes) -> tuple[int, bool]:
        reader, writer = conn
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(_read_response(reader), timeout_s)

    async def one(i: int) -> None:
        sent = time.perf_counter()
        result.sent += 1
        conn = idle.pop() if idle else None
        reused = conn is not None
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
            try:
                status, keep = await exchange(conn, make_request(i))
            except (asyncio.IncompleteReadError, ConnectionError):
                if not reused:
                    raise
                # a kept-alive connection the server had closed: resend once on a new one, as
                # HTTP clients do
                conn[1].close()
                conn = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
                status, keep = await exchange(conn, make_request(i))
        except failures as exc:
            result.errors[type(exc).__name__] += 1
            if conn is not None:
                conn[1].close()
            return
        result.record(status, sent)
        if keep:
            idle.append(conn)
        else:
            conn[1].close()

    result.started = started = time.perf_counter()
    next_at = 0.0
    for i in range(max_requests):
        next_at += float(rng.exponential(1.0 / rate))
        if next_at > seconds:
            break
        delay = started + next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= max_in_flight:
            result.errors["client_dropped"] += 1
            continue
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    result.full_until = time.perf_counter() - started
    if tasks:
        await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    for _, writer in idle:
        writer.close()
    return result


def run(base_url: str, make_request: RequestFactory, **kwargs) -> LoadResult:
    return asyncio.run(closed_loop(base_url, make_request, **kwargs))


def run_open_raw(base_url: str, make_request: RawRequestFactory, **kwargs) -> LoadResult:
    return asyncio.run(open_loop_raw(base_url, make_request, **kwargs))
