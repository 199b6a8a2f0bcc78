"""How far a category's training has come, written where the running service can read it.

`make demo` serves the page while later categories still train; the page then says "hat: still
training, epoch 2 of 4" instead of failing. The training loop writes a small JSON file beside
the category's model (`models/<category>/progress.json`, never tracked by git or DVC) at most
every few seconds, atomically, and the service reads it for categories without a champion.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.json"
MIN_INTERVAL_S = 2.0
"""Writes closer together than this are skipped (the last one of an epoch always lands)."""
STALE_AFTER_S = 900.0
"""A progress file not updated for this long describes a training that is no longer running."""


def progress_path(models_dir: str | Path, category: str) -> Path:
    return Path(models_dir) / category / PROGRESS_FILE


class ProgressFile:
    """Writes {category, state, epoch, epochs, step, steps, images_per_s, updated_at} for one run."""

    def __init__(self, path: str | Path, category: str, epochs: int) -> None:
        self.path = Path(path)
        self.category = category
        self.epochs = int(epochs)
        self._last = 0.0

    def update(self, *, epoch: int, step: int, steps: int, images_per_s: float | None = None,
               state: str = "training", force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < MIN_INTERVAL_S:
            return
        self._last = now
        write_json_atomic(self.path, {
            "category": self.category, "state": state, "epoch": int(epoch), "epochs": self.epochs,
            "step": int(step), "steps": int(steps),
            "images_per_s": None if images_per_s is None else round(float(images_per_s), 2),
            "updated_at": round(now, 3)})

    def finish(self, state: str = "done") -> None:
        self.update(epoch=self.epochs, step=0, steps=0, state=state, force=True)


def read_progress(path: str | Path, *, now: float | None = None) -> dict[str, Any] | None:
    """The progress a training run last wrote, or None (no file, unreadable, or stale)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("updated_at"), (int, float)):
        return None
    if (now or time.time()) - float(data["updated_at"]) > STALE_AFTER_S:
        return None
    return {k: data.get(k) for k in ("state", "epoch", "epochs", "step", "steps", "images_per_s", "updated_at")}


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Readers never see half a file: write a temporary file beside it, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
