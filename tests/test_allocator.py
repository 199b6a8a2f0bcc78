"""serving/allocator.py: after keep_freed_memory, a big tensor freed and allocated again is not
page-faulted back in (before it, every round trip costs one fault per 4 KiB page)."""
from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

PROBE = r"""
import json, resource, sys, torch
from sketch2fashion.serving.allocator import keep_freed_memory

def faults_per_round(rounds=4, nbytes=40 * 2**20):
    # Warm-up: first touches fault, and torch's 64-byte-aligned request does not fit a chunk of
    # exactly its own size, so the heap grows a few rounds until freed neighbours have merged.
    for _ in range(12):
        torch.empty(nbytes, dtype=torch.uint8).fill_(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        torch.empty(nbytes, dtype=torch.uint8).fill_(1)  # allocated, written, freed
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds

default = faults_per_round()
said = keep_freed_memory()
print(json.dumps({"default": default, "kept": faults_per_round(), "said": said}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc malloc's")
def test_freed_big_buffers_stop_page_faulting():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    pages = 40 * 2**20 / 4096
    assert result["default"] > 0.5 * pages, result  # glibc mmaps >= 32 MiB chunks: faults every round
    assert result["kept"] < 0.02 * pages, result
    assert "mmap off" in result["said"]
