"""Sketch-like edge maps: pen-drawing look on synthetic garments, light-garment handling, and
the `edges` DVC stage script end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.morphology import skeletonize

from sketch2fashion.data.manifest import write_manifest
from sketch2fashion.imaging.edges import (
    ink_fraction,
    is_light_garment,
    pen_width,
    sketch_edges,
    title_says_light,
)
from sketch2fashion.imaging.io import save_png
from sketch2fashion.imaging.outline import outline_closure
from waiting import HANG_SECONDS

ROOT = Path(__file__).resolve().parents[1]

TSHIRT = np.array([(78, 40), (108, 34), (128, 48), (148, 34), (178, 40), (226, 84), (200, 112),
                   (184, 98), (184, 222), (72, 222), (72, 98), (56, 112), (30, 84)], np.float64)


def tshirt(size: int = 256, kind: str = "stripes", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A t-shirt photographed on white: RGB photo and its 0/255 mask.

    kinds: "stripes" (red/blue, equal-ish brightness), "white" (white with light-grey shading
    panels and a fold line), "dark" (navy with a grey placket), "plain" (green).
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(TSHIRT * size / 256).astype(np.int32)], 255)
    yy, xx = np.mgrid[:size, :size]
    if kind == "stripes":
        band = (yy // max(1, size // 16)) % 2 == 0
        base = np.where(band[..., None], [200, 30, 40], [30, 60, 160]).astype(np.float64)
    elif kind == "white":
        base = np.full((size, size, 3), 246.0)
        base[(xx > size * 0.69) | (np.abs(yy - size * 0.6) < size * 0.01)] = 228.0
    elif kind == "dark":
        base = np.full((size, size, 3), (25.0, 30.0, 45.0))
        base[np.abs(xx - size / 2) < size * 0.012] = 90.0
    else:
        base = np.full((size, size, 3), (60.0, 140.0, 70.0))
    base += rng.normal(0.0, 3.0, base.shape)
    photo = np.full((size, size, 3), 255, np.uint8)
    photo[mask > 0] = np.clip(base, 0, 255).astype(np.uint8)[mask > 0]
    return photo, mask


def interior(mask: np.ndarray, margin: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    return cv2.erode(mask, kernel) > 0


@pytest.mark.parametrize("kind", ["stripes", "white", "dark", "plain"])
def test_edge_map_is_a_clean_closed_drawing(kind: str) -> None:
    photo, mask = tshirt(kind=kind)
    edges = sketch_edges(photo, mask)
    assert edges.dtype == np.uint8 and edges.shape == mask.shape
    assert set(np.unique(edges)) <= {0, 255}
    assert 0.01 < ink_fraction(edges) < 0.2, "a drawing is mostly paper but not empty"
    assert outline_closure(edges, mask) > 0.95
    near_garment = cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0
    assert not (edges[~near_garment] == 0).any(), "no ink on the background"


def test_colour_boundaries_of_equal_brightness_are_drawn() -> None:
    photo, mask = tshirt(kind="stripes")
    edges = sketch_edges(photo, mask)
    inner = interior(mask, 8)
    # Stripe boundaries are horizontal: most body rows at a boundary carry ink across.
    rows_with_ink = (edges[:, 90:170] == 0).mean(axis=1)
    boundary_rows = [y for y in range(70, 210) if y % 16 == 0 and inner[y, 90:170].all()]
    assert boundary_rows
    assert np.mean([rows_with_ink[y - 2:y + 3].max() > 0.6 for y in boundary_rows]) > 0.8


def test_white_garment_gets_its_shading_lines_and_an_outline_without_a_mask() -> None:
    photo, mask = tshirt(kind="white")
    assert is_light_garment(photo, mask)
    edges = sketch_edges(photo, mask)
    # The fold line at y ~ 0.6 * 256 is drawn inside the garment.
    fold = (edges[148:160, 90:170] == 0).any(axis=0).mean()
    assert fold > 0.8
    # Without the mask the faint garment/paper boundary must still be drawn.
    free = sketch_edges(photo, None)
    boundary = (mask > 0) & ~interior(mask, 1)
    near_ink = cv2.dilate((free == 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert near_ink[boundary].mean() > 0.8
    assert ink_fraction(free) < 0.2


def test_light_garments_are_detected_from_pixels_and_titles() -> None:
    white, white_mask = tshirt(kind="white")
    dark, dark_mask = tshirt(kind="dark")
    assert is_light_garment(white, white_mask)
    assert is_light_garment(white, None)
    assert not is_light_garment(dark, dark_mask)
    assert is_light_garment(dark, dark_mask, title="Ivory cotton tee")
    assert is_light_garment(dark, dark_mask, title="OFF-WHITE oversized shirt")
    assert not is_light_garment(dark, dark_mask, title="Dark grey hoodie")
    assert not is_light_garment(dark, dark_mask, title="Lightweight black jacket")
    assert title_says_light("sky blue skirt", ["sky"])
    assert not title_says_light("skyline print", ["sky"])


def test_speckles_are_removed_but_only_when_asked() -> None:
    photo, mask = tshirt(kind="plain")
    rng = np.random.default_rng(3)
    ys, xs = np.nonzero(interior(mask, 12))
    for i in rng.choice(len(xs), 40, replace=False):
        photo[ys[i]:ys[i] + 2, xs[i]:xs[i] + 2] = 0
    inner = interior(mask, 6)
    # A blurred 2x2 speck leaves a Canny ring of 8-12 pixels (two close specks about 21).
    clean = sketch_edges(photo, mask, min_component=24)
    speckled = sketch_edges(photo, mask, min_component=0)
    assert (clean[inner] == 0).mean() < 0.002
    assert (speckled[inner] == 0).mean() > 0.01


@pytest.mark.parametrize(("size", "line_width"), [(256, 2), (256, 4), (512, 2)])
def test_lines_have_the_requested_pen_width_scaled_to_the_image(size: int, line_width: int) -> None:
    photo, mask = tshirt(size=size, kind="dark")
    ink = sketch_edges(photo, mask, line_width=line_width) == 0
    skeleton = skeletonize(ink)
    # Ink area per unit of centre-line length is the average line width.
    measured = ink.sum() / skeleton.sum()
    expected = pen_width(photo.shape, line_width)
    assert expected == round(line_width * size / 256)
    assert abs(measured - expected) < 0.35 * expected + 0.5


def test_edges_are_deterministic_and_validate_input() -> None:
    photo, mask = tshirt(kind="stripes")
    assert np.array_equal(sketch_edges(photo, mask), sketch_edges(photo, mask))
    with pytest.raises(ValueError):
        sketch_edges(photo[..., 0], mask)
    with pytest.raises(ValueError):
        sketch_edges(photo, mask[:100])


# --- the DVC stage script -------------------------------------------------------------------

def _write_dataset(data: Path, kinds: list[str]) -> list[str]:
    rows, ids = [], []
    for i, kind in enumerate(kinds):
        photo, mask = tshirt(size=96, kind=kind, seed=i)
        gid = f"{kind}{i}"
        save_png(data / "raw" / "top" / f"{gid}.png", photo)
        save_png(data / "masks" / "top" / f"{gid}.png", mask)
        rows.append({"id": gid, "category": "top", "image": f"raw/top/{gid}.png",
                     "mask": f"masks/top/{gid}.png", "source": "test", "width": 96, "height": 96,
                     "title": "white tee" if kind == "white" else f"{kind} tee", "split": "train"})
        ids.append(gid)
    write_manifest(data / "raw" / "top" / "manifest.csv", rows)
    return ids


def _run_stage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    params = tmp_path / "params.yaml"
    params.write_text("image:\n  size: 96\n"
                      "edges:\n  jobs: 2\n  line_width: 2\n  min_component: 12\n"
                      "  canny_sigma: 0.33\n  clahe_clip: 2.0\n  light_words: [white]\n")
    return subprocess.run(
        [sys.executable, str(ROOT / "training" / "edges.py"), "--params", str(params),
         "--data-dir", str(tmp_path / "data"), "--no-progress", *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=HANG_SECONDS,
    )


def test_edges_stage_writes_every_edge_map_and_a_report(tmp_path: Path) -> None:
    ids = _write_dataset(tmp_path / "data", ["stripes", "white", "dark", "plain", "white"])
    stale = tmp_path / "data" / "edges" / "top" / "gone.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    result = _run_stage(tmp_path, "--category", "top", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "data" / "edges" / "top"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.png" for i in ids)
    for gid in ids:
        edges = cv2.imread(str(out / f"{gid}.png"), cv2.IMREAD_UNCHANGED)
        assert edges.shape == (96, 96) and edges.dtype == np.uint8
        assert 0.01 < ink_fraction(edges) < 0.3
    report = json.loads((tmp_path / "reports" / "edges" / "top.json").read_text())
    assert report["images"] == len(ids) and report["jobs"] == 2
    assert report["images_per_s"] > 0 and report["seconds"] > 0
    assert 0.01 < report["mean_ink_fraction"] < 0.3
    assert report["mean_outline_closure"] > 0.95
    assert report["light_detected"] == 2


def test_edges_stage_without_manifest_says_run_ingest(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = _run_stage(tmp_path, "--category", "hat", "--jobs", "1")
    assert result.returncode != 0
    assert "manifest.csv" in result.stderr and "ingest" in result.stderr
    assert "Traceback" not in result.stderr


def test_edges_stage_help() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "training" / "edges.py"), "--help"],
                            capture_output=True, text=True, timeout=HANG_SECONDS)
    assert result.returncode == 0 and "--category" in result.stdout and "--jobs" in result.stdout
