"""The demo catalogue: sample products, name them like a shop would, write photos and the feed.

Titles carry colour, pattern and silhouette words so text search has something to match; the
feed's columns follow Google Merchant Center so a real shop's export drops in the same way.
Every product draws from its own RNG keyed on (seed, category, index), so the data set is
byte-for-byte reproducible and product 7 is the same whether 12 or 150 are made.
"""
from __future__ import annotations

import csv
import io
import zlib
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from sketch2fashion.demo.garments import GarmentSpec, check_category, sample_cut
from sketch2fashion.demo.render import PALETTE, lab_distance, render_garment

FEED_COLUMNS: tuple[str, ...] = (
    "id", "title", "description", "link", "image_link", "price", "currency", "brand",
    "product_type", "color", "pattern",
)
BRANDS: tuple[str, ...] = ("Northloom", "Parcel & Pine", "Mira Atelier", "Fieldnote", "Corvo", "Sundry Lane")
SHOP_URL = "https://shop.example/products/"  # reserved .example domain: these are not real products

_PATTERN_WEIGHTS = {"solid": 0.45, "stripes": 0.2, "dots": 0.15, "colorblock": 0.2}
_PATTERN_FEED = {"solid": "solid", "stripes": "striped", "dots": "polka dot", "colorblock": "color block"}
_PATTERN_TITLE = {"solid": "", "stripes": "striped", "dots": "polka-dot", "colorblock": "color-block"}
_PRICE_RANGE = {"top": (14, 40), "pants": (29, 80), "skirt": (24, 70), "hat": (12, 35)}
_MIN_ACCENT_CONTRAST = 40.0  # Lab distance: an accent must read as a different colour


def sample_spec(category: str, rng: np.random.Generator) -> GarmentSpec:
    """A random but plausible product of `category`: silhouette, colours and pattern."""
    cut = sample_cut(category, rng)
    names = list(PALETTE)
    color = str(rng.choice(names))
    contrasting = [n for n in names if lab_distance(PALETTE[n], PALETTE[color]) >= _MIN_ACCENT_CONTRAST]
    accent = str(rng.choice(contrasting))
    pattern = str(rng.choice(list(_PATTERN_WEIGHTS), p=list(_PATTERN_WEIGHTS.values())))
    if pattern == "stripes":
        angle = float(rng.choice([0.0, 0.0, 90.0, rng.uniform(20, 70) * rng.choice([-1, 1])]))
        period, fill = rng.uniform(0.05, 0.16), rng.uniform(0.3, 0.6)
    else:
        angle, period, fill = 0.0, rng.uniform(0.07, 0.14), rng.uniform(0.18, 0.3)
    return GarmentSpec(
        category=category, cut=cut,
        width=round(float(rng.uniform(0.88, 1.12)), 4), length=round(float(rng.uniform(0.92, 1.08)), 4),
        color=color, accent=accent, pattern=pattern,
        pattern_period=round(float(period), 4), pattern_angle=round(angle, 2),
        pattern_fill=round(float(fill), 4),
        contrast_trim=bool(pattern != "colorblock" and rng.random() < 0.25),
        detail_seed=int(rng.integers(2**31)),
    )


def color_label(spec: GarmentSpec) -> str:
    """Merchant `color`: the main colour, then the accent when the product visibly shows it."""
    two_tone = spec.pattern != "solid" or spec.contrast_trim
    return f"{spec.color}/{spec.accent}" if two_tone else spec.color


def silhouette_words(spec: GarmentSpec) -> str:
    """The shape part of a title, e.g. 'long-sleeve V-neck top' or 'wide-leg cropped trousers'."""
    s = spec.style
    if spec.category == "top":
        sleeve = {"sleeveless": "sleeveless", "short": "short-sleeve", "long": "long-sleeve"}[s("sleeve")]
        neck = {"crew": "crew-neck", "v": "V-neck", "scoop": "scoop-neck"}[s("neckline")]
        return f"{sleeve} {neck} top"
    if spec.category == "pants":
        leg = {"skinny": "skinny", "straight": "straight-leg", "wide": "wide-leg"}[s("leg")]
        noun = {"shorts": "shorts", "cropped": "cropped trousers", "full": "trousers"}[s("length")]
        return f"{leg} {noun}"
    if spec.category == "skirt":
        flare = {"pencil": "pencil", "a-line": "A-line", "circle": "circle"}[s("flare")]
        pleats = "pleated " if s("pleats") == "pleated" else ""
        return f"{s('length')} {pleats}{flare} skirt"
    if spec.category == "hat":
        style = s("style")
        if style == "cap":
            return "baseball cap"
        if style == "bucket":
            return "bucket hat"
        if style in ("fedora", "top-hat"):
            return {"fedora": "fedora hat", "top-hat": "top hat"}[style]
        cuff = "cuffed " if s("cuff") == "cuffed" else ""
        return f"{cuff}beanie" + (" with pompom" if s("pompom") == "pompom" else "")
    check_category(spec.category)
    raise AssertionError("unreachable")


def title_for(spec: GarmentSpec) -> str:
    """E.g. 'Red striped long-sleeve V-neck top', 'Cream wide-leg cropped trousers'."""
    words = [color_label(spec), _PATTERN_TITLE[spec.pattern], silhouette_words(spec)]
    title = " ".join(w for w in words if w)
    if spec.contrast_trim and spec.pattern == "solid":
        title += f" with {spec.accent} trim"
    return title[0].upper() + title[1:]


def description_for(spec: GarmentSpec) -> str:
    """A short shop blurb repeating the searchable facts in plain words."""
    kinds = {"top": "top (t-shirt, tee)", "pants": "pants (trousers)", "skirt": "skirt", "hat": "hat"}
    kind = kinds[spec.category]
    pattern = _PATTERN_FEED[spec.pattern]
    colours = spec.color if color_label(spec) == spec.color else f"{spec.color} and {spec.accent}"
    fit = "relaxed" if spec.width > 1.05 else "slim" if spec.width < 0.95 else "regular"
    parts = [f"A {pattern} {kind} in {colours}: {silhouette_words(spec)}.", f"{fit.capitalize()} fit."]
    if spec.contrast_trim:
        parts.append(f"Contrast {spec.accent} trim.")
    if spec.pattern == "stripes":
        direction = {0.0: "horizontal", 90.0: "vertical"}.get(abs(spec.pattern_angle), "diagonal")
        parts.append(f"{direction.capitalize()} stripes.")
    parts.append("Demo product, rendered procedurally.")
    return " ".join(parts)


def product_id(category: str, index: int) -> str:
    return f"demo-{category}-{index:04d}"


def product_rng(seed: int, category: str, index: int) -> np.random.Generator:
    """Per-product RNG from a stable hash of the category (never Python's salted hash())."""
    return np.random.default_rng([seed, zlib.crc32(category.encode("utf-8")), index])


def make_demo_dataset(out: Path, *, categories: list[str], per_category: int, seed: int, size: int) -> Path:
    """Writes out/<category>/<id>.png for each product and out/products.csv; returns the feed path.

    Deterministic by seed. PNGs named like demo products but no longer in the set (a smaller
    per_category than last time) are removed so photos and feed rows always pair up.
    """
    for category in categories:
        check_category(category)
    if per_category < 0 or size < 16:
        raise ValueError(f"need per_category >= 0 and size >= 16, got {per_category} and {size}")
    out = Path(out)
    rows: list[dict[str, str]] = []
    with tqdm(total=len(categories) * per_category, desc="demo-data", unit="photo") as progress:
        for category in categories:
            folder = out / category
            folder.mkdir(parents=True, exist_ok=True)
            keep = {f"{product_id(category, i)}.png" for i in range(per_category)}
            for stale in folder.glob(f"demo-{category}-*.png"):
                if stale.name not in keep:
                    stale.unlink()
            for index in range(per_category):
                rng = product_rng(seed, category, index)
                spec = sample_spec(category, rng)
                pid = product_id(category, index)
                rgb, _ = render_garment(spec, size)
                _write_png(folder / f"{pid}.png", rgb)
                rows.append(_feed_row(spec, pid, rng))
                progress.update(1)
    feed = out / "products.csv"
    feed.write_text(_feed_csv(rows), encoding="utf-8")
    return feed


def _feed_row(spec: GarmentSpec, pid: str, rng: np.random.Generator) -> dict[str, str]:
    low, high = _PRICE_RANGE[spec.category]
    return {
        "id": pid,
        "title": title_for(spec),
        "description": description_for(spec),
        "link": SHOP_URL + pid,
        "image_link": f"{spec.category}/{pid}.png",
        "price": f"{int(rng.integers(low, high))}.{rng.choice(['99', '99', '50', '00'])}",
        "currency": "USD",
        "brand": str(rng.choice(BRANDS)),
        "product_type": spec.category,
        "color": color_label(spec),
        "pattern": _PATTERN_FEED[spec.pattern],
    }


def _feed_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FEED_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")

