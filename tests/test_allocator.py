"""serving/allocator.py: after keep_freed_memory, a big tensor freed and allocated again is not
page-faulted back in (before it, every round trip costs one fault per 4 KiB page)."""
from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from waiting import HANG_SECONDS

MIB = 36  # above glibc's 32 MiB limit for its dynamic mmap threshold: always mmap'd by default

PROBE = r"""
import json, resource, sys, torch
from sketch2fashion.serving.allocator import keep_freed_memory

NBYTES = int(sys.argv[1]) * 2**20

def round_trip_faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(NBYTES, dtype=torch.uint8).fill_(1)  # allocated, written, freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def settled_faults(limit=80, rounds=4):
    # Kept memory settles after a few rounds: torch asks for 64-byte-aligned memory, which does
    # not fit a freed chunk of exactly its own size, so the heap grows until freed neighbours
    # merge. glibc's default never settles: every round maps and unmaps the buffer.
    quiet = 0
    for _ in range(limit):
        quiet = quiet + 1 if round_trip_faults() == 0 else 0
        if quiet == 3:
            break
    return sum(round_trip_faults() for _ in range(rounds)) / rounds

default = settled_faults()
said = keep_freed_memory()
print(json.dumps({"default": default, "kept": settled_faults(), "said": said}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc malloc's")
def test_freed_big_buffers_stop_page_faulting():
    out = subprocess.run([sys.executable, "-c", PROBE, str(MIB)], capture_output=True, text=True, check=True,
                         timeout=HANG_SECONDS)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    pages = MIB * 2**20 / 4096
    assert result["default"] > 0.5 * pages, result  # mapped and faulted in again every round
    assert result["kept"] < 0.02 * pages, result
    assert "mmap off" in result["said"]
