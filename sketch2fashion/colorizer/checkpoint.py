"""Training checkpoints that survive a kill: atomic writes, newest-first lookup, pruning.

A checkpoint carries a fingerprint of the configuration that produced it, so `--resume` never
continues a run whose data or parameters changed (it starts over instead, and says so).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")


def fingerprint(*parts: Any) -> str:
    """Stable short hash of JSON-able configuration parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_atomic(obj: Any, path: Path) -> Path:
    """torch.save via a temp file in the same folder + os.replace: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class CheckpointDir:
    """`epoch-NNNN.pt` files in one folder; keeps the newest `keep` of them."""

    def __init__(self, folder: Path, keep: int = 2) -> None:
        self.folder = Path(folder)
        self.keep = max(1, keep)

    def paths(self) -> list[tuple[int, Path]]:
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]
        return sorted(found)

    def save(self, epoch: int, state: dict[str, Any]) -> Path:
        path = save_atomic({**state, "epoch": epoch}, self.folder / f"epoch-{epoch:04d}.pt")
        for _, old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def latest(self) -> dict[str, Any] | None:
        """The newest checkpoint that loads; a corrupt newest one falls back to the one before."""
        for _, path in reversed(self.paths()):
            try:
                return torch.load(path, map_location="cpu", weights_only=False)
            except Exception:  # truncated by a crash outside our atomic write (e.g. disk full)
                continue
        return None

    def clear(self) -> None:
        for _, path in self.paths():
            path.unlink(missing_ok=True)
