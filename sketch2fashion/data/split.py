"""Train / validation / test split by a stable hash of each item's id.

Hashing (not shuffling) means an image keeps its split when others are added or removed, so the
held-out sets never leak into training across data versions; changing the salt reshuffles.

Each id gets a position in [0, 1) from a salted sha256. Positions below `val_fraction` are val
(the epoch-choosing split, the same ids as before the test split existed), the next
`test_fraction` are test (the promotion-judging split), the rest train. A category whose test
band holds fewer than `min_test` usable items takes the train items next in position order into
test until it has `min_test`, or until one more would leave train no larger than test: a
per-category threshold, so it too moves only items at the band's edge when data changes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_HASH_SPAN = float(2 ** 64)
TRAIN, VAL, TEST = "train", "val", "test"
SPLITS = (TRAIN, VAL, TEST)
ISOLATION_FAILED = "failed"  # data.manifest's value; rows with it are never scored, so never counted


@dataclass(frozen=True)
class SplitPlan:
    """params.yaml `split`: val and test fractions, the smallest test split per category, the salt."""

    val_fraction: float
    test_fraction: float
    min_test: int
    salt: str

    def __post_init__(self) -> None:
        if not (0.0 <= self.val_fraction <= 1.0 and 0.0 <= self.test_fraction <= 1.0
                and self.val_fraction + self.test_fraction <= 1.0):
            raise ValueError(f"split fractions must be within 0..1 and add up to at most 1, got "
                             f"val {self.val_fraction}, test {self.test_fraction}")
        if self.min_test < 0:
            raise ValueError(f"split.min_test must be 0 or more, got {self.min_test}")


def position(item_id: str, salt: str) -> float:
    """Where an id falls in [0, 1): uniform over ids, fixed for an (id, salt) pair."""
    digest = hashlib.sha256(f"{salt}{item_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPAN


def split_of(item_id: str, val_fraction: float, salt: str, test_fraction: float = 0.0) -> str:
    """The hash band of an id: "val", "test" or "train" (before any min_test top-up)."""
    if not (0.0 <= val_fraction <= 1.0 and 0.0 <= test_fraction <= 1.0 and val_fraction + test_fraction <= 1.0):
        raise ValueError(f"fractions must be within 0..1 and add up to at most 1, got {val_fraction}, {test_fraction}")
    where = position(item_id, salt)
    if where < val_fraction:
        return VAL
    return TEST if where < val_fraction + test_fraction else TRAIN


def assign_splits(rows: Iterable[Mapping[str, Any]], plan: SplitPlan) -> list[dict[str, Any]]:
    """Copies of `rows` with `split` filled from each row's `id` and `category` (inputs untouched)."""
    out = [{**row, "split": split_of(str(row["id"]), plan.val_fraction, plan.salt, plan.test_fraction)}
           for row in rows]
    by_category: dict[str, list[dict[str, Any]]] = {}
    for row in out:
        if row.get("isolation") != ISOLATION_FAILED:
            by_category.setdefault(str(row.get("category", "")), []).append(row)
    for usable in by_category.values():
        test = sum(row["split"] == TEST for row in usable)
        train = sorted((row for row in usable if row["split"] == TRAIN),
                       key=lambda row: position(str(row["id"]), plan.salt))
        left = len(train)
        for row in train:  # lowest positions first: the edge of the test band
            if test >= plan.min_test or left - 1 <= test + 1:
                break
            row["split"] = TEST
            test, left = test + 1, left - 1
    return out


def split_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """{category: {"train": n, "val": m, "test": k}} for the split report."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        per_category = counts.setdefault(str(row.get("category", "")), {s: 0 for s in SPLITS})
        per_category[str(row["split"])] = per_category.get(str(row["split"]), 0) + 1
    return counts
