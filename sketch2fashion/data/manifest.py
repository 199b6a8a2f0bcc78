"""The manifest: one CSV row per training image, the contract between pipeline stages.

Ingest writes one per category, split merges them and fills `split`, later stages read it. The
column list is fixed so a stage that drifts fails loudly here instead of silently downstream.
Rows are plain dicts; values are written as text and read back as text.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sketch2fashion.imaging.io import write_bytes_atomic

MANIFEST_COLUMNS: tuple[str, ...] = (
    "id", "category", "image", "mask", "source", "sha256", "width", "height",
    "mask_fraction", "isolation", "title", "color", "split",
)
ISOLATION_OK = "ok"
ISOLATION_FAILED = "failed"
SPLITS = ("train", "val", "test")

Row = dict[str, str]


class ManifestError(ValueError):
    """A manifest is missing, has the wrong columns, or a row does not fit the schema."""


def write_manifest(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Atomically write `rows` (missing columns blank, unknown ones refused); returns the count."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        unknown = set(row) - set(MANIFEST_COLUMNS)
        if unknown:
            raise ManifestError(f"{path}: unknown manifest column(s) {sorted(unknown)}; "
                                f"the columns are {', '.join(MANIFEST_COLUMNS)}")
        writer.writerow({col: _as_text(row.get(col, "")) for col in MANIFEST_COLUMNS})
        count += 1
    write_bytes_atomic(path, buffer.getvalue().encode("utf-8"))
    return count


def read_manifest(path: str | Path) -> list[Row]:
    """Rows of a manifest CSV as text dicts; refuses a file missing any manifest column."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest; run the ingest stage first (dvc repro)")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [col for col in MANIFEST_COLUMNS if col not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}; "
                                "re-run the stage that wrote it")
        return [{col: row.get(col) or "" for col in MANIFEST_COLUMNS} for row in reader]


def _as_text(value: Any) -> str:
    """Stable text for CSV: floats to 4 decimals (DVC sees no churn from float noise)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
