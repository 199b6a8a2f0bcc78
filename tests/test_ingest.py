"""Ingest: scanning, feeds, manifests, bad files, and the DVC stage script end to end."""
from __future__ import annotations

import hashlib
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from sketch2fashion.data.ingest import (
    FeedError, IngestError, IngestSettings, assign_ids, ingest_category, read_feed, scan_source,
)
from sketch2fashion.data.manifest import MANIFEST_COLUMNS, ManifestError, read_manifest, write_manifest
from sketch2fashion.params import load_params
from waiting import HANG_SECONDS

ALIASES = {"top": ["t-shirt", "tee"], "pants": ["trousers"]}


# --- synthetic source photos ------------------------------------------------------------------

def garment_photo(seed: int, *, white: bool, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """A coloured blob on white (shop shot) or on a noisy striped floor (home photo)."""
    rng = np.random.default_rng(seed)
    height, width = size
    if white:
        photo = np.full((height, width, 3), 255, np.uint8)
    else:
        stripes = (np.arange(width) // 9 % 2 * 40 + 120).astype(np.uint8)
        photo = np.dstack([stripes, stripes - 30, stripes - 60])[None].repeat(height, 0)[0]
        photo = np.broadcast_to(photo, (height, width, 3)).copy()
        photo = np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
    colour = tuple(int(c) for c in rng.integers(20, 200, 3))
    cv2.ellipse(photo, (width // 2, height // 2), (width // 3, height // 3), 0, 0, 360, colour, -1)
    return photo


def write_image(path: Path, rgb: np.ndarray, fmt: str | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, fmt, **kwargs)
    return path


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def messy_source(tmp_path: Path) -> Path:
    """A source tree with good photos, every kind of bad file, and decoys."""
    root = tmp_path / "source"
    write_image(root / "top" / "good-white.png", garment_photo(0, white=True))
    write_image(root / "train" / "T-Shirt" / "good-floor.JPG", garment_photo(1, white=False), "JPEG")
    cmyk = Image.fromarray(garment_photo(2, white=True)).convert("CMYK")
    (root / "validation" / "tee").mkdir(parents=True)
    (root / "validation" / "tee" / "cmyk.jpg").write_bytes(jpeg_bytes(cmyk))
    full = jpeg_bytes(Image.fromarray(garment_photo(3, white=False)))
    (root / "top" / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (root / "top" / "zero.jpg").write_bytes(b"")
    (root / "top" / "notes.png").write_text("this is not a picture\n")
    write_image(root / "top" / "dot.png", np.zeros((1, 1, 3), np.uint8))
    # decoys: wrong category, wrong extension, too deep, hidden
    write_image(root / "train" / "shoes" / "boot.png", garment_photo(4, white=True))
    (root / "top" / "readme.txt").write_text("photos of tops\n")
    write_image(root / "a" / "b" / "top" / "deep.png", garment_photo(5, white=True))
    write_image(root / "top" / ".hidden.png", garment_photo(6, white=True))
    return root


@pytest.fixture
def params() -> dict:
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    params["image"]["size"] = 64
    params["source"]["aliases"] = ALIASES
    return params


# --- scanning and ids ----------------------------------------------------------------------

def test_scan_source_finds_alias_folders_case_insensitively(messy_source: Path):
    found = [p.relative_to(messy_source).as_posix() for p in scan_source(messy_source, "top", ALIASES)]
    assert found == [
        "top/dot.png", "top/good-white.png", "top/notes.png", "top/truncated.jpg", "top/zero.jpg",
        "train/T-Shirt/good-floor.JPG", "validation/tee/cmyk.jpg",
    ]
    assert scan_source(messy_source, "pants", ALIASES) == []


def test_duplicate_stems_get_stable_distinct_ids(tmp_path: Path):
    files = [tmp_path / "top/a.png", tmp_path / "train/top/a.jpg", tmp_path / "top/b.png"]
    ids = assign_ids(files, tmp_path)
    assert ids[0] == "a" and ids[2] == "b"
    assert ids[1].startswith("a-") and len(set(ids)) == 3
    assert assign_ids(files, tmp_path) == ids


# --- feeds and manifests -------------------------------------------------------------------

def test_read_feed_csv_with_aliases_and_missing_columns(tmp_path: Path):
    feed = tmp_path / "products.csv"
    feed.write_text("\ufeffid,Title,Category,colour\nx1,Blue tee,top,blue\nx2,\"Red, wide\",pants,red\n,,,\n",
                    encoding="utf-8")
    rows = read_feed(feed)
    assert list(rows) == ["x1", "x2"]
    assert rows["x1"]["product_type"] == "top" and rows["x1"]["color"] == "blue"
    assert rows["x2"]["title"] == "Red, wide"
    assert rows["x2"]["price"] == "" and rows["x2"]["image_link"] == ""


def test_read_feed_tsv_and_errors(tmp_path: Path):
    tsv = tmp_path / "feed.tsv"
    tsv.write_text("id\ttitle\tcolor\nx1\tA top\tgreen\n")
    assert read_feed(tsv)["x1"]["color"] == "green"
    with pytest.raises(FeedError, match="missing.csv"):
        read_feed(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,title\n1,a\n")
    with pytest.raises(FeedError, match="no 'id' column"):
        read_feed(bad)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,title\nx1,Pull \xe9t\xe9\n".encode("latin-1"))
    with pytest.raises(FeedError, match="UTF-8"):
        read_feed(latin)


def test_manifest_round_trip(tmp_path: Path):
    rows = [
        {"id": "a", "category": "top", "image": "raw/top/a.png", "mask": "masks/top/a.png",
         "source": "top/a.jpg", "sha256": "0" * 64, "width": 400, "height": 533,
         "mask_fraction": 0.41234, "isolation": "ok", "title": 'Blue "tee", slim', "color": "blue"},
        {"id": "b", "category": "top", "isolation": "failed", "split": "val"},
    ]
    path = tmp_path / "sub" / "manifest.csv"
    assert write_manifest(path, rows) == 2
    back = read_manifest(path)
    assert list(back[0]) == list(MANIFEST_COLUMNS)
    assert back[0]["width"] == "400" and back[0]["mask_fraction"] == "0.4123"
    assert back[0]["title"] == 'Blue "tee", slim' and back[0]["split"] == ""
    assert back[1]["split"] == "val" and back[1]["image"] == ""
    write_manifest(path, back)
    assert read_manifest(path) == back
    with pytest.raises(ManifestError, match="unknown manifest column"):
        write_manifest(path, [{"id": "c", "colour": "red"}])
    (tmp_path / "old.csv").write_text("id,category\na,top\n")
    with pytest.raises(ManifestError, match="missing column"):
        read_manifest(tmp_path / "old.csv")


# --- ingest ----------------------------------------------------------------------------------

def test_ingest_category_handles_every_bad_file(messy_source: Path, tmp_path: Path, params: dict, caplog):
    data = tmp_path / "data"
    stale = data / "raw" / "top" / "stale.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old run")
    feed = {"good-white": {"id": "good-white", "title": "White shot tee", "color": "teal"}}
    with caplog.at_level(logging.WARNING, logger="sketch2fashion.data.ingest"):
        report = ingest_category(messy_source, "top", data, params=params, feed=feed)

    assert report.found == 7 and report.ingested == 3 and report.skipped == 4
    assert report.skipped_by_reason == {"corrupt or truncated image": 1, "empty file": 1,
                                        "not an image": 1, "too small": 1}
    reasons = {entry["file"]: entry["reason"] for entry in report.skipped_files}
    assert reasons["top/zero.jpg"] == "empty file"
    assert reasons["top/notes.png"] == "not an image"
    assert reasons["top/dot.png"] == "too small: 1x1 (min 32 px)"
    assert reasons["top/truncated.jpg"].startswith("corrupt or truncated image")
    skip_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
    assert len(skip_lines) == 4 and all(any(f in line for line in skip_lines) for f in reasons)

    assert not stale.exists()
    rows = {row["id"]: row for row in read_manifest(data / "raw" / "top" / "manifest.csv")}
    assert sorted(rows) == ["cmyk", "good-floor", "good-white"]
    assert rows["good-white"]["title"] == "White shot tee" and rows["good-white"]["color"] == "teal"
    for row in rows.values():
        image = cv2.imread(str(data / row["image"]))
        mask = cv2.imread(str(data / row["mask"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (64, 64, 3) and mask.shape == (64, 64)
        assert set(np.unique(mask)) <= {0, 255}
        assert hashlib.sha256((data / row["image"]).read_bytes()).hexdigest() == row["sha256"]
        assert row["isolation"] == "ok" and row["split"] == ""
        assert (row["width"], row["height"]) == ("120", "160")
        assert image[0, 0].min() >= 250  # corner is white: garment isolated and padded
    assert report.isolation_failed == 0 and report.isolation_failure_rate == 0.0
    assert report.images_per_second > 0
    assert sorted(p.name for p in (data / "masks" / "top").iterdir()) == [
        "cmyk.png", "good-floor.png", "good-white.png"]


def test_failed_isolation_is_written_and_flagged(tmp_path: Path, params: dict):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)  # no garment anywhere
    write_image(tmp_path / "src" / "top" / "noise.png", noise)
    params["ingest"]["isolate"] = "threshold"
    params["ingest"]["mask_fail_high"] = 0.5
    report = ingest_category(tmp_path / "src", "top", tmp_path / "data", params=params)
    row = read_manifest(tmp_path / "data" / "raw" / "top" / "manifest.csv")[0]
    assert report.isolation_failed == 1 and report.isolation_failure_rate == 1.0
    assert row["isolation"] == "failed"
    assert (tmp_path / "data" / row["image"]).is_file()


def test_parallel_ingest_matches_serial(messy_source: Path, tmp_path: Path, params: dict):
    serial = ingest_category(messy_source, "top", tmp_path / "one", params=params, jobs=1)
    parallel = ingest_category(messy_source, "top", tmp_path / "two", params=params, jobs=2)
    assert serial.skipped_files == parallel.skipped_files
    assert read_manifest(tmp_path / "one/raw/top/manifest.csv") == read_manifest(tmp_path / "two/raw/top/manifest.csv")


def test_ingest_errors_name_the_path(tmp_path: Path, params: dict):
    with pytest.raises(IngestError, match="nowhere"):
        ingest_category(tmp_path / "nowhere", "top", tmp_path / "data", params=params)
    (tmp_path / "src" / "hat").mkdir(parents=True)
    with pytest.raises(IngestError, match="no .jpg"):
        ingest_category(tmp_path / "src", "top", tmp_path / "data", params=params)
    with pytest.raises(IngestError, match="plain name"):
        ingest_category(tmp_path / "src", "../top", tmp_path / "data", params=params)


def test_settings_from_params(params: dict):
    settings = IngestSettings.from_params(params)
    assert settings.size == 64 and settings.isolation == "auto" and settings.min_side == 32


# --- the DVC stage script ----------------------------------------------------------------------

def run_stage(project_root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(project_root / "training" / "ingest.py"), *args],
                          capture_output=True, text=True, timeout=HANG_SECONDS)


def test_ingest_stage_end_to_end(project_root: Path, messy_source: Path, tmp_path: Path, params: dict):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    feed = tmp_path / "products.csv"
    feed.write_text("id,title,color\ncmyk,Converted tee,red\n")
    report_path = tmp_path / "reports" / "ingest" / "top.json"
    result = run_stage(project_root, "--category", "top", "--params", str(params_file),
                       "--source", str(messy_source), "--feed", str(feed),
                       "--data-dir", str(tmp_path / "data"), "--report", str(report_path), "--jobs", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["found"] == 7 and report["ingested"] == 3 and report["skipped"] == 4
    assert report["skipped_by_reason"]["empty file"] == 1
    assert len(report["skipped_files"]) == 4
    assert sum(1 for line in result.stderr.splitlines() if "skipped " in line) == 4
    rows = {row["id"]: row for row in read_manifest(tmp_path / "data" / "raw" / "top" / "manifest.csv")}
    assert rows["cmyk"]["title"] == "Converted tee"
    assert (tmp_path / "data" / "masks" / "top" / "good-floor.png").is_file()


def test_ingest_stage_errors_are_one_clear_line(project_root: Path, tmp_path: Path, params: dict):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    common = ["--params", str(params_file), "--data-dir", str(tmp_path / "data"),
              "--report", str(tmp_path / "r.json")]
    missing = run_stage(project_root, "--category", "top", "--source", str(tmp_path / "absent"),
                        "--feed", "", *common)
    assert missing.returncode != 0
    assert "absent" in missing.stderr and "Traceback" not in missing.stderr
    write_image(tmp_path / "src" / "top" / "a.png", garment_photo(0, white=True))
    no_feed = run_stage(project_root, "--category", "top", "--source", str(tmp_path / "src"),
                        "--feed", str(tmp_path / "nofeed.csv"), *common)
    assert no_feed.returncode != 0 and "nofeed.csv" in no_feed.stderr
    assert "Traceback" not in no_feed.stderr
    unknown = run_stage(project_root, "--category", "socks", "--source", str(tmp_path / "src"), *common)
    assert unknown.returncode != 0 and "socks" in unknown.stderr
    assert run_stage(project_root, "--help").returncode == 0


# --- the real photo set -----------------------------------------------------------------------

@pytest.mark.shared_data
@pytest.mark.slow
def test_real_photos_isolate(shared_data: Path, tmp_path: Path, params: dict):
    """Ten real photos per category (linked, never copied) mostly isolate OK."""
    real_aliases = load_params(Path(__file__).resolve().parents[1] / "params.yaml")["source"]["aliases"]
    params["source"]["aliases"] = real_aliases
    source = tmp_path / "source"
    for category, names in real_aliases.items():
        photos = [p for name in names for p in sorted((shared_data / "train" / name).glob("*.jpg"))]
        for photo in photos[:10]:
            link = source / category / photo.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(photo)
    for category in real_aliases:
        report = ingest_category(source, category, tmp_path / "data", params=params)
        assert report.ingested == 10, report.skipped_files
        assert report.isolation_failure_rate <= 0.2
