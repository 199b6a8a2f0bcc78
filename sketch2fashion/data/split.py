"""Train/validation split by a stable hash of each item's id.

Hashing (not shuffling) means an image keeps its split when others are added or removed, so the
validation set never leaks into training across data versions; changing the salt reshuffles.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

_HASH_SPAN = float(2 ** 64)


def split_of(item_id: str, val_fraction: float, salt: str) -> str:
    """"val" for about `val_fraction` of ids, "train" for the rest; the same id always agrees."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be within 0..1, got {val_fraction}")
    digest = hashlib.sha256(f"{salt}{item_id}".encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / _HASH_SPAN  # uniform in [0, 1)
    return "val" if position < val_fraction else "train"


def assign_splits(rows: Iterable[Mapping[str, Any]], val_fraction: float,
                  salt: str) -> list[dict[str, Any]]:
    """Copies of `rows` with `split` filled from each row's `id` (inputs are not modified)."""
    return [{**row, "split": split_of(str(row["id"]), val_fraction, salt)} for row in rows]


def split_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """{category: {"train": n, "val": m}} for the split report."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        per_category = counts.setdefault(str(row.get("category", "")), {"train": 0, "val": 0})
        per_category[str(row["split"])] = per_category.get(str(row["split"]), 0) + 1
    return counts
