"""A disk that fills up while an index version or a training checkpoint is being written.

The writer runs in a child process whose file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored)
makes every write past a few KB fail with an OSError, as a full disk does, without needing a
tmpfs mount (root) on the test machine. Afterwards the old version is still the one published
and served, nothing half-written is ever picked up, and no partial file is left behind.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from sketch2fashion.catalog.index import IndexConfig, IndexReader, IndexWriter, read_pointer
from sketch2fashion.colorizer.checkpoint import CheckpointDir

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 64 * 1024
FULL_DISK = f"""
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT_BYTES}, {LIMIT_BYTES}))
"""


def run_with_full_disk(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", FULL_DISK + textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def failed_writing(done: subprocess.CompletedProcess) -> bool:
    """The child died of a failed write (numpy and the OS say OSError, torch.save a RuntimeError from
    its zip writer), not of anything else."""
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    return done.returncode != 0 and last.startswith(("OSError", "RuntimeError: [enforce fail at inline_container"))


def table(n: int) -> list[dict]:
    return [{"id": f"p{i}", "category": "top" if i % 2 else "pants", "brand": "b", "price": 1.0} for i in range(n)]


def test_disk_full_while_publishing_an_index_version_keeps_the_old_one_served(tmp_path):
    rng = np.random.default_rng(0)
    writer = IndexWriter(IndexConfig(exact_threshold=10**9))
    old = writer.build(rng.normal(size=(50, 16)).astype(np.float32), table(50), tmp_path)
    reader = IndexReader(tmp_path)
    before = sorted(p.name for p in (tmp_path / "versions").iterdir())

    done = run_with_full_disk(f"""
        import numpy as np
        from sketch2fashion.catalog.index import IndexConfig, IndexWriter
        rows = [{{"id": f"p{{i}}", "category": "top", "brand": "b", "price": 1.0}} for i in range(4000)]
        vectors = np.random.default_rng(1).normal(size=(4000, 16)).astype(np.float32)  # 256 KB: past the limit
        IndexWriter(IndexConfig(exact_threshold=10**9)).build(vectors, rows, {str(tmp_path)!r})
    """)
    assert failed_writing(done), done.stderr[-2000:]
    assert read_pointer(tmp_path) == old
    assert sorted(p.name for p in (tmp_path / "versions").iterdir()) == before  # no half-written version, no staging
    assert reader.refresh() and reader.version == old and len(reader) == 50
    assert IndexReader(tmp_path).version == old  # a server starting now opens the old one too


def test_disk_full_while_saving_a_checkpoint_keeps_the_last_whole_one(tmp_path):
    folder = tmp_path / "checkpoints"
    CheckpointDir(folder).save(1, {"weights": torch.zeros(10)})

    done = run_with_full_disk(f"""
        import torch
        from sketch2fashion.colorizer.checkpoint import CheckpointDir
        CheckpointDir(__import__("pathlib").Path({str(folder)!r})).save(2, {{"weights": torch.zeros(100_000)}})
    """)
    assert failed_writing(done), done.stderr[-2000:]
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0001.pt"]  # no partial epoch 2, no temp file
    latest = CheckpointDir(folder).latest()
    assert latest is not None and latest["epoch"] == 1 and latest["weights"].shape == (10,)


def test_the_full_disk_harness_lets_small_writes_through(tmp_path):
    """The fault is the limit, not the harness: a write under it succeeds in the same child."""
    done = run_with_full_disk(f"open({str(tmp_path / 'small')!r}, 'wb').write(b'x' * 1000)")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "small").stat().st_size == 1000
