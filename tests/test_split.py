"""Hash splits: stable per id, close to the requested fraction, reshuffled by the salt."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sketch2fashion.data.manifest import read_manifest, write_manifest
from sketch2fashion.data.split import assign_splits, split_counts, split_of
from waiting import HANG_SECONDS

IDS = [f"item-{i:05d}" for i in range(2000)]


def test_same_id_same_split_across_calls():
    first = [split_of(i, 0.15, "salt") for i in IDS]
    assert first == [split_of(i, 0.15, "salt") for i in IDS]
    assert set(first) == {"train", "val"}


def test_fraction_is_close_to_val_fraction():
    for fraction in (0.1, 0.15, 0.3):
        share = sum(split_of(i, fraction, "s2f-split-v1") == "val" for i in IDS) / len(IDS)
        assert abs(share - fraction) < 0.025


def test_changing_the_salt_changes_the_split():
    a = [split_of(i, 0.15, "v1") for i in IDS]
    b = [split_of(i, 0.15, "v2") for i in IDS]
    assert sum(x != y for x, y in zip(a, b)) > 100


def test_split_ignores_other_items_and_edges():
    assert all(split_of(i, 0.0, "s") == "train" for i in IDS[:200])
    assert all(split_of(i, 1.0, "s") == "val" for i in IDS[:200])
    with pytest.raises(ValueError):
        split_of("x", 1.5, "s")


def test_assign_splits_copies_rows():
    rows = [{"id": i, "category": "top", "split": ""} for i in IDS[:300]]
    out = assign_splits(rows, 0.2, "s")
    assert all(row["split"] == "" for row in rows)
    assert [row["split"] for row in out] == [split_of(i, 0.2, "s") for i in IDS[:300]]
    # adding items never moves existing ones
    more = assign_splits(rows + [{"id": "new", "category": "top"}], 0.2, "s")
    assert more[:300] == out
    counts = split_counts(out)
    assert counts["top"]["train"] + counts["top"]["val"] == 300


def test_split_stage_merges_category_manifests(project_root: Path, tmp_path: Path):
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    data = tmp_path / "data"
    for n, category in enumerate(params["categories"]):
        rows = [{"id": f"{category}-{i}", "category": category, "image": f"raw/{category}/{category}-{i}.png",
                 "isolation": "failed" if i == 0 else "ok"} for i in range(40 + n)]
        write_manifest(data / "raw" / category / "manifest.csv", rows)
    report_path = tmp_path / "reports" / "split.json"
    result = subprocess.run(
        [sys.executable, str(project_root / "training" / "split.py"), "--params", str(project_root / "params.yaml"),
         "--data-dir", str(data), "--report", str(report_path)],
        capture_output=True, text=True, timeout=HANG_SECONDS)
    assert result.returncode == 0, result.stderr
    merged = read_manifest(data / "manifest.csv")
    assert len(merged) == sum(40 + n for n in range(len(params["categories"])))
    salt, fraction = params["split"]["salt"], params["split"]["val_fraction"]
    assert all(row["split"] == split_of(row["id"], fraction, salt) for row in merged)
    report = json.loads(report_path.read_text())
    assert report["total"]["images"] == len(merged)
    for category in params["categories"]:
        counts = report["categories"][category]
        assert counts["train"] + counts["val"] == sum(r["category"] == category for r in merged)
        assert counts["isolation_failed"] == 1


def test_split_stage_names_a_missing_manifest(project_root: Path, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, str(project_root / "training" / "split.py"), "--params", str(project_root / "params.yaml"),
         "--data-dir", str(tmp_path / "data"), "--report", str(tmp_path / "split.json")],
        capture_output=True, text=True, timeout=HANG_SECONDS)
    assert result.returncode != 0
    assert "manifest.csv" in result.stderr and "Traceback" not in result.stderr
