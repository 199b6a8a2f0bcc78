"""How tests wait: on the event itself, with one generous bound that only a hang reaches.

A test that gives a server "poll interval + 20 s" to load and compile a model fails on a CPU
that compiles slower (an AVX2-only machine took longer than that), though nothing is wrong.
So tests poll for the state change they expect and give up only after HANG_SECONDS; the same
bound guards subprocesses and servers that might hang.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

HANG_SECONDS = 600.0
"""Longer than anything a healthy run needs on a slow shared 2-core CPU; reached only by a hang."""


def wait_until(condition: Callable[[], T], what: str, *, timeout: float = HANG_SECONDS,
               interval: float = 0.2, details: Callable[[], str] | None = None) -> T:
    """Call `condition` until it returns something truthy and return that; AssertionError naming
    `what` (and `details()`, e.g. a server log) when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            extra = f"\n{details()}" if details else ""
            raise AssertionError(f"waited {timeout:.0f} s for {what}{extra}")
        time.sleep(interval)
