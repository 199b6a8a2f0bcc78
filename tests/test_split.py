"""Hash splits: stable per id, close to the requested fractions, reshuffled by the salt; a test
split topped up to min_test per category where the data allows."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sketch2fashion.data.manifest import read_manifest, write_manifest
from sketch2fashion.data.split import SplitPlan, assign_splits, position, split_counts, split_of
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
    out = assign_splits(rows, SplitPlan(0.2, 0.15, 0, "s"))
    assert all(row["split"] == "" for row in rows)
    assert [row["split"] for row in out] == [split_of(i, 0.2, "s", 0.15) for i in IDS[:300]]
    # adding items never moves existing ones
    more = assign_splits(rows + [{"id": "new", "category": "top"}], SplitPlan(0.2, 0.15, 0, "s"))
    assert more[:300] == out
    counts = split_counts(out)
    assert counts["top"]["train"] + counts["top"]["val"] + counts["top"]["test"] == 300
    assert abs(counts["top"]["test"] / 300 - 0.15) < 0.05


def test_val_keeps_its_ids_when_a_test_split_is_added():
    """The test band sits after the val band, so the val split (which chose past epochs) is unchanged."""
    assert [split_of(i, 0.15, "s") == "val" for i in IDS] == [split_of(i, 0.15, "s", 0.15) == "val" for i in IDS]
    assert {split_of(i, 0.15, "s", 0.15) for i in IDS} == {"train", "val", "test"}


def test_a_small_test_band_is_topped_up_to_min_test_from_the_edge_of_the_band():
    rows = [{"id": f"{cat}-{i}", "category": cat, "isolation": "ok"} for cat, n in (("top", 150), ("hat", 12))
            for i in range(n)]
    rows.append({"id": "hat-broken", "category": "hat", "isolation": "failed"})
    plan = SplitPlan(0.15, 0.15, 30, "s2f-split-v1")
    out = assign_splits(rows, plan)
    counts = split_counts(r for r in out if r["isolation"] == "ok")
    assert counts["top"]["test"] >= 30 and counts["top"]["test"] / 150 >= 0.15  # the demo's 150: at least 30
    assert counts["hat"]["train"] > counts["hat"]["test"] >= 2  # 12 items: train stays the larger split
    assert counts["hat"]["train"] - counts["hat"]["test"] <= 2  # ...but only just: the data allowed no more
    for cat in ("top", "hat"):
        usable = [r for r in out if r["category"] == cat and r["isolation"] == "ok"]
        band = [r for r in usable if split_of(r["id"], 0.15, plan.salt, 0.15) == "test"]
        assert all(r["split"] == "test" for r in band)  # the hash band is always test
        moved = [r for r in usable if r["split"] == "test" and r not in band]
        kept = [r for r in usable if r["split"] == "train"]
        if moved:  # topped up from the band's edge: every moved item sits before every train item
            assert max(position(r["id"], plan.salt) for r in moved) < min(position(r["id"], plan.salt) for r in kept)
        assert all(r["split"] == split_of(r["id"], 0.15, plan.salt, 0.15) for r in usable if r["split"] == "val")
    with pytest.raises(ValueError, match="add up to at most 1"):
        SplitPlan(0.6, 0.5, 0, "s")


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
    split = params["split"]
    assert all((row["split"] == "val") == (split_of(row["id"], split["val_fraction"], split["salt"]) == "val")
               for row in merged)
    report = json.loads(report_path.read_text())
    assert report["total"]["images"] == len(merged) and report["min_test"] == split["min_test"]
    for category in params["categories"]:
        counts = report["categories"][category]
        assert counts["train"] + counts["val"] + counts["test"] == sum(r["category"] == category for r in merged)
        assert counts["isolation_failed"] == 1
        assert counts["test"] >= min(split["min_test"], 15)  # 39+ usable items: the top-up stops at train > test


def test_split_stage_refuses_a_missing_key(project_root: Path, tmp_path: Path):
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    del params["split"]["min_test"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [sys.executable, str(project_root / "training" / "split.py"), "--params", str(tmp_path / "params.yaml"),
         "--data-dir", str(tmp_path / "data"), "--report", str(tmp_path / "split.json")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "missing split.min_test" in result.stderr


def test_split_stage_names_a_missing_manifest(project_root: Path, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, str(project_root / "training" / "split.py"), "--params", str(project_root / "params.yaml"),
         "--data-dir", str(tmp_path / "data"), "--report", str(tmp_path / "split.json")],
        capture_output=True, text=True, timeout=HANG_SECONDS)
    assert result.returncode != 0
    assert "manifest.csv" in result.stderr and "Traceback" not in result.stderr
