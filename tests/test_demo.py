"""The procedural demo data: reproducible, well-formed feed, and photos that search can tell apart."""
from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from sketch2fashion.cli import main
from sketch2fashion.demo import (PALETTE, GarmentSpec, garment_regions, make_demo_dataset, render_garment,
                                 sample_spec)
from sketch2fashion.demo.garments import REGIONS
from sketch2fashion.demo.feed import FEED_COLUMNS, product_rng
from sketch2fashion.demo.render import lab_distance

CATEGORIES = ["top", "pants", "skirt", "hat"]
SIZE = 128


def _spec(category: str, index: int = 0, **changes) -> GarmentSpec:
    return dataclasses.replace(sample_spec(category, product_rng(7, category, index)), **changes)


def _solid(category: str, color: str, cut: dict[str, str] | None = None, index: int = 0) -> GarmentSpec:
    base = _spec(category, index)
    merged = dict(base.cut) | (cut or {})
    return dataclasses.replace(base, cut=tuple(merged.items()), color=color, pattern="solid",
                               contrast_trim=False)


def _mask(spec: GarmentSpec) -> np.ndarray:
    return render_garment(spec, SIZE)[1] > 0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "source"
    return make_demo_dataset(out, categories=CATEGORIES, per_category=5, seed=3, size=96)


def _rows(feed: Path) -> list[dict[str, str]]:
    with feed.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------- reproducibility

def test_same_seed_gives_identical_bytes_and_another_seed_does_not(dataset: Path, tmp_path: Path) -> None:
    first = _files(dataset.parent)
    again = _files(make_demo_dataset(tmp_path / "a", categories=CATEGORIES, per_category=5, seed=3,
                                     size=96).parent)
    other = _files(make_demo_dataset(tmp_path / "b", categories=CATEGORIES, per_category=5, seed=4,
                                     size=96).parent)
    assert len(first) == 4 * 5 + 1
    assert first == again
    assert first.keys() == other.keys()
    assert first["products.csv"] != other["products.csv"]
    assert sum(first[name] != other[name] for name in first) > 10


def test_product_does_not_depend_on_how_many_are_made(dataset: Path, tmp_path: Path) -> None:
    small = make_demo_dataset(tmp_path / "s", categories=["skirt"], per_category=2, seed=3, size=96)
    for pid in ("demo-skirt-0000", "demo-skirt-0001"):
        png = f"skirt/{pid}.png"
        assert (small.parent / png).read_bytes() == (dataset.parent / png).read_bytes()


def test_shrinking_the_set_removes_stale_photos(tmp_path: Path) -> None:
    make_demo_dataset(tmp_path, categories=["hat"], per_category=3, seed=0, size=48)
    make_demo_dataset(tmp_path, categories=["hat"], per_category=2, seed=0, size=48)
    assert sorted(p.name for p in (tmp_path / "hat").iterdir()) == ["demo-hat-0000.png", "demo-hat-0001.png"]


# ---------------------------------------------------------------- feed

def test_feed_columns_ids_and_links(dataset: Path) -> None:
    with dataset.open(encoding="utf-8") as handle:
        assert handle.readline().strip() == ",".join(FEED_COLUMNS)
    assert FEED_COLUMNS == ("id", "title", "description", "link", "image_link", "price", "currency",
                            "brand", "product_type", "color", "pattern")
    rows = _rows(dataset)
    assert len(rows) == 20
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert re.fullmatch(rf"demo-{row['product_type']}-\d{{4}}", row["id"])
        assert row["product_type"] in CATEGORIES
        assert row["link"] == f"https://shop.example/products/{row['id']}"
        image = dataset.parent / row["image_link"]
        assert image.is_file() and image.stem == row["id"] and image.parent.name == row["product_type"]
        assert re.fullmatch(r"\d+\.\d\d", row["price"]) and row["currency"] == "USD"
        assert row["brand"] and row["description"]
        assert all(name in PALETTE for name in row["color"].split("/"))


def test_titles_name_colour_pattern_and_silhouette(dataset: Path) -> None:
    words = {"top": ("top",), "pants": ("trousers", "shorts"), "skirt": ("skirt",),
             "hat": ("cap", "beanie", "hat")}
    for row in _rows(dataset):
        title = row["title"].lower()
        assert row["color"].split("/")[0] in title
        assert any(word in title for word in words[row["product_type"]])
        if row["pattern"] != "solid":
            assert row["pattern"].replace(" ", "-") in title


def test_title_example_wording() -> None:
    from sketch2fashion.demo.feed import title_for

    spec = _solid("pants", "cream", {"leg": "wide", "length": "cropped"})
    assert title_for(spec) == "Cream wide-leg cropped trousers"
    top = dataclasses.replace(_solid("top", "red", {"sleeve": "long", "neckline": "v"}), pattern="stripes",
                              accent="white")
    assert title_for(top) == "Red/white striped long-sleeve V-neck top"


# ---------------------------------------------------------------- photos

@pytest.mark.parametrize("category", CATEGORIES)
def test_photo_is_centred_on_white_with_a_sensible_mask(category: str) -> None:
    for index in range(4):
        rgb, mask = render_garment(_spec(category, index), SIZE)
        assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8
        assert mask.shape == (SIZE, SIZE) and set(np.unique(mask)) <= {0, 255}
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        assert (border == 255).all()
        assert 0.08 < (mask > 0).mean() < 0.75
        ys, xs = np.nonzero(mask)
        extent = max(np.ptp(xs), np.ptp(ys)) / SIZE
        assert 0.6 < extent < 0.85
        assert abs((xs.min() + xs.max()) / 2 - SIZE / 2) < 3 and abs((ys.min() + ys.max()) / 2 - SIZE / 2) < 3


@pytest.mark.parametrize("category", CATEGORIES)
def test_white_garment_stands_out_from_the_white_backdrop(category: str) -> None:
    rgb, mask = render_garment(_solid(category, "white"), SIZE)
    garment = rgb[mask > 0].astype(int)
    assert (garment.min(axis=1) >= 250).mean() < 0.5
    rim = (mask > 0) & (cv2.erode(mask, np.ones((5, 5), np.uint8)) == 0)
    assert rgb[rim].mean() < 225


@pytest.mark.parametrize("category", CATEGORIES)
def test_photos_have_interior_lines_for_edge_maps(category: str) -> None:
    rgb, mask = render_garment(_solid(category, "beige"), 256)
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 30, 90) > 0
    interior = cv2.erode(mask, np.ones((9, 9), np.uint8)) > 0
    assert edges[interior].sum() > 150


def test_silhouettes_of_one_category_differ_clearly() -> None:
    pairs = [
        ("top", {"sleeve": "short"}, {"sleeve": "long"}),
        ("top", {"sleeve": "sleeveless"}, {"sleeve": "long"}),
        ("pants", {"leg": "skinny", "length": "full"}, {"leg": "wide", "length": "full"}),
        ("pants", {"length": "shorts"}, {"length": "full"}),
        ("skirt", {"length": "mini", "flare": "a-line"}, {"length": "maxi", "flare": "a-line"}),
        ("skirt", {"length": "midi", "flare": "pencil"}, {"length": "midi", "flare": "circle"}),
        ("hat", {"style": "cap"}, {"style": "beanie"}),
        ("hat", {"style": "bucket"}, {"style": "beanie"}),
    ]
    for category, a, b in pairs:
        iou = _iou(_mask(_solid(category, "red", a)), _mask(_solid(category, "red", b)))
        assert iou < 0.8, (category, a, b, iou)
    long_sleeve = {"sleeve": "long"}
    same = _iou(_mask(_solid("top", "red", long_sleeve)), _mask(_solid("top", "blue", long_sleeve)))
    assert same > 0.99  # colour alone does not move the silhouette


def test_solid_garment_reads_as_its_named_colour() -> None:
    for k, (name, reference) in enumerate(PALETTE.items()):
        category = CATEGORIES[k % len(CATEGORIES)]
        rgb, mask = render_garment(_solid(category, name, index=k), 96)
        mean = rgb[mask > 0].mean(axis=0)
        distances = {other: lab_distance(mean, colour) for other, colour in PALETTE.items()}
        assert distances[name] < 10, (name, category, distances[name])
        nearest = sorted(distances, key=distances.get)
        assert nearest[0] == name, (name, nearest[:3])
        for other, colour in PALETTE.items():  # clearly different names stay clearly different
            if lab_distance(reference, colour) > 25:
                assert distances[other] > 15, (name, other, distances[other])


def test_colour_block_paints_regions_in_the_accent() -> None:
    plain = _solid("top", "navy", {"sleeve": "long"})
    block = dataclasses.replace(plain, pattern="colorblock", accent="yellow")
    rgb_plain, mask = render_garment(plain, SIZE)
    rgb_block, _ = render_garment(block, SIZE)
    yellowish = lab_distance(rgb_block[mask > 0].mean(axis=0), PALETTE["yellow"])
    assert yellowish < lab_distance(rgb_plain[mask > 0].mean(axis=0), PALETTE["yellow"]) - 10


def test_region_map_matches_the_photo_mask_and_names_the_parts() -> None:
    spec = _solid("top", "navy", {"sleeve": "long"})
    labels, mask = garment_regions(spec, SIZE)
    assert np.array_equal(mask, render_garment(spec, SIZE)[1])
    assert ((labels > 0) == (mask > 0)).all()
    names = {REGIONS[v - 1] for v in np.unique(labels) if v}
    assert {"body", "sleeve", "cuff", "collar"} <= names
    cap_labels, _ = garment_regions(_solid("hat", "red", {"style": "cap"}), SIZE)
    hat_names = {REGIONS[v - 1] for v in np.unique(cap_labels) if v}
    assert {"crown", "brim"} <= hat_names


def test_rendering_is_a_pure_function_of_the_spec() -> None:
    spec = _spec("top", 3)
    a, b = render_garment(spec, SIZE), render_garment(spec, SIZE)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = render_garment(spec, SIZE, np.random.default_rng(99))
    assert np.array_equal(a[1], c[1]) and not np.array_equal(a[0], c[0])


# ---------------------------------------------------------------- errors and CLI

def test_unknown_category_is_rejected_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dress.*top, pants, skirt, hat"):
        sample_spec("dress", np.random.default_rng(0))
    with pytest.raises(ValueError, match="known: top, pants, skirt, hat"):
        render_garment(GarmentSpec("dress"), 64)
    with pytest.raises(ValueError, match="dress"):
        make_demo_dataset(tmp_path / "x", categories=["top", "dress"], per_category=1, seed=0, size=64)
    assert not (tmp_path / "x").exists()


def test_cli_writes_the_demo_set(tmp_path: Path) -> None:
    out = tmp_path / "src"
    result = CliRunner().invoke(main, ["demo-data", str(out), "--params", str(tmp_path / "none.yaml"),
                                       "--per-category", "1", "--size", "48"])
    assert result.exit_code == 0, result.output
    assert len(_rows(out / "products.csv")) == 4
    assert sorted(p.name for p in out.iterdir()) == ["hat", "pants", "products.csv", "skirt", "top"]
