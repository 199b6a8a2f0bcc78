"""Keep freed memory inside the serving process instead of handing it back to the kernel.

Why: glibc's malloc serves every request of 32 MiB or more with a fresh `mmap` and unmaps it on
`free`. The compiled full U-Net at batch 8 allocates one 33.5 MB decoder buffer per call
(8 x 128 channels x 128 x 128, bf16), so every call page-faulted it back in (8,194 minor faults,
the kernel zeroing 33.5 MB): 174 -> 153 ms per call once freed memory stays in the heap (bench/
NOTES.md item 9). Smaller buffers never had the problem: glibc raises its mmap threshold to the
size of any chunk freed below 32 MiB. This is what PyTorch's CPU tuning guides get by preloading
jemalloc or tcmalloc; `mallopt` does it in-process, with nothing to install.

The cost is that the heap keeps its high-water mark (the process does not shrink after a burst),
which a long-running model server reaches in its first batches anyway. One malloc arena for the
whole process keeps that to one high-water mark rather than one per thread that ever ran a batch.
Not glibc (musl, macOS): nothing to do, and nothing is done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger("sketch2fashion.serving")

# glibc <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
KEEP_BYTES = 2**31 - 1
"""Free heap top (bytes) glibc may keep before giving memory back: mallopt's largest (an int)."""


def keep_freed_memory(arenas: int = 1) -> str:
    """Make glibc malloc reuse freed memory: no mmap'd chunks, no trimming, `arenas` arenas.

    Returns what was set, or "" where this is not glibc. Call it before the model's first
    batch; chunks already mapped keep their old behaviour until freed.
    """
    if platform.libc_ver()[0] != "glibc":
        return ""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = all([libc.mallopt(M_MMAP_MAX, 0), libc.mallopt(M_ARENA_MAX, int(arenas))])
    ok = ok and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    if not ok:
        log.warning("mallopt refused a setting; freed tensor memory may still go back to the kernel")
        return ""
    return f"glibc malloc: mmap off, trim threshold 2 GiB, {arenas} arena(s)"
